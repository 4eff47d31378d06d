"""The CI regression gate: did a candidate get bigger, slower or hungrier than its baseline?

Three kinds of metric, three rules (docs/ci-gate.md): params and GFLOPs exactly; the CUDA
allocator peak exactly within a tolerance; latency and CPU peak RSS with a distribution-free
test over runs (or lockstep rounds), Holm's correction over every noisy test, and a minimum
effect. Throughput is batch/latency: derived, never tested on its own.

The package, along the way a comparison goes:

* :mod:`~vitbench.gate.config` — the metric names, :class:`GateConfig`, :class:`GateError`;
* :mod:`~vitbench.gate.sides` — what each side measured, run by run (:class:`Side`);
* :mod:`~vitbench.gate.baseline` — the stored ``vitbench.baseline/1`` file;
* :mod:`~vitbench.gate.evidence` — per (model, metric), the evidence to weigh;
* :mod:`~vitbench.gate.nonparametric` — the rank statistics behind it;
* :mod:`~vitbench.gate.rules` and :mod:`~vitbench.gate.drift` — the decisions;
* :mod:`~vitbench.gate.verdict` and :mod:`~vitbench.gate.render` — the verdicts and their files;
* :mod:`~vitbench.gate.ab`, :mod:`~vitbench.gate.lockstep`, :mod:`~vitbench.gate.selftest` —
  measuring both sides in one job, and the gate's own error rates (they start workers).

The names below are imported on first use, as ``vitbench``'s own API is: the command line
declares its options from :mod:`~vitbench.gate.config` and must start without numpy and
scipy. Every module here except the three that start workers is torch-free.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name → the module that defines it
_API = {
    **dict.fromkeys(("BASELINE_SCHEMA", "Baseline", "build_baseline", "load_side"),
                    "vitbench.gate.baseline"),
    **dict.fromkeys(("CALIBRATION_MODEL", "GFLOPS", "LATENCY", "METRICS", "METRIC_ALIASES",
                     "PARAMS", "PEAK_MEMORY", "GateConfig", "GateError"), "vitbench.gate.config"),
    **dict.fromkeys(("hodges_lehmann_paired", "rounds_needed", "runs_needed", "walsh_ci"),
                    "vitbench.gate.nonparametric"),
    **dict.fromkeys(("VERDICT_SCHEMA", "to_markdown", "verdict_document", "write_report",
                     "write_verdict_json", "write_verdict_markdown"), "vitbench.gate.render"),
    **dict.fromkeys(("compare_sides", "confirm"), "vitbench.gate.rules"),
    **dict.fromkeys(("ModelRuns", "Side", "load_results", "side_from_results"),
                    "vitbench.gate.sides"),
    **dict.fromkeys(("FAIL", "IMPROVED", "INCONCLUSIVE", "NOT_COMPARABLE", "ON_INCONCLUSIVE",
                     "PASS", "WARN", "GateReport", "Verdict"), "vitbench.gate.verdict"),
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vitbench.gate' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
