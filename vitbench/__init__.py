"""vitbench: what a vision model really costs, measured next to what the paper printed."""

__version__ = "0.1.0"

from vitbench.records import ModelResult, RunResult
from vitbench.run.runner import run_suite
from vitbench.config.suite import load_suite, parse_suite

__all__ = ["__version__", "load_suite", "parse_suite", "run_suite", "RunResult", "ModelResult"]
