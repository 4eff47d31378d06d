"""The typed stages and the one place they meet the row: the timing primitives under a fake
clock, ``Timing.latency()``, ``count_static`` on a module with a closed-form count, and
``measure.row`` putting each stage result onto the row as its part, with its warnings."""

from __future__ import annotations

import gc

import pytest

from vitbench.measure.row import (FAULTS_PER_CALL_WARNING, apply_latency, apply_memory,
                                  apply_static)
from vitbench.measure.timing import HostTimer, Timing, gc_paused, time_block, time_call
from vitbench.records import (Latency, LatencySummary, ModelResult, PeakMemory, StaticCost,
                              Telemetry, TimedWindow)
from vitbench.stats import summarize, window_spread

from helpers_timing import FakeClock
from jobs import small_job

TINY = "python:tests.fixtures_models:tiny"


# --- timing primitives ---------------------------------------------------------------------

def test_time_block_gives_one_sample_per_call_with_the_collector_off():
    clock = FakeClock([1.0, 2.0, 3.0])
    collector_on = []

    def call():
        collector_on.append(gc.isenabled())
        clock.fn()

    assert gc.isenabled()
    assert time_block(call, 3, HostTimer(clock)) == [1_000_000, 2_000_000, 3_000_000]
    assert collector_on == [False, False, False] and gc.isenabled()


def test_time_block_samples_of_several_calls_are_whole_sample_times():
    clock = FakeClock([1.0, 2.0, 3.0])  # then 3 ms per call
    assert time_block(clock.fn, 2, HostTimer(clock), calls_per_sample=3) == [6_000_000, 9_000_000]
    assert clock.calls == 6


def test_time_call_leaves_the_collector_as_it_is_and_gc_paused_nests():
    clock = FakeClock([4.0])
    collector_on = []

    def call():
        collector_on.append(gc.isenabled())
        clock.fn()

    assert time_call(call, HostTimer(clock), calls=2) == 8_000_000 and collector_on == [True] * 2
    with gc_paused():
        time_block(call, 1, HostTimer(clock))
        assert not gc.isenabled(), "an inner block does not switch an outer pause off"
    assert gc.isenabled()


def test_the_latency_of_a_timing_is_its_samples_with_their_summary():
    samples = [float(v) for v in range(1, 13)]
    timing = Timing(samples_ms=samples, first_call_ms=50.0, warmup_calls=3,
                    warmup_ms_total=9.0, stopped_by="minimums", calls_per_sample=4,
                    timer="host perf_counter")
    latency = timing.latency()
    assert latency.samples_ms == samples
    assert latency.summary == LatencySummary(**summarize(samples).to_dict(),
                                             window_spread=window_spread(samples))
    assert latency.summary.window_spread == pytest.approx(11.0 / 2.0), "exact, not rounded"
    assert latency.summary.exact() == summarize(samples)
    assert latency.calls == 12 * 4
    assert (latency.first_call_ms, latency.warmup_calls, latency.stopped_by, latency.timer) == (
        50.0, 3, "minimums", "host perf_counter")


# --- the static stage ----------------------------------------------------------------------

def test_count_static_of_the_tiny_fixture_is_its_closed_form():
    import torch

    from vitbench.build import zoo
    from vitbench.measure.static import count_static

    job = small_job(TINY)
    zoo.import_zoo(job.model)
    module = zoo.build_model(job.model, job.kwargs, job.image_size).to(torch.float64)
    params = (4 * 3 * 3 * 3 + 4) + (4 * 10 + 10)  # conv 3→4 (3×3), linear 4→10
    only_params = count_static(job, module, flops=False)
    assert only_params == StaticCost(params=params) and not only_params.flops_counted
    assert next(module.parameters()).dtype == torch.float64, "without FLOPs nothing moves"

    cost = count_static(job, module)
    macs = 16 * 16 * 4 * 3 * 3 * 3 + 4 * 10  # a stride-2 conv at 32 px, then the head
    assert cost.params == params and cost.gmacs * 1e9 == pytest.approx(macs)
    assert cost.crosscheck_gmacs * 1e9 == pytest.approx(macs) and cost.counters_agree is True
    assert cost.counter == "fvcore+sdpa" and cost.uncounted_ops == {"aten::mean": 1}
    assert cost.gap_ops == [] and cost.crosscheck_uncounted_ops == {} and cost.error is None
    assert next(module.parameters()).dtype == torch.float32, "counts are taken in fp32"


