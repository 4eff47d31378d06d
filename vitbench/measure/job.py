"""Measure one resolved :class:`~vitbench.config.spec.Job`: build, time, count, and take peak memory.

This runs inside a worker process (see :mod:`vitbench.measure.worker`), so that each model starts
from a clean allocator and an honest peak-RSS counter, and a crash or hang costs one row.

The stages, each in its own module, run inside one :class:`~vitbench.measure.session.
DeviceSession` (threads, ``cudnn.benchmark``, timer, peak-memory reset, instruments):
build (:mod:`vitbench.build.zoo`), time (:mod:`vitbench.measure.prepare`,
:mod:`vitbench.measure.timing`), peak memory (:mod:`vitbench.measure.memory`: what it counts on
CPU and on CUDA), count (:mod:`vitbench.measure.static`). :mod:`vitbench.measure.row` copies
their typed results onto the row.

Timing (see :mod:`vitbench.measure.timing`): on CUDA each sample is bracketed by CUDA events; in
``latency`` mode every call is its own sample (synchronised), in ``throughput`` mode a sample
is a block of calls synchronised only at its ends. The timed loop runs inside a CPU-contention
meter (foreign CPU from ``/proc/stat``) and, on CUDA, an NVML power sampler.
"""

from __future__ import annotations

import time
import traceback
from typing import Callable, Optional

from vitbench.config.spec import Job
from vitbench.measure.memory import proc_status_kib
from vitbench.measure.prepare import prepare_inputs, prepare_module, search_max_batch
from vitbench.measure.row import apply_latency, apply_memory, apply_static
from vitbench.measure.runtimes import apply_deployment, deployment_of
from vitbench.measure.session import DeviceSession
from vitbench.measure.static import count_static
from vitbench.records import Latency, ModelResult

StageCallback = Callable[[str], None]

#: ``batch_size: max`` never tries more than this many images per pass.
MAX_BATCH_LIMIT = 4096


def _short_error(exc: BaseException) -> str:
    text = f"{exc.__class__.__name__}: {exc}".strip()
    first_line = text.splitlines()[0] if text else exc.__class__.__name__
    return first_line[:500]


def measure_job(job: Job, on_stage: StageCallback = lambda stage: None, *,
                fresh_process: bool = False) -> ModelResult:
    """Measure ``job`` and return its row. Never raises for a model's own failure.
    ``fresh_process`` (a worker started for this job): the process's age when the build
    begins is the row's ``start`` stage, its start-up and imports."""
    import torch

    from vitbench.build import zoo
    from vitbench.env import load_average, process_age_s

    with DeviceSession(job) as session:
        row = ModelResult.for_job(job)
        row.environment = {"torch_num_threads": torch.get_num_threads(),
                           "load_average_1m_start": load_average()}
        import fvcore.nn  # noqa: F401 - imported before the baseline so it is not "model memory"

        zoo.import_zoo(job.model)
        age = process_age_s() if fresh_process else None
        if age is not None:
            row.stage_seconds["start"] = round(age, 3)
        rss_before_build_kib = proc_status_kib("VmRSS")
        stage = "build"
        started = time.perf_counter()
        try:
            on_stage("build")
            torch.manual_seed(0)
            module = zoo.build_model(job.model, job.kwargs, job.image_size)
            if job.reparameterize:
                module = _reparameterize(module, row)
            row.stage_seconds["build"] = round(time.perf_counter() - started, 3)
            apply_static(row, count_static(job, module, flops=False))

            # Time before counting: a FLOP count (a JIT trace, a dispatcher pass) leaves the heap
            # and allocator in another state, which changed both the latency and the
            # peak-memory rise of the timed calls that followed.
            if not job.static_only:
                stage = "time"
                on_stage("time")
                started = time.perf_counter()
                _time(job, module, row, session, rss_before_build_kib, on_stage)
                row.stage_seconds["time"] = round(time.perf_counter() - started, 3)
                row.environment["load_average_1m_end"] = load_average()
            if job.count:
                stage = "count"
                on_stage("count")
                started = time.perf_counter()
                apply_static(row, count_static(job, module))
                row.stage_seconds["count"] = round(time.perf_counter() - started, 3)
            row.status = "ok"
        except torch.OutOfMemoryError as exc:
            row.status, row.error = "failed", f"out of memory while {stage}ing: {_short_error(exc)}"
        except Exception as exc:  # noqa: BLE001 - the row records it, the suite goes on
            row.status = "failed"
            row.error = _short_error(exc) if stage == "build" else f"{stage}: {_short_error(exc)}"
            row.environment["traceback"] = traceback.format_exc(limit=8)
    return row


def _reparameterize(module, row: ModelResult):
    """The model folded into its deploy form (:mod:`vitbench.build.deploy`); the row says which."""
    from vitbench.build.deploy import reparameterize

    outcome = reparameterize(module)
    row.reparameterization = outcome.mode
    row.environment["reparameterized_modules"] = outcome.folded_modules
    return outcome.module


