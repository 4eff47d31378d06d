"""What ran before the timed calls must not change them: timing precedes counting, and
workers run with fixed glibc malloc thresholds."""

import pytest

from vitbench.measure.job import measure_job
from vitbench.run.runner import MALLOC_ENV, worker_env

from jobs import small_job


def _job(**overrides):
    return small_job("timm:test_vit", **{"name": "t", "image_size": (64, 64),
                                         "max_time_s": 30.0, "timeout_s": 60.0, **overrides})


def test_timing_runs_before_the_flop_count():
    stages = []
    row = measure_job(_job(), stages.append)
    assert row.status == "ok", row.error
    assert stages.index("time") < stages.index("count")
    assert row.gflops and row.latency_ms and row.minor_faults_per_call is not None


def test_workers_get_fixed_malloc_thresholds_unless_the_user_set_them(monkeypatch):
    env = worker_env(_job())
    for key, value in MALLOC_ENV.items():
        assert env[key] == value
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "123")
    assert worker_env(_job())["MALLOC_TRIM_THRESHOLD_"] == "123"


def _timed_row(samples, status="ok", error=None):
    from vitbench.records import ModelResult

    return ModelResult(name="m", model="timm:test_vit", image_size=(32, 32), batch_size=2,
                       device="cpu", dtype="float32", threads=1, flops_convention="matmul-only",
                       tolerance_pct=5, status=status, error=error, params=10,
                       latency_samples_ms=list(samples))


def test_pool_processes_pools_samples_and_flags_a_spread_between_processes():
    from vitbench.measure.job import pool_processes

    first = _timed_row([10.0, 10.2, 9.9, 10.1])
    steady = pool_processes(first, [_timed_row([10.05, 10.0, 10.15, 9.95])])
    assert steady.latency_ms["processes"] == 2 and len(steady.latency_samples_ms) == 8
    assert steady.latency_ms["process_spread"] < 1.02 and not steady.latency_ms["unstable"]
    assert steady.throughput_img_s == pytest.approx(2 / (steady.latency_ms["median"] / 1000))

    flipped = pool_processes(first, [_timed_row([7.3, 7.4, 7.2, 7.35]),
                                     _timed_row([], status="failed", error="worker died")])
    assert flipped.latency_ms["process_spread"] == pytest.approx(10.05 / 7.325, rel=1e-3)
    assert flipped.latency_ms["unstable"] is True
    assert any("between processes" in w for w in flipped.warnings)
    assert any("timing process 3 failed (worker died)" in w for w in flipped.warnings)