# --- the row --------------------------------------------------------------------------------

def _row(**job_changes) -> ModelResult:
    return ModelResult.for_job(small_job(TINY, batch_size=2, **job_changes))


def test_params_alone_leave_the_flop_fields_empty():
    row = _row()
    apply_static(row, StaticCost(params=1_500_000))
    assert row.counts == StaticCost(params=1_500_000) and row.params_m == 1.5
    assert row.gmacs is None and row.counts.counter is None and row.warnings == []
    assert row.model_dump()["counts"]["crosscheck_uncounted_ops"] == {}, "a declared field"


def test_a_flop_count_lands_on_the_row_with_its_warnings():
    row = _row()
    cost = StaticCost(
        params=10, gmacs=1.0, counter="fvcore+sdpa", crosscheck_gmacs=1.5,
        crosscheck_counter="torch.utils.flop_counter+cpu-sdpa", counters_agree=False,
        uncounted_ops={"aten::mean": 2, "aten::fancy": 1}, gap_ops=["aten::fancy"],
        crosscheck_uncounted_ops={"aten::fancy": 1}, error="fvcore could not trace")
    apply_static(row, cost)
    assert row.counts is cost, "the stage's object is the row's part, as it is"
    counts = row.counts
    assert (row.gmacs, counts.counter, counts.crosscheck_gmacs, counts.counters_agree) == (
        1.0, "fvcore+sdpa", 1.5, False)
    assert counts.crosscheck_counter == "torch.utils.flop_counter+cpu-sdpa"
    assert counts.uncounted_ops == {"aten::mean": 2, "aten::fancy": 1}
    assert counts.gap_ops == ["aten::fancy"] and counts.error == "fvcore could not trace"
    assert row.model_dump()["counts"]["crosscheck_uncounted_ops"] == {"aten::fancy": 1}
    assert row.warnings == [
        "ops that may carry MACs were not counted: aten::fancy",
        "counters disagree: fvcore+sdpa 1.0000 vs torch.utils.flop_counter+cpu-sdpa "
        "1.5000 GFLOPs"]


def _latency(samples, **changes) -> Latency:
    summary = LatencySummary.of(summarize(samples), window_spread=window_spread(samples))
    fields = dict(samples_ms=samples, summary=summary, first_call_ms=30.0, warmup_calls=5,
                  stopped_by="minimums", timer="host perf_counter", calls_per_sample=1)
    fields.update(changes)
    return Latency(**fields)


def _window(**changes) -> TimedWindow:
    fields = dict(minor_faults=0, contention={"foreign_cpu_pct": 1.0, "load_average_1m_start": 0.5},
                  foreign_cpu_pct=1.0, contended=False,
                  gpu_telemetry={"nvml": "not sampled: device is cpu"},
                  malloc={"MALLOC_TRIM_THRESHOLD_": "4294967296", "MALLOC_MMAP_THRESHOLD_": None})
    fields.update(changes)
    return TimedWindow(**fields)


