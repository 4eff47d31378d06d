"""What ran before the timed calls must not change them: timing precedes counting, and
workers run with fixed glibc malloc thresholds."""

import pytest

from vitbench.measure.job import measure_job
from vitbench.run.workers import MALLOC_ENV, worker_env

from jobs import small_job


def _job(**overrides):
    return small_job("timm:test_vit", **{"name": "t", "image_size": (64, 64),
                                         "max_time_s": 30.0, "timeout_s": 60.0, **overrides})


def test_timing_runs_before_the_flop_count():
    stages = []
    row = measure_job(_job(), stages.append)
    assert row.status == "ok", row.error
    assert stages.index("time") < stages.index("count")
    assert row.gmacs and row.latency_summary and row.latency.minor_faults_per_call is not None


def test_workers_get_fixed_malloc_thresholds_unless_the_user_set_them(monkeypatch):
    env = worker_env(_job())
    for key, value in MALLOC_ENV.items():
        assert env[key] == value
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "123")
    assert worker_env(_job())["MALLOC_TRIM_THRESHOLD_"] == "123"


def _timed_row(samples, status="ok", error=None):
    from vitbench.records import Latency, LatencySummary, ModelResult, StaticCost
    from vitbench.stats import summarize

    latency = Latency(samples_ms=list(samples), summary=LatencySummary.of(summarize(samples)),
                      first_call_ms=20.0, calls_per_sample=1) if samples else None
    return ModelResult(name="m", model="timm:test_vit", image_size=(32, 32), batch_size=2,
                       device="cpu", dtype="float32", threads=1, flops_convention="matmul-only",
                       tolerance_pct=5, status=status, error=error,
                       counts=StaticCost(params=10), latency=latency)


def test_pool_processes_pools_samples_and_flags_a_spread_between_processes():
    from vitbench.measure.job import pool_processes

    first = _timed_row([10.0, 10.2, 9.9, 10.1])
    steady = pool_processes(first, [_timed_row([10.05, 10.0, 10.15, 9.95])])
    summary = steady.latency.summary
    assert summary.processes == 2 and len(steady.latency.samples_ms) == 8
    assert summary.n == 8 and summary.median == pytest.approx(10.025)
    assert summary.process_medians_ms == [10.05, 10.025]
    assert summary.process_spread < 1.02 and not summary.unstable
    assert steady.throughput_img_s == pytest.approx(2 / (summary.median / 1000))
    assert steady.latency.first_call_ms == 20.0, "the first process's"
    assert steady.counts == first.counts

    flipped = pool_processes(first, [_timed_row([7.3, 7.4, 7.2, 7.35]),
                                     _timed_row([], status="failed", error="worker died")])
    assert flipped.latency.summary.process_spread == pytest.approx(10.05 / 7.325, rel=1e-3)
    assert flipped.latency.summary.unstable is True
    assert any("between processes" in w for w in flipped.warnings)
    assert any("timing process 3 failed (worker died)" in w for w in flipped.warnings)
