"""What ran before the timed calls must not change them: timing precedes counting, and
workers run with fixed glibc malloc thresholds."""

from vitbench.measure import measure_job
from vitbench.runner import MALLOC_ENV, worker_env
from vitbench.spec import Job


def _job(**overrides):
    settings = dict(name="t", model="timm:test_vit", kwargs={}, image_size=(64, 64),
                    batch_size=1, device="cpu", dtype="float32", threads=1, warmup=1,
                    warmup_s=0.0, repeat=3, min_time_s=0.0, max_time_s=30.0, timeout_s=60.0,
                    flops_convention="matmul-only", tolerance_pct=5.0)
    settings.update(overrides)
    return Job(**settings)


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
