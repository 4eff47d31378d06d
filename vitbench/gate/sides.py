"""Sides of a comparison: what was measured, model by model, run by run.

A :class:`Side` holds, per model, one value per *run* (a fresh process, or a lockstep round)
for each metric. This is the only module of the gate that reads ``ModelResult`` fields (its
parts ``counts``, ``latency`` and ``memory``): when the result schema changes, the gate changes
here and nowhere else. The side keeps the gate's metric names (``gflops`` holds the rows'
``counts.gmacs``, memory their ``memory.peak_mib``), as the baseline file stores them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from vitbench.errors import ResultsError
from vitbench.gate.config import CALIBRATION_MODEL, GateError
from vitbench.records import ModelResult, RunResult

#: Per-run latency quantiles a side always keeps (a baseline file stores them).
STORED_QUANTILES = (0.2, 0.5)
#: Row fields that must match for timing/memory to be comparable at all.
TIMING_FIELDS = ("device", "dtype", "batch_size", "image_size", "threads")
#: Environment fields that must match for timing/memory to be comparable.
ENV_FIELDS = ("cpu", "cpu_count_usable", "python", "torch", "gpu", "cuda", "cudnn")
#: Environment fields a side keeps (the comparable ones plus what identifies the run).
_ENV_KEPT = (*ENV_FIELDS, "vitbench", "timm", "fvcore", "hostname")

RESULTS, BASELINE = "results", "baseline"


@dataclass
class ModelRuns:
    """One model on one side: settings, and one value per run for each metric."""

    name: str
    model: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    status: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    params: list[int] = field(default_factory=list)
    gflops: list[float] = field(default_factory=list)
    gflops_counter: Optional[str] = None
    flops_convention: Optional[str] = None
    latency: dict[float, list[float]] = field(default_factory=dict)  # quantile → per-run ms
    memory: list[float] = field(default_factory=list)  # peak memory per run, MiB
    memory_method: Optional[str] = None

    @property
    def device(self) -> str:
        return str(self.settings.get("device", "cpu"))

    @property
    def ok(self) -> bool:
        return any(s == "ok" for s in self.status)


@dataclass
class Side:
    """Everything one side of a comparison measured."""

    label: str
    kind: str  # RESULTS (runs at hand) | BASELINE (stored per-run summaries)
    runs: int
    environment: dict[str, Any] = field(default_factory=dict)
    suite: dict[str, Any] = field(default_factory=dict)
    models: dict[str, ModelRuns] = field(default_factory=dict)
    calibration: Optional[ModelRuns] = None
    sources: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        """The side as ``verdict.json`` lists it."""
        return {"label": self.label, "kind": self.kind, "runs": self.runs, "suite": self.suite,
                "environment": self.environment, "sources": self.sources}


def same_setting(a: Any, b: Any) -> bool:
    """Equal, counting a list and a tuple of the same items as equal (image sizes)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return a == b


def environment_differences(base: Side, cand: Side) -> list[str]:
    """``"torch 2.14.1 → 2.15.0"`` for each comparable environment field that differs."""
    diffs = []
    for key in ENV_FIELDS:
        a, b = base.environment.get(key), cand.environment.get(key)
        if a is not None and b is not None and a != b:
            diffs.append(f"{key} {a} → {b}")
    return diffs


def setting_differences(a: ModelRuns, b: ModelRuns) -> list[str]:
    """``"threads 1 → 2"`` for each row setting that differs between two sides of a model."""
    return [f"{k} {a.settings.get(k)} → {b.settings.get(k)}" for k in TIMING_FIELDS
            if not same_setting(a.settings.get(k), b.settings.get(k))]


def _env_subset(environment: dict[str, Any]) -> dict[str, Any]:
    return {k: environment.get(k) for k in _ENV_KEPT if environment.get(k) is not None}


def _samples_ms(row: ModelResult) -> list[float]:
    """The row's raw latency samples (none when it was not timed)."""
    return row.latency.samples_ms if row.latency else []


def _row_settings(row: Any) -> dict[str, Any]:
    return {"device": row.device, "dtype": row.dtype, "batch_size": row.batch_size,
            "image_size": list(row.image_size), "threads": row.threads}


def side_from_results(runs: Sequence[RunResult], label: str = "",
                      quantiles: Iterable[float] = STORED_QUANTILES) -> Side:
    """A side from ``results.json`` runs of the same suite (one fresh process per row per run)."""
    if not runs:
        raise GateError(f"{label or 'side'}: no runs")
    quantiles = sorted(set(float(q) for q in quantiles))
    side = Side(label=label, kind=RESULTS, runs=len(runs),
                environment=_env_subset(runs[0].environment),
                suite={k: runs[0].suite.get(k) for k in ("name", "sha256")})
    for run in runs:
        for k, v in _env_subset(run.environment).items():
            if k in ENV_FIELDS and side.environment.get(k) != v:
                side.environment.setdefault("mixed", []).append(k)
        for row in run.results:
            if row.status == "unavailable":
                continue
            calibration = row.model == CALIBRATION_MODEL
            entry = side.calibration if calibration else side.models.get(row.name)
            counts, memory = row.counts, row.memory
            if entry is None:
                entry = ModelRuns(name=row.name, model=row.model, settings=_row_settings(row),
                                  gflops_counter=counts.counter if counts else None,
                                  flops_convention=row.flops_convention,
                                  memory_method=memory.method if memory else None)
                if calibration:
                    side.calibration = entry
                else:
                    side.models[row.name] = entry
            entry.status.append(row.status)
            if row.error:
                entry.errors.append(row.error)
            if row.status != "ok":
                continue
            if counts is not None:
                entry.params.append(int(counts.params))
            if counts is not None and counts.gmacs is not None:
                entry.gflops.append(float(counts.gmacs))
                entry.gflops_counter = counts.counter
            if _samples_ms(row):
                samples = np.asarray(_samples_ms(row), float)
                for q in quantiles:
                    entry.latency.setdefault(q, []).append(float(np.quantile(samples, q)))
            if memory is not None and memory.peak_mib is not None:
                entry.memory.append(float(memory.peak_mib))
                entry.memory_method = memory.method
    side.sources = [str(r.command) for r in runs if r.command]
    return side


def per_run_latencies(runs: Sequence[RunResult], quantile: float,
                      names: Optional[Iterable[str]] = None) -> list[float]:
    """Quantile ``quantile`` of each measured row's samples, run by run in row order
    (calibration rows left out; ``names``: only these rows)."""
    keep = None if names is None else set(names)
    values = []
    for run in runs:
        for row in run.results:
            if row.model == CALIBRATION_MODEL or row.status != "ok" or not _samples_ms(row):
                continue
            if keep is None or row.name in keep:
                values.append(float(np.quantile(_samples_ms(row), quantile)))
    return values


def load_results(paths: Sequence[str | Path]) -> list[RunResult]:
    """Read results.json files (a folder means its results.json)."""
    runs = []
    for path in paths:
        try:
            runs.append(RunResult.load(path))
        except ResultsError as exc:
            raise GateError(str(exc)) from None
    return runs
