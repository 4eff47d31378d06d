"""The regression gate's statistics and decisions on synthetic run-level data (exact outcomes)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from vitbench import gate
from vitbench.gate import (FAIL, IMPROVED, INCONCLUSIVE, NOT_COMPARABLE, PASS, WARN, GateConfig,
                           build_baseline, compare_sides, side_from_baseline, side_from_results)
from vitbench.records import ModelResult, RunResult

RNG = np.random.default_rng(7)
#: Twelve run-level latencies (ms) with a 1 % between-run spread, no ties.
BASE12 = list(10.0 * np.exp(RNG.normal(0, 0.01, 12)))


def row(name="m", *, latency=None, memory=None, params=1000, gflops=1.5, status="ok",
        counter="fvcore+sdpa", convention="matmul-only", threads=1, device="cpu",
        model="timm:test_vit", error=None):
    return ModelResult(
        name=name, model=model, image_size=(224, 224), batch_size=1, device=device,
        dtype="float32", threads=threads, flops_convention=convention, tolerance_pct=5,
        status=status, error=error, params=params if status == "ok" else None,
        gflops=gflops if status == "ok" else None, gflops_counter=counter,
        latency_samples_ms=[latency] * 5 if latency is not None else [],
        peak_memory_mb=memory)


def run(*rows, torch="2.14.1", fvcore="0.1.5"):
    return RunResult(schema="vitbench.result/1", suite={"name": "s", "sha256": "x"},
                     created_utc="2026-01-01T00:00:00+00:00",
                     environment={"cpu": "cpu0", "cpu_count_usable": 2, "python": "3.11",
                                  "torch": torch, "fvcore": fvcore},
                     results=list(rows))


def sides(a_values, b_values, *, memory_a=None, memory_b=None, calib_a=None, calib_b=None,
          **row_kwargs):
    """A and B sides, one run per value."""
    def build(values, memory, calib):
        runs = []
        for i, value in enumerate(values):
            rows = [row(latency=value, memory=None if memory is None else memory[i], **row_kwargs)]
            if calib is not None:
                rows.append(row("calibration", latency=calib[i], model=gate.CALIBRATION_MODEL))
            runs.append(run(*rows))
        return runs
    return (side_from_results(build(a_values, memory_a, calib_a), "A"),
            side_from_results(build(b_values, memory_b, calib_b), "B"))


def verdict(report, metric="latency_ms", model="m"):
    return next(v for v in report.verdicts if v.metric == metric and v.model == model)


# --- statistics ------------------------------------------------------------------------

@pytest.mark.parametrize("n_a,n_b", [(3, 4), (5, 5), (2, 7), (6, 4)])
def test_mwu_null_cdf_matches_enumeration(n_a, n_b):
    counts = np.zeros(n_a * n_b + 1)
    for a_ranks in itertools.combinations(range(n_a + n_b), n_a):
        chosen = set(a_ranks)
        u = sum(1 for i in range(n_a + n_b) if i not in chosen for j in a_ranks if i > j)
        counts[u] += 1
    assert np.allclose(gate.mwu_null_cdf(n_a, n_b), np.cumsum(counts) / counts.sum())


def test_hodges_lehmann_and_moses_ci():
    a, b = [1.0, 2.0, 3.0], [2.5, 3.5, 4.5, 5.5]
    diffs = sorted(y - x for x in a for y in b)
    assert gate.hodges_lehmann(a, b) == pytest.approx(float(np.median(diffs)))
    # n=3 vs 4: no finite 95 % interval exists (P(U=0) = 1/35 > 0.025)
    assert gate.moses_ci(a, b) == (-math.inf, math.inf)
    a12, b12 = np.arange(12.0), np.arange(12.0) + 5
    lo, hi = gate.moses_ci(a12, b12)
    assert lo < 5 < hi
    # k = 38 for 12 vs 12 at 95 % (P(U <= 37) <= 0.025 < P(U <= 38))
    cdf = gate.mwu_null_cdf(12, 12)
    assert cdf[37] <= 0.025 < cdf[38]
    d = np.sort(np.subtract.outer(b12, a12).ravel())
    assert (lo, hi) == (d[37], d[144 - 38])


def test_holm_and_discreteness():
    assert list(gate.holm([0.01, 0.04, 0.03, 0.5])) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert gate.min_attainable_p(5, 5) == pytest.approx(1 / 252)
    assert gate.runs_needed(40, 0.01) == 8  # C(16, 8) = 12870 > 4000; C(14, 7) = 3432


def test_mwu_pvalue_exact_and_with_ties():
    a, b = np.arange(6.0), np.arange(6.0) + 10
    assert gate.mwu_pvalue(a, b, "greater") == pytest.approx(1 / math.comb(12, 6))
    tied_a, tied_b = [1, 1, 1, 2, 2, 2], [2, 2, 3, 3, 3, 3]
    p = gate.mwu_pvalue(tied_a, tied_b, "greater")
    # ties broken against H1: the tied 2s of b rank below those of a → U = 4·6 + 2·3 = 30
    assert p == pytest.approx(float(np.sum(np.diff(np.r_[0, gate.mwu_null_cdf(6, 6)])[30:])))
    assert p >= gate.mwu_pvalue([1, 1, 1, 2, 2, 2], [2.1, 2.1, 3, 3, 3, 3], "greater")
    assert gate.mwu_pvalue([1, 1], [1, 1], "greater") == pytest.approx(1.0)


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


def test_significant_but_below_minimum_effect_passes():
    a, b = sides(BASE12, [v * 1.03 + 0.2 for v in BASE12])  # ≈ +5 %: just below? use 3 %
    v = verdict(compare_sides(a, b, GateConfig(delta_latency_cpu=0.10)))
    assert v.verdict in (PASS, WARN)
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
    assert report.exit_code() == 2 and report.exit_code("pass") == 0
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
    assert verdict(compare_sides(a, b, GateConfig(cuda_memory_tol_mb=1)), "peak_memory_mb").verdict == PASS
    a = side_from_results([run(row(memory=m, device="cuda")) for m in (100.0, 100.1, 100.0)], "A")
    v = verdict(compare_sides(a, b), "peak_memory_mb")
    assert v.kind == "noisy" and v.delta == 0.01


def test_cpu_memory_with_ties_and_floor():
    mem_a = [50.0, 50.0, 50.5, 50.0, 50.5, 50.0] * 2
    a, b = sides(BASE12, BASE12, memory_a=mem_a, memory_b=[m + 16 for m in mem_a])
    v = verdict(compare_sides(a, b), "peak_memory_mb")
    assert v.verdict == FAIL and v.delta == pytest.approx(4 / 51.0)
    a, b = sides(BASE12, BASE12, memory_a=mem_a, memory_b=[m + 2 for m in mem_a])
    assert verdict(compare_sides(a, b), "peak_memory_mb").verdict != FAIL  # 2 MiB < 4 MiB floor


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
    assert report.tests == 20
    v = verdict(report, model="m0")
    assert v.p_holm == pytest.approx(min(1, 20 * v.p))
    assert v.verdict == FAIL  # 20/12870 < 0.01


def test_confirmation_demotes_unconfirmed_fail():
    a, b = sides(BASE12, [v * 1.2 for v in BASE12])
    report = compare_sides(a, b, mode="ab")
    pooled_a, pooled_b = sides(BASE12 * 2, [v * 1.2 for v in BASE12] + [v * 0.9 for v in BASE12])
    gate.confirm(report, compare_sides(pooled_a, pooled_b, mode="ab"))
    v = verdict(report)
    assert v.verdict == WARN and "unconfirmed" in v.reason
    report = compare_sides(a, b, mode="ab")
    pooled_a, pooled_b = sides(BASE12 * 2, [v * 1.2 for v in BASE12] * 2)
    gate.confirm(report, compare_sides(pooled_a, pooled_b, mode="ab"))
    assert verdict(report).verdict == FAIL and verdict(report).confirmation["confirmed"]


def test_baseline_file_roundtrip_and_stored_mode_widens_delta():
    spread = list(10.0 * np.exp(np.linspace(-0.06, 0.06, 12)))  # robust SD ≈ 4 %
    runs = [run(row(latency=v, memory=40.0 + i)) for i, v in enumerate(spread)]
    doc = build_baseline(runs, ["r"])
    assert doc["schema"] == gate.BASELINE_SCHEMA and doc["runs"] == 12
    base = side_from_baseline(doc)
    assert base.models["m"].latency[0.2] == pytest.approx(spread)
    cand = side_from_results([run(row(latency=v * 1.07)) for v in spread], "B")
    v = verdict(compare_sides(base, cand))
    assert v.delta > 0.05 and "stored-baseline mode" in v.reason
    assert v.verdict != FAIL  # +7 % is within 3× the recorded between-run spread


# --- resampled self-test --------------------------------------------------------------

def test_resampled_trials_on_measured_like_values():
    from vitbench.gate.ab import resampled_trials

    values = list(5.0 * np.exp(np.random.default_rng(0).normal(0, 0.015, 30)))
    out = resampled_trials(values, n=12, trials=40, shifts=(0.0, 0.2, -0.1), family=10)
    assert out["shifts"]["+0%"]["fail_rate"] == 0
    assert out["shifts"]["+20%"]["fail_rate"] == 1
    assert out["shifts"]["-10%"]["fail_rate"] == 0
    assert out["shifts"]["+20%"]["median_abs_ratio_error_pp"] < 2
    with pytest.raises(ValueError):
        resampled_trials(values[:10], n=12)


def test_interleaved_order():
    from vitbench.gate.ab import interleaved_order

    assert "".join(interleaved_order(4)) == "ABBAABBA"


# --- the fixture model (real torch) ---------------------------------------------------

def test_gate_fixture_injections():
    import torch

    from vitbench.build.builders import load_builders

    builders = load_builders()
    base = builders["gate_fixture"]()
    params = sum(p.numel() for p in base.parameters())
    linear = builders["gate_fixture"](extra_linear=1)
    assert sum(p.numel() for p in linear.parameters()) == params + 16 * 16 + 16
    assert builders["gate_fixture"](extra_work=0.1).extra_repeats == 2
    held = builders["gate_fixture"](hold_mb=1)
    with torch.inference_mode():
        out = held(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 10) and held._held.numel() == 2**20
    calib = builders["gate_calibration"]()
    assert calib(torch.randn(1, 3, 32, 32)).shape == ()


def test_suite_level_drift_with_the_calibration_is_inconclusive():
    """Every model ×1.12 and the probe ×1.10 (too noisy to be significant on its own): the
    machine changed, so no latency FAIL; the same shifts with a steady probe do FAIL."""
    spread = [0.7, 1.4, 0.8, 1.3, 0.9, 1.2, 1.0, 1.1, 0.75, 1.35, 0.85, 1.25]

    def runs(factor, calib_factor, order):
        return [run(*(row(f"m{k}", latency=BASE12[i] * (1 + k / 10) * factor) for k in range(4)),
                    row("calibration", latency=2.0 * calib_factor * spread[order[i]],
                        model=gate.CALIBRATION_MODEL))
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
