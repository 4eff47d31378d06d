"""The stages' typed results go onto the row as its parts, with the warnings each one implies.

The stages return :class:`~vitbench.records.StaticCost`, :class:`~vitbench.records.Latency`
with its :class:`~vitbench.records.TimedWindow`, and :class:`~vitbench.records.PeakMemory`;
the row (schema ``vitbench.result/2``) stores them as ``counts``, ``latency`` (plus
throughput and page faults), ``telemetry`` and ``memory``. The only changes on the way are
the rounding ``results.json`` has always stored: samples to 6 decimals, the window spread
to 4. The warnings are judged on the exact values.
"""

from __future__ import annotations

from typing import Optional

from vitbench.config.spec import Job
from vitbench.records import Latency, ModelResult, PeakMemory, StaticCost, Telemetry, TimedWindow
from vitbench.stats import DRIFT_RATIO

#: More minor page faults than this per call mean the allocator hands memory back to the OS
#: and faults it in again on every call (the runner fixes glibc's malloc thresholds for that).
FAULTS_PER_CALL_WARNING = 256


def apply_static(row: ModelResult, cost: StaticCost) -> None:
    """The counts; the warnings a FLOP count implies when FLOPs were counted."""
    row.counts = cost
    if not cost.flops_counted:
        return
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
    exact = summary.exact()
    calls = latency.calls
    faults_per_call = window.minor_faults / calls if calls else None
    row.environment["malloc"] = dict(window.malloc)
    if faults_per_call and faults_per_call > FAULTS_PER_CALL_WARNING:
        row.warnings.append(
            f"{faults_per_call:.0f} page faults per call: the allocator returns memory "
            "to the OS and faults it in again every call, and the latency includes that")
    drift = summary.window_spread
    if drift is not None and drift > DRIFT_RATIO:
        row.warnings.append(
            f"drift: the medians of the four quarters of the timed loop differ by {drift:.2f}x; "
            "the machine's speed changed while this row was timed")
    row.latency = latency.model_copy(update=dict(
        samples_ms=[round(s, 6) for s in latency.samples_ms],
        summary=summary.model_copy(
            update={"window_spread": None if drift is None else round(drift, 4)}),
        throughput_img_s=row.batch_size / (summary.median / 1000),
        minor_faults_per_call=faults_per_call))
    if job.compile:
        row.environment["first_call_includes_compile"] = True
    if summary.unstable:
        row.warnings.append(
            f"unstable latency: median ±{exact.ci_halfwidth_pct:.1f}% (95% CI), "
            f"IQR {exact.iqr_pct:.0f}% of the median")
    if latency.stopped_by == "max-time" and summary.n < job.repeat:
        row.warnings.append(f"max_time_s reached after {summary.n} of {job.repeat} samples")
    if (job.target_ci_pct is not None and latency.stopped_by == "max-time"
            and exact.ci_halfwidth_pct > job.target_ci_pct):
        row.warnings.append(f"target_ci_pct {job.target_ci_pct:g}% not reached in max_time_s: "
                            f"median ±{exact.ci_halfwidth_pct:.1f}%")

    row.environment["contention"] = window.contention
    row.telemetry = Telemetry.of(window)
    if window.contended:
        row.warnings.append(
            f"contended: other processes used {window.foreign_cpu_pct:.0f}% of the machine's CPU "
            f"while this row was timed (load {window.contention.get('load_average_1m_start')}); "
            "latency is likely inflated")


def apply_memory(row: ModelResult, memory: PeakMemory, *,
                 rss_before_build_kib: Optional[int] = None) -> None:
    """Peak memory; on CPU its parts, with the resident set before the build beside them."""
    if memory.parts:
        memory = memory.model_copy(update={"parts": {
            **memory.parts, "rss_before_build_mib": round((rss_before_build_kib or 0) / 1024, 1)}})
    row.memory = memory
