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

import lazy_loader

#: module → the public names it defines (vitbench.__init__ says why lazily)
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "baseline": ["BASELINE_SCHEMA", "Baseline", "build_baseline", "load_side"],
    "config": ["CALIBRATION_MODEL", "GFLOPS", "LATENCY", "METRICS", "METRIC_ALIASES", "PARAMS",
               "PEAK_MEMORY", "GateConfig", "GateError"],
    "nonparametric": ["hodges_lehmann_paired", "rounds_needed", "runs_needed", "walsh_ci"],
    "render": ["VERDICT_SCHEMA", "to_markdown", "verdict_document", "write_report",
               "write_verdict_json", "write_verdict_markdown"],
    "rules": ["compare_sides", "confirm"],
    "sides": ["ModelRuns", "Side", "load_results", "side_from_results"],
    "verdict": ["FAIL", "IMPROVED", "INCONCLUSIVE", "NOT_COMPARABLE", "ON_INCONCLUSIVE", "PASS",
                "WARN", "GateReport", "Verdict"],
})
