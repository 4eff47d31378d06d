"""Synthetic rows, runs and sides for the gate's tests (exact, hand-sized inputs)."""

from __future__ import annotations

import numpy as np

from vitbench.gate import CALIBRATION_MODEL, side_from_results
from vitbench.records import Latency, LatencySummary, ModelResult, PeakMemory, RunResult, StaticCost
from vitbench.stats import summarize

#: Twelve run-level latencies (ms) with a 1 % between-run spread, no ties.
BASE12 = list(10.0 * np.exp(np.random.default_rng(7).normal(0, 0.01, 12)))


def row(name="m", *, latency=None, memory=None, params=1000, gflops=1.5, status="ok",
        counter="fvcore+sdpa", convention="matmul-only", threads=1, device="cpu",
        model="timm:test_vit", error=None) -> ModelResult:
    """One row; ``latency`` becomes five identical samples, ``memory`` the peak (MiB),
    ``gflops`` the giga-MACs its counter ``counter`` gave."""
    ok = status == "ok"
    return ModelResult(
        name=name, model=model, image_size=(224, 224), batch_size=1, device=device,
        dtype="float32", threads=threads, flops_convention=convention, tolerance_pct=5,
        status=status, error=error,
        counts=StaticCost(params=params, gmacs=gflops, counter=counter) if ok else None,
        latency=None if latency is None else Latency(
            samples_ms=[latency] * 5, summary=LatencySummary.of(summarize([latency] * 5))),
        memory=None if memory is None else PeakMemory(peak_mib=memory))


def run(*rows, torch="2.14.1", fvcore="0.1.5") -> RunResult:
    """One run of a suite on a fixed environment."""
    return RunResult(suite={"name": "s", "sha256": "x"},
                     created_utc="2026-01-01T00:00:00+00:00",
                     environment={"cpu": "cpu0", "cpu_count_usable": 2, "python": "3.11",
                                  "torch": torch, "fvcore": fvcore},
                     results=list(rows))


def sides(a_values, b_values, *, memory_a=None, memory_b=None, calib_a=None, calib_b=None,
          **row_kwargs):
    """Sides A and B of one model ``m``, one run per value (plus the calibration probe)."""
    def build(values, memory, calib):
        runs = []
        for i, value in enumerate(values):
            rows = [row(latency=value, memory=None if memory is None else memory[i], **row_kwargs)]
            if calib is not None:
                rows.append(row("calibration", latency=calib[i], model=CALIBRATION_MODEL))
            runs.append(run(*rows))
        return runs
    return (side_from_results(build(a_values, memory_a, calib_a), "A"),
            side_from_results(build(b_values, memory_b, calib_b), "B"))


def verdict(report, metric="latency_ms", model="m"):
    """The verdict of one (model, metric) in a report."""
    return next(v for v in report.verdicts if v.metric == metric and v.model == model)
