"""vitbench: what a vision model really costs, measured next to what the paper printed."""

__version__ = "0.1.0"

from .records import ModelResult, RunResult
from .runner import run_suite
from .suite import load_suite, parse_suite

__all__ = ["__version__", "load_suite", "parse_suite", "run_suite", "RunResult", "ModelResult"]
