"""vitbench: what a vision model really costs, measured next to what the paper printed.

The public API, by pipeline stage (imported lazily: ``import vitbench`` loads no torch)::

    suite = vitbench.load_suite("suites/lightweight.yaml")          # config
    run = vitbench.run_suite(suite, out_dir="/tmp/lw")              # run (results.json)
    vitbench.write_reports(run, "/tmp/lw")                          # report (CSV, MD, HTML, plots)
    verdicts = vitbench.compare_sides(vitbench.load_side([...], "baseline"),
                                      vitbench.load_side([...], "candidate"))   # gate
"""

from __future__ import annotations

import lazy_loader

__version__ = "0.1.0"

#: module (relative to vitbench) → the public names it defines, imported on first use
__getattr__, __dir__, _api = lazy_loader.attach(__name__, submod_attrs={
    "config.suite": ["load_suite", "parse_suite"],
    "config.spec": ["Suite", "Job"],
    "run.runner": ["run_suite"],
    "records": ["RunResult", "ModelResult"],
    "report": ["write_reports"],
    "report.csv": ["to_frame", "read_csv", "CSV_COLUMNS", "CSV_DTYPES"],
    "report.merge": ["merge_runs"],
    "gate": ["compare_sides", "load_side", "build_baseline"],
    "tools.profile": ["profile_model"],
    "tools.sweep": ["sweep"],
    "errors": ["ExitCode", "VitbenchError"],
})
__all__ = ["__version__", *_api]
