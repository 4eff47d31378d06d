"""The regression gate's decisions on synthetic run-level data (exact outcomes)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from helpers_gate import BASE12, row, run, sides, verdict
from vitbench.gate import (CALIBRATION_MODEL, FAIL, IMPROVED, INCONCLUSIVE, NOT_COMPARABLE, PASS,
                           WARN, Baseline, GateConfig, build_baseline, compare_sides, confirm,
                           side_from_results)


# --- noisy decisions -------------------------------------------------------------------

def test_known_regression_fails_with_ratio_and_ci():
    a, b = sides(BASE12, [v * 1.2 for v in BASE12[::-1]])
    report = compare_sides(a, b, mode="ab")
    v = verdict(report)
    assert v.verdict == FAIL
    assert v.ratio == pytest.approx(1.2, abs=0.01)
    assert v.ci_low <= 1.2 <= v.ci_high
    assert v.p == pytest.approx(1 / math.comb(24, 12))
    assert report.exit_code() == 1


def test_aa_passes_and_improvement_is_reported():
    a, b = sides(BASE12[:6] + BASE12[6:], BASE12[6:] + BASE12[:6])
    assert verdict(compare_sides(a, b)).verdict == PASS
    a, b = sides(BASE12, [v * 0.8 for v in BASE12])
    report = compare_sides(a, b)
    assert verdict(report).verdict == IMPROVED
    assert report.exit_code() == 0


def test_significant_but_below_half_the_minimum_effect_passes():
    a, b = sides(BASE12, [v * 1.03 for v in BASE12])  # +3 % < δ/2 of δ = 10 %
    v = verdict(compare_sides(a, b, GateConfig(delta_latency_cpu_frac=0.10)))
    assert v.verdict == PASS and "significant but +3.0% is below δ 10%" in v.reason
    assert v.p < 0.01


def test_significant_between_half_and_the_whole_minimum_effect_warns():
    a, b = sides(BASE12, [v * 1.03 + 0.2 for v in BASE12])  # ≈ +5 %: ≥ δ/2, < δ = 10 %
    v = verdict(compare_sides(a, b, GateConfig(delta_latency_cpu_frac=0.10)))
    assert v.verdict == WARN and "below the FAIL threshold" in v.reason
    assert v.p < 0.01


def test_too_few_runs_is_inconclusive():
    a, b = sides(BASE12[:4], [v * 1.5 for v in BASE12[4:8]])  # C(8,4)=70 <= 1/0.01
    v = verdict(compare_sides(a, b))
    assert v.verdict == INCONCLUSIVE
    assert "too few runs to ever reach significance" in v.reason
    a, b = sides(BASE12[:1], BASE12[1:2])
    assert "too few runs" in verdict(compare_sides(a, b)).reason


def test_too_noisy_is_inconclusive():
    noisy = list(10.0 * np.exp(np.random.default_rng(3).normal(0, 0.08, 24)))
    a, b = sides(noisy[:12], noisy[12:])
    v = verdict(compare_sides(a, b))
    assert v.verdict == INCONCLUSIVE and "too noisy" in v.reason


def test_environment_mismatch():
    a, _ = sides(BASE12, BASE12)
    _, b = sides(BASE12, BASE12, threads=2)
    report = compare_sides(a, b)
    assert verdict(report).verdict == INCONCLUSIVE
    assert "threads 1 → 2" in verdict(report).reason
    assert verdict(report, "params").verdict == PASS  # deterministic: unaffected
    # another FLOP counter or counter version: GFLOPs not comparable
    _, b = sides(BASE12, BASE12, counter="torch.utils.flop_counter")
    assert verdict(compare_sides(a, b), "gflops").verdict == NOT_COMPARABLE
    b = side_from_results([run(row(latency=v), fvcore="0.1.6") for v in BASE12], "B")
    v = verdict(compare_sides(a, b), "gflops")
    assert v.verdict == NOT_COMPARABLE and "fvcore" in v.reason
    b = side_from_results([run(row(latency=v), torch="2.15.0") for v in BASE12], "B")
    assert "torch 2.14.1 → 2.15.0" in verdict(compare_sides(a, b)).reason


def test_model_on_one_side_and_failed_candidate():
    a = side_from_results([run(row("x", latency=1.0), row("gone", latency=1.0))], "A")
    b = side_from_results([run(row("x", latency=1.0), row("new", latency=1.0))], "B")
    report = compare_sides(a, b)
    assert verdict(report, "*", "gone").verdict == NOT_COMPARABLE
    assert verdict(report, "*", "new").verdict == NOT_COMPARABLE
    assert report.exit_code() == 3 and report.exit_code("pass") == 0  # 3: INCONCLUSIVE
    b = side_from_results([run(row("x", status="failed", error="boom"),
                               row("gone", latency=1.0))], "B")
    v = verdict(compare_sides(a, b), "*", "x")
    assert v.verdict == FAIL and "boom" in v.reason


def test_deterministic_exact():
    a = side_from_results([run(row(params=1000, gflops=1.5))], "A")
    for params, gflops, expected in [(1000, 1.5, (PASS, PASS)), (1001, 1.5, (FAIL, PASS)),
                                     (999, 1.4, (IMPROVED, IMPROVED)), (1000, 1.5000001, (PASS, FAIL))]:
        b = side_from_results([run(row(params=params, gflops=gflops))], "B")
        report = compare_sides(a, b)
        assert (verdict(report, "params").verdict, verdict(report, "gflops").verdict) == expected


def test_cuda_memory_exact_with_tolerance_or_demoted():
    a = side_from_results([run(row(memory=100.0, device="cuda")) for _ in range(3)], "A")
    b = side_from_results([run(row(memory=100.5, device="cuda")) for _ in range(3)], "B")
    assert verdict(compare_sides(a, b), "peak_memory_mb").verdict == FAIL
    assert verdict(compare_sides(a, b, GateConfig(cuda_memory_tol_mib=1)), "peak_memory_mb").verdict == PASS
    a = side_from_results([run(row(memory=m, device="cuda")) for m in (100.0, 100.1, 100.0)], "A")
    v = verdict(compare_sides(a, b), "peak_memory_mb")
    assert v.kind == "noisy" and v.delta == 0.01


def test_cpu_memory_with_ties_and_floor():
    mem_a = [50.0, 50.0, 50.5, 50.0, 50.5, 50.0] * 2
    a, b = sides(BASE12, BASE12, memory_a=mem_a, memory_b=[m + 16 for m in mem_a])
    v = verdict(compare_sides(a, b), "peak_memory_mb")
    assert v.verdict == FAIL and v.delta == pytest.approx(4 / 51.0)
    a, b = sides(BASE12, BASE12, memory_a=mem_a, memory_b=[m + 2 for m in mem_a])
    # +2 MiB ≈ +3.9 %: below δ = 4 MiB / 51 MiB ≈ 7.8 % (the floor), above δ/2, significant
    assert verdict(compare_sides(a, b), "peak_memory_mb").verdict == WARN


def test_calibration_drift_makes_latency_inconclusive():
    calib_a = [2.0 + 0.001 * i for i in range(12)]
    a, b = sides(BASE12, [v * 1.3 for v in BASE12], calib_a=calib_a,
                 calib_b=[c * 1.3 for c in calib_a])
    report = compare_sides(a, b, mode="ab")
    v = verdict(report)
    assert v.verdict == INCONCLUSIVE and "regime shift" in v.reason
    assert verdict(report, model="calibration").verdict == INCONCLUSIVE


def test_holm_family_spans_all_noisy_tests():
    runs_a, runs_b = [], []
    for i, value in enumerate(BASE12[:8]):
        runs_a.append(run(*[row(f"m{k}", latency=value) for k in range(20)]))
        runs_b.append(run(*[row(f"m{k}", latency=BASE12[7 - i] * (1.2 if k == 0 else 1.0))
                            for k in range(20)]))
    report = compare_sides(side_from_results(runs_a, "A"), side_from_results(runs_b, "B"))
    assert report.noisy_tests == 20
    v = verdict(report, model="m0")
    assert v.p_holm == pytest.approx(min(1, 20 * v.p))
    assert v.verdict == FAIL  # 20/12870 < 0.01


def test_confirmation_demotes_unconfirmed_fail():
    a, b = sides(BASE12, [v * 1.2 for v in BASE12])
    report = compare_sides(a, b, mode="ab")
    pooled_a, pooled_b = sides(BASE12 * 2, [v * 1.2 for v in BASE12] + [v * 0.9 for v in BASE12])
    confirm(report, compare_sides(pooled_a, pooled_b, mode="ab"))
    v = verdict(report)
    assert v.verdict == WARN and "unconfirmed" in v.reason
    report = compare_sides(a, b, mode="ab")
    pooled_a, pooled_b = sides(BASE12 * 2, [v * 1.2 for v in BASE12] * 2)
    confirm(report, compare_sides(pooled_a, pooled_b, mode="ab"))
    assert verdict(report).verdict == FAIL and verdict(report).confirmation["confirmed"]


def test_baseline_file_roundtrip_and_stored_mode_widens_delta():
    spread = list(10.0 * np.exp(np.linspace(-0.06, 0.06, 12)))  # robust SD ≈ 4 %
    runs = [run(row(latency=v, memory=40.0 + i)) for i, v in enumerate(spread)]
    baseline = build_baseline(runs, ["r"])
    assert baseline.runs == 12
    base = Baseline.model_validate_json(baseline.to_json()).to_side()
    assert base.models["m"].latency[0.2] == pytest.approx(spread)
    cand = side_from_results([run(row(latency=v * 1.07)) for v in spread], "B")
    v = verdict(compare_sides(base, cand))
    assert v.delta > 0.05 and "stored-baseline mode" in v.reason
    # +7 % is within 3× the recorded between-run spread: significant, but below the widened δ
    assert v.verdict == PASS and "significant but +7.0%" in v.reason


def test_suite_level_drift_with_the_calibration_is_inconclusive():
    """Every model ×1.12 and the probe ×1.10 (too noisy to be significant on its own): the
    machine changed, so no latency FAIL; the same shifts with a steady probe do FAIL."""
    spread = [0.7, 1.4, 0.8, 1.3, 0.9, 1.2, 1.0, 1.1, 0.75, 1.35, 0.85, 1.25]

    def runs(factor, calib_factor, order):
        return [run(*(row(f"m{k}", latency=BASE12[i] * (1 + k / 10) * factor) for k in range(4)),
                    row("calibration", latency=2.0 * calib_factor * spread[order[i]],
                        model=CALIBRATION_MODEL))
                for i in range(12)]

    forward, backward = list(range(12)), list(range(11, -1, -1))
    base = side_from_results(runs(1.0, 1.0, forward), "A")
    drifted = compare_sides(base, side_from_results(runs(1.12, 1.10, backward), "B"), mode="ab")
    assert verdict(drifted, model="calibration").verdict == PASS  # not significant alone
    lat = [v for v in drifted.verdicts if v.metric == "latency_ms" and v.kind == "noisy"]
    assert len(lat) == 4 and all(v.verdict == INCONCLUSIVE for v in lat)
    assert "suite-level drift" in lat[0].reason
    steady = compare_sides(base, side_from_results(runs(1.12, 1.0, backward), "B"), mode="ab")
    assert all(v.verdict == FAIL for v in steady.verdicts
               if v.metric == "latency_ms" and v.kind == "noisy")
