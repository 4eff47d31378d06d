"""vitbench: what a vision model really costs, measured next to what the paper printed."""

__version__ = "0.1.0"
