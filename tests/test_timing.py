"""The timed loop under an injected fake clock (exact numbers), stopping rules, batch search,
and one real small model on CPU. (Planning batch sweeps: test_plan.py.)"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np
import pytest

from vitbench.measure.timing import AUTO_BLOCK_S, Protocol, find_max_batch, time_calls

from helpers_timing import FakeClock
from jobs import small_job


def run(durations, **protocol):
    clock = FakeClock(durations)
    timing = time_calls(clock.fn, Protocol(**protocol), clock=clock, sync=clock.sync)
    return clock, timing


def test_first_call_and_warmup_are_excluded_and_samples_exact():
    timed = [float(v) for v in range(1, 11)]
    clock, timing = run([100.0, 50.0, 50.0, 50.0, *timed], warmup=3, repeat=10, min_time_s=0)
    assert timing.first_call_ms == 100.0
    assert timing.warmup_calls == 3 and timing.warmup_ms_total == 150.0
    assert timing.samples_ms == timed, "warm-up and the first call never enter the samples"
    assert timing.stopped_by == "minimums" and timing.calls_per_sample == 1
    from vitbench.stats import summarize

    summary = summarize(timing.samples_ms)
    assert summary.n == 10 and summary.median == 5.5 and summary.mean == 5.5
    assert summary.min == 1.0 and summary.max == 10.0
    assert summary.p90 == pytest.approx(np.percentile(timed, 90))
    assert summary.iqr == pytest.approx(np.percentile(timed, 75) - np.percentile(timed, 25))


def test_warmup_seconds_keep_warming_past_the_iteration_count():
    _, timing = run([50.0], warmup=1, warmup_s=0.2, repeat=2, min_time_s=0)
    assert timing.warmup_calls == 4  # 4 × 50 ms reaches 0.2 s
    assert timing.warmup_ms_total == 200.0


def test_min_time_wins_when_repeat_is_reached_first():
    _, timing = run([100.0], warmup=0, repeat=3, min_time_s=1.0)
    assert len(timing.samples_ms) == 10 and timing.stopped_by == "minimums"


def test_repeat_wins_when_min_time_is_reached_first():
    _, timing = run([100.0], warmup=0, repeat=20, min_time_s=0.1)
    assert len(timing.samples_ms) == 20


def test_max_time_stops_before_the_minimums():
    _, timing = run([100.0], warmup=0, repeat=1000, min_time_s=0, max_time_s=1.0)
    assert len(timing.samples_ms) == 10 and timing.stopped_by == "max-time"


def test_ci_target_stops_once_the_median_is_known_well_enough():
    from vitbench.stats import relative_ci_halfwidth_pct

    noisy = [10.0 + (i % 5) * 0.1 for i in range(10_000)]  # ±2 % spread around 10.2 ms
    _, timing = run([20.0, *noisy], warmup=0, repeat=10, min_time_s=0, max_time_s=100,
                    target_ci_pct=0.5)
    assert timing.stopped_by == "ci-target"
    assert relative_ci_halfwidth_pct(timing.samples_ms) <= 0.5
    assert len(timing.samples_ms) >= 10


def test_ci_target_out_of_reach_ends_at_max_time():
    wide = [1.0, 100.0] * 5000
    _, timing = run(wide, warmup=0, repeat=10, min_time_s=0, max_time_s=2.0,
                    target_ci_pct=0.1)
    assert timing.stopped_by == "max-time"
    assert sum(timing.samples_ms) >= 2000.0


def test_without_ci_target_the_minimums_end_the_loop_even_if_noisy():
    wide = [1.0, 100.0] * 50
    _, timing = run(wide, warmup=0, repeat=10, min_time_s=0)
    assert len(timing.samples_ms) == 10 and timing.stopped_by == "minimums"


def test_throughput_blocks_sync_only_at_block_ends_and_report_per_call_time():
    clock, timing = run([1.0, 2.0, 2.0, 4.0], warmup=0, repeat=5, min_time_s=0,
                        calls_per_sample=4)
    # the first call is 1 ms; then every call is 2, 2, 4, 4, ... → blocks of 4 calls
    assert timing.calls_per_sample == 4
    assert clock.calls == 1 + 5 * 4
    assert timing.samples_ms[0] == pytest.approx((2 + 2 + 4 + 4) / 4)
    assert timing.samples_ms[1:] == [4.0] * 4
    # one sync before the first call, then one per block (first call, 5 samples)
    assert clock.syncs == 1 + 1 + 5


def test_throughput_auto_block_is_long_enough():
    _, timing = run([2.0], warmup=3, repeat=3, min_time_s=0, calls_per_sample=0)
    assert timing.calls_per_sample == math.ceil(AUTO_BLOCK_S * 1000 / 2.0)


def test_around_timed_wraps_exactly_the_timed_samples():
    seen = {}
    clock = FakeClock([5.0])

    @contextlib.contextmanager
    def around():
        seen["calls_at_enter"] = clock.calls
        yield
        seen["calls_at_exit"] = clock.calls

    timing = time_calls(clock.fn, Protocol(warmup=4, repeat=6, min_time_s=0), clock=clock,
                        around_timed=around)
    assert seen == {"calls_at_enter": 1 + 4, "calls_at_exit": 1 + 4 + 6}
    assert len(timing.samples_ms) == 6


@pytest.mark.parametrize("capacity", [1, 2, 3, 37, 64, 100, 4095])
def test_find_max_batch_doubles_then_bisects(capacity):
    best, tries = find_max_batch(lambda b: b <= capacity, limit=4096)
    assert best == capacity
    assert len(tries) <= 2 * math.ceil(math.log2(capacity + 1)) + 2
    assert all(ok == (b <= capacity) for b, ok in tries)


def test_find_max_batch_edges():
    assert find_max_batch(lambda b: False)[0] == 0
    best, tries = find_max_batch(lambda b: True, limit=100)
    assert best == 100 and tries[-1] == (100, True)


# --- a real small model on CPU -------------------------------------------------------------

def _job(**changes):
    return small_job("python:tests.fixtures_models:tiny", **{
        "name": "tiny", "batch_size": 2, "warmup": 2, "repeat": 8, "max_time_s": 10.0,
        "timeout_s": 60, **changes})


def test_a_real_model_on_cpu_gives_a_complete_row():
    from vitbench.measure.job import measure_job

    row = measure_job(_job())
    assert row.status == "ok", row.error
    timed = row.latency
    lat = timed.summary
    for key in ("n", "median", "mean", "p90", "p99", "min", "iqr", "ci_low", "ci_high",
                "unstable"):
        assert getattr(lat, key) is not None
    assert lat.n == len(timed.samples_ms) >= 8
    assert lat.min <= lat.ci_low <= lat.median <= lat.ci_high <= lat.max
    assert row.throughput_img_s == pytest.approx(2 / (lat.median / 1000))
    assert timed.first_call_ms > 0 and timed.warmup_calls == 2
    assert timed.timer == "host perf_counter"
    assert row.counts.params == sum(p.numel() for p in __import__("tests.fixtures_models", fromlist=["x"]).tiny().parameters())
    assert row.telemetry.nvml == {"nvml": "not sampled: device is cpu"}
    assert row.telemetry.gpu_power_w is None and row.telemetry.energy_j_per_img is None


@pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="foreign CPU needs Linux /proc/stat")
def test_a_timed_row_on_linux_says_how_contended_the_machine_was():
    from vitbench.env import CONTENDED_FOREIGN_PCT
    from vitbench.measure.job import measure_job

    row = measure_job(_job(count=False))
    assert row.status == "ok", row.error
    contention = row.environment["contention"]
    telemetry = row.telemetry
    assert contention["foreign_cpu_pct"] == telemetry.foreign_cpu_pct >= 0
    assert telemetry.contended is (telemetry.foreign_cpu_pct > CONTENDED_FOREIGN_PCT)
    assert set(contention) == {
        "wall_s", "own_cpu_s", "load_average_1m_start", "load_average_1m_end",
        "machine_busy_cpu_s", "foreign_cpu_s", "steal_cpu_s", "foreign_cpu_pct", "own_cpu_share"}


def test_a_real_model_in_throughput_mode_with_channels_last():
    from vitbench.measure.job import measure_job

    row = measure_job(_job(mode="throughput", channels_last=True, count=False, repeat=3))
    assert row.status == "ok", row.error
    assert row.latency.calls_per_sample >= 2 and row.mode == "throughput" and row.channels_last
    assert row.gmacs is None, "count=False skips the FLOP count"


def test_max_batch_on_cpu_is_a_failed_row_with_the_reason():
    from vitbench.measure.job import measure_job

    row = measure_job(_job(max_batch=True, count=False))
    assert row.status == "failed" and "needs device: cuda" in row.error