def _time(job: Job, module, row: ModelResult, session: DeviceSession,
          rss_before_build_kib: Optional[int], on_stage: StageCallback) -> None:
    """The time stage: prepare the model, find the batch (``batch_size: max``), time it
    under the job's protocol, then read peak memory; fills ``row``."""
    import torch

    from vitbench.measure.timing import Protocol, time_calls

    row.environment.update(session.device_settings())
    module, context = prepare_module(job, module)
    apply_deployment(row, deployment_of(module))
    batch = job.batch_size
    if job.max_batch:
        if not session.cuda:
            raise ValueError("batch_size: max needs device: cuda (on CPU, running out of "
                             "memory kills the process instead of raising)")
        on_stage("max-batch")
        batch, tries = search_max_batch(job, module, context, limit=MAX_BATCH_LIMIT)
        row.batch_size_search = {"requested": "max", "found": batch, "limit": MAX_BATCH_LIMIT,
                                 "tries": [list(t) for t in tries]}
        if batch == 0:
            raise torch.OutOfMemoryError(f"batch_size: max: even batch {job.batch_size} does "
                                         "not fit in GPU memory")
        row.batch_size = batch
        if batch == MAX_BATCH_LIMIT:
            row.warnings.append(f"batch_size: max stopped at the search limit {MAX_BATCH_LIMIT}")
        on_stage("time")
    inputs = prepare_inputs(job, module, batch)
    protocol = Protocol(warmup=job.warmup, warmup_s=job.warmup_s, repeat=job.repeat,
                        min_time_s=job.min_time_s, max_time_s=job.max_time_s,
                        target_ci_pct=job.target_ci_pct,
                        calls_per_sample=0 if job.mode == "throughput" else 1)

    def forward():
        return module(*inputs)

    session.reset_peak_memory()
    with context():
        timing = time_calls(forward, protocol, sync=session.sync, timer=session.timer,
                            around_timed=session.around_timed)
    latency = timing.latency()
    row.stage_seconds["warm-up"] = round(timing.warmup_ms_total / 1000, 3)  # part of "time"
    apply_latency(row, job, latency, session.timed_window(images=latency.calls * batch))
    apply_memory(row, session.read_peak_memory(module), rss_before_build_kib=rss_before_build_kib)


#: Per-process medians of one row differing by more than this ratio flag the row unstable:
#: its value depends on which process measured it.
PROCESS_SPREAD_RATIO = 1.10


def pool_processes(first: ModelResult, others: list[ModelResult]) -> ModelResult:
    """One row from several fresh worker processes that timed the same job.

    The latency summary is taken over the pooled samples (the median of a 3-process pool
    sits in the majority regime when one process ran in another); ``process_medians_ms``
    keeps each process's own median and ``process_spread`` their max/min. Above 1.10 the row
    is flagged ``unstable`` with a warning. Counts, memory and the first call stay the first
    process's; a later process that failed is a warning, not a failed row.
    """
    from vitbench.stats import DRIFT_RATIO, summarize, window_spread

    row = first.model_copy(deep=True)
    ok = [o for o in others if o.status == "ok" and o.latency and o.latency.samples_ms]
    for index, other in enumerate(others, start=2):
        if other not in ok:
            row.warnings.append(f"timing process {index} failed ({other.error}); "
                                "its samples are left out")
    if not ok:
        return row
    runs = [first.latency.samples_ms, *(o.latency.samples_ms for o in ok)]
    pooled = [s for samples in runs for s in samples]
    summary = summarize(pooled)
    medians = [summarize(samples).median for samples in runs]
    spread = max(medians) / min(medians) if min(medians) > 0 else None
    window = [w for w in (window_spread(s) for s in runs) if w is not None]
    unstable = spread is not None and spread > PROCESS_SPREAD_RATIO
    row.latency = Latency.pooled(
        first.latency, samples_ms=pooled, summary=summary, medians_ms=medians, spread=spread,
        window_spread=max(window) if window else None, batch_size=row.batch_size or 1,
        unstable=unstable)
    if unstable:
        row.warnings.append(
            f"between processes: the {len(runs)} worker processes' medians differ by "
            f"{spread:.2f}x ({', '.join(f'{m:.3g}' for m in medians)} ms); the machine's speed "
            "differs from process to process, so another run may differ as much")
    row.warnings = [w for w in row.warnings if not w.startswith("drift:")]
    if window and max(window) > DRIFT_RATIO:
        row.warnings.append(
            f"drift: the medians of the four quarters of a timed loop differ by up to "
            f"{max(window):.2f}x; the machine's speed changed while this row was timed")
    row.environment["processes"] = [
        {"median_ms": round(m, 6), "samples": len(s)} for m, s in zip(medians, runs)]
    return row