def test_a_steady_timed_loop_lands_on_the_row_without_warnings():
    samples = [10.0 + 0.01 * (i % 3) for i in range(20)]
    row = _row(repeat=20)
    latency = _latency(samples)
    apply_latency(row, small_job(TINY, repeat=20), latency, _window(minor_faults=40))
    stored = row.latency
    assert stored.summary.model_dump() == {
        **summarize(samples).to_dict(), "window_spread": round(window_spread(samples), 4),
        "processes": None, "process_medians_ms": None, "process_spread": None}
    assert stored.samples_ms == [round(s, 6) for s in samples]
    assert row.throughput_img_s == pytest.approx(2 / (latency.summary.median / 1000))
    assert stored.throughput_img_s == row.throughput_img_s
    assert stored.minor_faults_per_call == 40 / 20
    assert (stored.first_call_ms, stored.warmup_calls, stored.stopped_by, stored.timer,
            stored.calls_per_sample) == (30.0, 5, "minimums", "host perf_counter", 1)
    assert row.telemetry == Telemetry(foreign_cpu_pct=1.0, contended=False,
                                      nvml={"nvml": "not sampled: device is cpu"})
    assert row.telemetry.gpu_power_w is None
    assert list(row.environment) == ["malloc", "contention"]
    assert row.warnings == []


def test_faults_drift_instability_time_limits_and_contention_each_warn_in_order():
    samples = [10.0] * 6 + [30.0, 5.0] * 3 + [20.0] * 6  # quarters differ; wide spread
    job = small_job(TINY, batch_size=2, repeat=100, target_ci_pct=1.0, compile="default")
    row = ModelResult.for_job(job)
    faults = (FAULTS_PER_CALL_WARNING + 1) * len(samples)
    apply_latency(row, job, _latency(samples, stopped_by="max-time"),
                  _window(minor_faults=faults, foreign_cpu_pct=40.0, contended=True,
                          contention={"foreign_cpu_pct": 40.0, "load_average_1m_start": 1.5}))
    expected = [f"{FAULTS_PER_CALL_WARNING + 1} page faults per call: ", "drift: ",
                "unstable latency: ", "max_time_s reached after 18 of 100 samples",
                "target_ci_pct 1% not reached in max_time_s: ", "contended: "]
    assert len(row.warnings) == len(expected)
    for warning, start in zip(row.warnings, expected):
        assert warning.startswith(start), (warning, start)
    assert "(load 1.5)" in row.warnings[-1] and row.telemetry.contended is True
    assert row.environment["first_call_includes_compile"] is True


def test_gpu_telemetry_fills_the_power_columns():
    row = _row()
    telemetry = {"nvml": "ok", "power_w_mean": 210.0, "energy_j_per_img": 0.25,
                 "util_pct_mean": 87.5, "temp_c_max": 61.0}
    apply_latency(row, small_job(TINY), _latency([1.0] * 12), _window(gpu_telemetry=telemetry))
    power = row.telemetry
    assert (power.gpu_power_w, power.energy_j_per_img, power.gpu_util_pct, power.gpu_temp_c) == (
        210.0, 0.25, 87.5, 61.0)
    assert power.nvml == telemetry


def test_peak_memory_lands_on_the_row_with_its_cpu_parts():
    row = _row()
    parts = {"weights_and_buffers_mib": 1.5, "inference_extra_rss_mib": 2.0,
             "rss_before_inference_mib": 900.0, "peak_rss_mib": 902.0}
    apply_memory(row, PeakMemory(peak_mib=3.5, method="cpu: ...", parts=parts),
                 rss_before_build_kib=880 * 1024)
    assert (row.peak_memory_mib, row.memory.reserved_mib, row.memory.method) == (
        3.5, None, "cpu: ...")
    assert row.memory.parts == {**parts, "rss_before_build_mib": 880.0}
    assert "memory" not in row.environment

    cuda_memory = PeakMemory(peak_mib=100.0, reserved_mib=128.0, method="cuda ...")
    cuda_row = _row()
    apply_memory(cuda_row, cuda_memory)
    assert cuda_row.memory is cuda_memory, "the stage's object, as it is"
    assert (cuda_row.peak_memory_mib, cuda_row.memory.reserved_mib) == (100.0, 128.0)
    assert "memory" not in cuda_row.environment
