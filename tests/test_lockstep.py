"""The lockstep A/B design: paired statistics, paired decisions, and real lockstep workers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from helpers_gate import row, run
from jobs import small_job
from vitbench.config.spec import Job
from vitbench.gate import (CALIBRATION_MODEL, FAIL, IMPROVED, INCONCLUSIVE, LATENCY, PASS,
                           PEAK_MEMORY, GateConfig, compare_sides, side_from_results)
from vitbench.gate.nonparametric import hodges_lehmann_paired

RNG = np.random.default_rng(11)


# --- paired decisions -------------------------------------------------------------------

def paired_report(d, *, calib_d=None, config=None, device="cpu"):
    """Sides with one round per ratio (latency values are the per-round medians)."""
    n = len(d)
    runs_a = [run(row(latency=10.0, device=device),
                  row("gate-calibration", latency=1.0, model=CALIBRATION_MODEL))
              for _ in range(n)]
    runs_b = [run(row(latency=10.0 * math.exp(x), device=device),
                  row("gate-calibration", latency=1.0, model=CALIBRATION_MODEL))
              for x in d]
    paired = {"m": list(d)}
    if calib_d is not None:
        paired["gate-calibration"] = list(calib_d)
    return compare_sides(side_from_results(runs_a, "A"), side_from_results(runs_b, "B"),
                         config or GateConfig(metrics=(LATENCY,)), mode="ab", paired=paired)


def latency(report):
    return next(v for v in report.verdicts if v.metric == "latency_ms" and v.model == "m")


def test_paired_regression_fails_with_ratio_and_ci():
    d = np.log(1.10) + RNG.normal(0, 0.03, 12)
    v = latency(paired_report(d))
    assert v.verdict == FAIL and v.design == "lockstep"
    assert v.ratio == pytest.approx(math.exp(hodges_lehmann_paired(d)))
    assert v.ci_low < v.ratio < v.ci_high and v.p < 1e-3


def test_paired_aa_passes_and_improvement_is_improved():
    aa = latency(paired_report(RNG.normal(0, 0.03, 12)))
    assert aa.verdict == PASS and aa.ci_high < 1.05
    better = latency(paired_report(np.log(0.85) + RNG.normal(0, 0.02, 12)))
    assert better.verdict == IMPROVED


def test_paired_too_few_rounds_and_too_noisy_are_inconclusive():
    few = latency(paired_report(np.log(1.2) + RNG.normal(0, 0.01, 5)))
    assert few.verdict == INCONCLUSIVE and "too few rounds" in few.reason
    noisy = latency(paired_report(RNG.normal(0.03, 0.25, 12)))
    assert noisy.verdict == INCONCLUSIVE and "too noisy" in noisy.reason


def test_calibration_control_that_moved_makes_latency_inconclusive():
    d = np.log(1.10) + RNG.normal(0, 0.02, 12)
    report = paired_report(d, calib_d=np.log(1.08) + RNG.normal(0, 0.01, 12))
    assert latency(report).verdict == INCONCLUSIVE and "A/A control" in latency(report).reason
    calm = paired_report(d, calib_d=RNG.normal(0, 0.01, 12))
    assert latency(calm).verdict == FAIL
    control = next(v for v in calm.verdicts if v.kind == "calibration")
    assert control.verdict == PASS and control.design == "lockstep"


# --- real lockstep workers --------------------------------------------------------------

FIXTURES = "python:tests.fixtures_models"


def _job(model: str, **changes) -> Job:
    return small_job(model, **{"name": "pair", "repeat": 5, "max_time_s": 10.0, **changes})


@pytest.mark.slow
def test_measure_pair_times_both_sides_in_alternating_blocks():
    from vitbench.gate.lockstep import MIN_BLOCK_PAIRS, measure_pair
    from vitbench.run.lockstep import MIN_WARMUP_CALLS

    a = _job("vitbench:gate_fixture", kwargs={"blocks": 4, "width": 8})
    b = _job("vitbench:gate_fixture", kwargs={"blocks": 4, "width": 8, "extra_work": 1.0})
    outcome = measure_pair({"A": a, "B": b}, first="B")
    rows = outcome.rows
    assert rows["A"].status == rows["B"].status == "ok"
    assert len(outcome.log_ratios) >= MIN_BLOCK_PAIRS
    assert len(rows["A"].latency.samples_ms) == len(rows["B"].latency.samples_ms) \
        == len(outcome.log_ratios) * outcome.block_calls
    assert rows["A"].latency.summary.n == len(rows["A"].latency.samples_ms)
    assert rows["A"].latency.stopped_by == "lockstep"
    assert rows["A"].latency.warmup_calls >= MIN_WARMUP_CALLS
    assert rows["A"].counts.params == rows["B"].counts.params and rows["A"].peak_memory_mib > 0
    assert rows["A"].memory.method.startswith("cpu: parameters+buffers")
    assert rows["B"].environment["lockstep"]["first"] == "B"
    # B re-runs all four blocks once more: about twice the work, measured in one run
    assert outcome.round_log_ratio > math.log(1.3)


@pytest.mark.slow
def test_measure_pair_keeps_the_other_side_when_one_fails():
    from vitbench.gate.lockstep import measure_pair

    good = _job(f"{FIXTURES}:tiny")
    bad = _job(f"{FIXTURES}:not_a_module")
    outcome = measure_pair({"A": good, "B": bad})
    assert outcome.rows["B"].status == "failed" and "not a torch.nn.Module" in outcome.rows["B"].error
    assert outcome.rows["A"].status == "ok" and outcome.rows["A"].latency.samples_ms
    assert outcome.round_log_ratio is None  # nothing to pair with


@pytest.mark.slow
def test_measure_pair_kills_a_hanging_worker():
    from vitbench.gate.lockstep import measure_pair

    outcome = measure_pair({"A": _job(f"{FIXTURES}:tiny"),
                            "B": _job(f"{FIXTURES}:hangs", timeout_s=8)})
    assert outcome.rows["B"].status == "timeout" and "timed out after 8 s" in outcome.rows["B"].error
    assert outcome.rows["A"].status == "ok"


def test_lockstep_memory_is_paired_by_round():
    """Peak RSS from the same round's two workers is compared as a per-round ratio: a 3.5 %
    process-to-process scatter (measured on PVT-Tiny) passes, an extra 20 % fails."""
    mem_a = list(95 * np.exp(RNG.normal(0, 0.035, 12)))

    def report(mem_b):
        runs_a = [run(row(latency=10.0, memory=m)) for m in mem_a]
        runs_b = [run(row(latency=10.0, memory=m)) for m in mem_b]
        return compare_sides(side_from_results(runs_a, "A"), side_from_results(runs_b, "B"),
                             GateConfig(metrics=(PEAK_MEMORY,)), mode="ab",
                             paired={"m": [0.0] * 12})

    def memory(r):
        return next(v for v in r.verdicts if v.metric == "peak_memory_mb")

    same = memory(report(list(95 * np.exp(RNG.normal(0, 0.035, 12)))))
    assert same.design == "lockstep" and same.verdict == PASS
    grown = memory(report([m * 1.2 for m in mem_a]))
    assert grown.verdict == FAIL and "larger by" in grown.reason
