"""The one place where the typed stage results become today's flat ``ModelResult`` fields.

``results.json`` (schema ``vitbench.result/1``) stores a row as ~60 flat fields; the stages
return :class:`~vitbench.records.StaticCost`, :class:`~vitbench.records.Latency` with its
:class:`~vitbench.records.TimedWindow`, and :class:`~vitbench.records.PeakMemory`. These
functions copy them over, with the warnings each one implies, so that when the row takes
the typed parts themselves only this module changes.
"""

from __future__ import annotations

from typing import Optional

from vitbench.config.spec import Job
from vitbench.records import Latency, ModelResult, PeakMemory, StaticCost, TimedWindow
from vitbench.stats import DRIFT_RATIO

#: More minor page faults than this per call mean the allocator hands memory back to the OS
#: and faults it in again on every call (the runner fixes glibc's malloc thresholds for that).
FAULTS_PER_CALL_WARNING = 256


def apply_static(row: ModelResult, cost: StaticCost) -> None:
    """Parameters always; the FLOP count and its warnings when FLOPs were counted."""
    row.params = cost.params
    row.params_m = cost.params / 1e6
    if not cost.flops_counted:
        return
    row.gflops, row.gflops_counter = cost.gmacs, cost.counter
    row.gflops_crosscheck = cost.crosscheck_gmacs
    row.gflops_crosscheck_counter = cost.crosscheck_counter
    row.counters_agree = cost.counters_agree
    row.uncounted_ops, row.gap_ops = dict(cost.uncounted_ops), list(cost.gap_ops)
    row.crosscheck_uncounted_ops = dict(cost.crosscheck_uncounted_ops)  # extra field
    row.flops_error = cost.error
    if cost.gap_ops:
        row.warnings.append("ops that may carry MACs were not counted: "
                            + ", ".join(cost.gap_ops))
    if cost.counters_agree is False:
        row.warnings.append(
            f"counters disagree: {cost.counter} {cost.gmacs:.4f} vs "
            f"{cost.crosscheck_counter} {cost.crosscheck_gmacs:.4f} GFLOPs")


def apply_latency(row: ModelResult, job: Job, latency: Latency, window: TimedWindow) -> None:
    """The timed loop and what its instruments saw, with the warnings they imply.

    Throughput is ``row.batch_size`` images per median call, so set the batch first
    (``batch_size: max`` finds it).
    """
    summary = latency.summary
    calls = latency.calls
    row.minor_faults_per_call = window.minor_faults / calls if calls else None
    row.environment["malloc"] = dict(window.malloc)
    if row.minor_faults_per_call and row.minor_faults_per_call > FAULTS_PER_CALL_WARNING:
        row.warnings.append(
            f"{row.minor_faults_per_call:.0f} page faults per call: the allocator returns memory "
            "to the OS and faults it in again every call, and the latency includes that")
    row.latency_ms = summary.to_dict()
    drift = latency.window_spread
    row.latency_ms["window_spread"] = None if drift is None else round(drift, 4)
    if drift is not None and drift > DRIFT_RATIO:
        row.warnings.append(
            f"drift: the medians of the four quarters of the timed loop differ by {drift:.2f}x; "
            "the machine's speed changed while this row was timed")
    row.latency_samples_ms = [round(s, 6) for s in latency.samples_ms]
    row.first_call_ms = latency.first_call_ms
    row.warmup_calls = latency.warmup_calls
    row.stopped_by = latency.stopped_by
    row.calls_per_sample, row.timer = latency.calls_per_sample, latency.timer
    row.throughput_img_s = row.batch_size / (summary.median / 1000)
    if job.compile:
        row.environment["first_call_includes_compile"] = True
    if summary.unstable:
        row.warnings.append(
            f"unstable latency: median ±{summary.ci_halfwidth_pct:.1f}% (95% CI), "
            f"IQR {summary.iqr_pct:.0f}% of the median")
    if latency.stopped_by == "max-time" and summary.n < job.repeat:
        row.warnings.append(f"max_time_s reached after {summary.n} of {job.repeat} samples")
    if (job.target_ci_pct is not None and latency.stopped_by == "max-time"
            and summary.ci_halfwidth_pct > job.target_ci_pct):
        row.warnings.append(f"target_ci_pct {job.target_ci_pct:g}% not reached in max_time_s: "
                            f"median ±{summary.ci_halfwidth_pct:.1f}%")

    row.environment["contention"] = window.contention
    row.foreign_cpu_pct, row.contended = window.foreign_cpu_pct, window.contended
    if window.contended:
        row.warnings.append(
            f"contended: other processes used {window.foreign_cpu_pct:.0f}% of the machine's CPU "
            f"while this row was timed (load {window.contention.get('load_average_1m_start')}); "
            "latency is likely inflated")

    telemetry = window.gpu_telemetry
    row.gpu_telemetry = telemetry
    row.gpu_power_w = telemetry.get("power_w_mean")
    row.energy_j_per_img = telemetry.get("energy_j_per_img")
    row.gpu_util_pct = telemetry.get("util_pct_mean")
    row.gpu_temp_c = telemetry.get("temp_c_max")


def apply_memory(row: ModelResult, memory: PeakMemory, *,
                 rss_before_build_kib: Optional[int] = None) -> None:
    """Peak memory, and on CPU its parts next to the resident set before the build."""
    row.peak_memory_mb = memory.peak_mib
    row.peak_memory_reserved_mb = memory.reserved_mib
    row.memory_method = memory.method
    if memory.parts:
        row.environment["memory"] = {
            **memory.parts, "rss_before_build_mb": round((rss_before_build_kib or 0) / 1024, 1)}
