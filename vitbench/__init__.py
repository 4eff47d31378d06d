"""vitbench: what a vision model really costs, measured next to what the paper printed.

The public API, by pipeline stage (imported lazily: ``import vitbench`` loads no torch)::

    suite = vitbench.load_suite("suites/lightweight.yaml")          # config
    run = vitbench.run_suite(suite, out_dir="/tmp/lw")              # run (results.json)
    vitbench.write_reports(run, "/tmp/lw")                          # report (CSV, MD, HTML, plots)
    verdicts = vitbench.compare_sides(vitbench.load_side([...], "baseline"),
                                      vitbench.load_side([...], "candidate"))   # gate
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name → the module that defines it
_API = {
    "load_suite": "vitbench.config.suite",
    "parse_suite": "vitbench.config.suite",
    "Suite": "vitbench.config.spec",
    "Job": "vitbench.config.spec",
    "run_suite": "vitbench.run.runner",
    "RunResult": "vitbench.records",
    "ModelResult": "vitbench.records",
    "write_reports": "vitbench.report",
    "to_frame": "vitbench.report.csv",
    "read_csv": "vitbench.report.csv",
    "CSV_COLUMNS": "vitbench.report.csv",
    "CSV_DTYPES": "vitbench.report.csv",
    "merge_runs": "vitbench.report.merge",
    "compare_sides": "vitbench.gate",
    "load_side": "vitbench.gate",
    "build_baseline": "vitbench.gate",
    "profile_model": "vitbench.tools.profile",
    "sweep": "vitbench.tools.sweep",
    "ExitCode": "vitbench.errors",
    "VitbenchError": "vitbench.errors",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vitbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
