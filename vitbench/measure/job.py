"""Measure one resolved :class:`~vitbench.config.spec.Job`: build, count, time, and take peak memory.

This runs inside a worker process (see :mod:`vitbench.measure.worker`), so that each model starts
from a clean allocator and an honest peak-RSS counter, and a crash or hang costs one row.

Memory:
* CPU — the kernel's peak-RSS counter (VmHWM) is reset through ``/proc/self/clear_refs``
  just before the first inference call; ``peak_memory_mb`` is the bytes of the model's
  parameters and buffers plus how far that peak rose above the resident set measured right
  before inference, i.e. weights + activations + workspace, without the Python/torch runtime
  (~0.8 GiB that would swamp small models) and without heap left over from building and
  counting the model.
* CUDA — ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``: weights,
  inputs, activations and workspace held by PyTorch's allocator; ``max_memory_reserved``
  (what the caching allocator took from the driver) goes to ``peak_memory_reserved_mb``.

Timing (see :mod:`vitbench.measure.timing`): on CUDA each sample is bracketed by CUDA events; in
``latency`` mode every call is its own sample (synchronised), in ``throughput`` mode a sample
is a block of calls synchronised only at its ends. The timed loop runs inside a CPU-contention
meter (foreign CPU from ``/proc/stat``) and, on CUDA, an NVML power sampler.
"""

from __future__ import annotations

import ctypes
import os
import re
import resource
import time
import traceback
from typing import Callable, Optional

from vitbench.records import ModelResult
from vitbench.config.spec import Job

StageCallback = Callable[[str], None]

_DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}


def _proc_status_kib(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            match = re.search(rf"^{field}:\s+(\d+)\s+kB", handle.read(), re.M)
        return int(match.group(1)) if match else None
    except OSError:
        return None


def _reset_peak_rss() -> bool:
    """Release freed heap to the OS, then reset VmHWM. False where Linux does not allow it."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _tensor_bytes(module) -> int:
    """Bytes of a model's parameters and buffers (shared storage counted once)."""
    seen, total = set(), 0
    for tensor in [*module.parameters(), *module.buffers()]:
        key = tensor.untyped_storage().data_ptr()
        if key not in seen:
            seen.add(key)
            total += tensor.untyped_storage().nbytes()
    return total


def configure_threads(threads: int) -> None:
    """Pin torch's intra-op threads (and one inter-op thread) before any parallel work."""
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already started (in-process runs): leave it as it is
        pass


def _short_error(exc: BaseException) -> str:
    text = f"{exc.__class__.__name__}: {exc}".strip()
    first_line = text.splitlines()[0] if text else exc.__class__.__name__
    return first_line[:500]


def measure_job(job: Job, on_stage: StageCallback = lambda stage: None) -> ModelResult:
    """Measure ``job`` and return its row. Never raises for a model's own failure."""
    import torch

    from vitbench.measure import counting
    from vitbench.build import zoo
    from vitbench.env import load_average

    configure_threads(job.threads)
    row = ModelResult.for_job(job)
    row.environment = {"torch_num_threads": torch.get_num_threads(),
                       "load_average_1m_start": load_average()}
    import fvcore.nn  # noqa: F401 - imported before the baseline so it is not "model memory"

    zoo.import_zoo(job.model)
    baseline_rss_kib = _proc_status_kib("VmRSS")
    stage = "build"
    started = time.perf_counter()
    try:
        on_stage("build")
        torch.manual_seed(0)
        module = zoo.build_model(job.model, job.kwargs, job.image_size)
        row.stage_seconds["build"] = round(time.perf_counter() - started, 3)
        row.params = counting.count_params(module)
        row.params_m = row.params / 1e6

        # Time before counting: a FLOP count (a JIT trace, a dispatcher pass) leaves the heap
        # and allocator in another state, which changed both the latency and the
        # peak-memory rise of the timed calls that followed.
        if not job.static_only:
            stage = "time"
            on_stage("time")
            started = time.perf_counter()
            _time_and_memory(job, module, row, baseline_rss_kib, on_stage)
            row.stage_seconds["time"] = round(time.perf_counter() - started, 3)
            row.environment["load_average_1m_end"] = load_average()
        if job.count:
            stage = "count"
            on_stage("count")
            started = time.perf_counter()
            module = module.to(device="cpu", dtype=torch.float32)  # counts are per image, fp32
            _count(job, module, row, counting, zoo)
            row.stage_seconds["count"] = round(time.perf_counter() - started, 3)
        row.status = "ok"
    except torch.OutOfMemoryError as exc:
        row.status, row.error = "failed", f"out of memory while {stage}ing: {_short_error(exc)}"
    except Exception as exc:  # noqa: BLE001 - the row records it, the suite goes on
        row.status = "failed"
        row.error = _short_error(exc) if stage == "build" else f"{stage}: {_short_error(exc)}"
        row.environment["traceback"] = traceback.format_exc(limit=8)
    return row


def _count(job: Job, module, row: ModelResult, counting, zoo) -> None:
    count = counting.count_flops(module, zoo.example_inputs(module, 1, job.image_size),
                                 job.flops_convention)
    row.gflops, row.gflops_counter = count.gflops, count.counter
    row.gflops_crosscheck = count.gflops_crosscheck
    row.gflops_crosscheck_counter = count.crosscheck_counter
    row.counters_agree = count.counters_agree
    row.uncounted_ops, row.gap_ops = count.uncounted_ops, count.gap_ops
    row.crosscheck_uncounted_ops = count.crosscheck_uncounted_ops  # extra field
    row.flops_error = count.error or count.crosscheck_error
    if count.gap_ops:
        row.warnings.append("ops that may carry MACs were not counted: "
                            + ", ".join(count.gap_ops))
    if count.counters_agree is False:
        row.warnings.append(
            f"counters disagree: {count.counter} {count.gflops:.4f} vs "
            f"{count.crosscheck_counter} {count.gflops_crosscheck:.4f} GFLOPs")


#: ``batch_size: max`` never tries more than this many images per pass.
MAX_BATCH_LIMIT = 4096


def prepare_module(job: Job, module):
    """Move/cast the model as the job says; returns ``(module, forward_context_factory)``."""
    import contextlib

    import torch

    device = torch.device(job.device)
    dtype = getattr(torch, _DTYPES[job.dtype])
    use_autocast = job.autocast and dtype != torch.float32
    module = module.to(device=device, dtype=torch.float32 if use_autocast else dtype)
    if job.channels_last:
        module = module.to(memory_format=torch.channels_last)
    if job.compile:
        module = torch.compile(module, mode=None if job.compile == "default" else job.compile)

    def context():
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        if use_autocast:
            stack.enter_context(torch.autocast(device_type=device.type, dtype=dtype))
        return stack

    return module, context


def prepare_inputs(job: Job, module, batch_size: int) -> tuple:
    import torch

    from vitbench.build import zoo

    dtype = getattr(torch, _DTYPES[job.dtype])
    input_dtype = torch.float32 if job.autocast and dtype != torch.float32 else dtype
    inputs = zoo.example_inputs(module, batch_size, job.image_size, device=job.device,
                                dtype=input_dtype)
    if job.channels_last:
        inputs = tuple(t.contiguous(memory_format=torch.channels_last)
                       if isinstance(t, torch.Tensor) and t.dim() == 4 else t for t in inputs)
    return inputs


def search_max_batch(job: Job, module, context) -> tuple[int, list[tuple[int, bool]]]:
    """Largest batch that runs a forward pass on the GPU without running out of memory."""
    import gc

    import torch

    from vitbench.measure.timing import find_max_batch

    def fits(batch: int) -> bool:
        inputs = None
        try:
            inputs = prepare_inputs(job, module, batch)
            with context():
                module(*inputs)
            torch.cuda.synchronize()
            return True
        except torch.OutOfMemoryError:
            return False
        finally:
            del inputs
            gc.collect()
            torch.cuda.empty_cache()

    return find_max_batch(fits, start=max(1, job.batch_size), limit=MAX_BATCH_LIMIT)


def _time_and_memory(job: Job, module, row: ModelResult, baseline_rss_kib,
                     on_stage: StageCallback = lambda stage: None) -> None:
    import contextlib

    import torch

    from vitbench.env import ContentionMeter
    from vitbench.stats import DRIFT_RATIO, summarize, window_spread
    from vitbench.measure.timing import CudaEventTimer, HostTimer, Protocol, time_calls

    cuda = job.device == "cuda"
    if cuda:
        if job.cudnn_benchmark is not None:
            torch.backends.cudnn.benchmark = job.cudnn_benchmark
        row.environment.update(
            cudnn_benchmark=bool(torch.backends.cudnn.benchmark),
            tf32_matmul=bool(torch.backends.cuda.matmul.allow_tf32),
            tf32_cudnn=bool(torch.backends.cudnn.allow_tf32),
            gpu=torch.cuda.get_device_name(torch.cuda.current_device()))
    module, context = prepare_module(job, module)
    batch = job.batch_size
    if job.max_batch:
        if not cuda:
            raise ValueError("batch_size: max needs device: cuda (on CPU, running out of "
                             "memory kills the process instead of raising)")
        on_stage("max-batch")
        batch, tries = search_max_batch(job, module, context)
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

    meter = ContentionMeter()
    sampler = None
    if cuda:
        from vitbench.nvml import PowerSampler

        sampler = PowerSampler(torch_index=torch.cuda.current_device())
        timer, sync = CudaEventTimer(), torch.cuda.synchronize
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        rss_ok = False
    else:
        timer, sync = HostTimer(), (lambda: None)
        rss_ok = _reset_peak_rss()
        rss_before_inference_kib = _proc_status_kib("VmRSS")

    faults = {}

    @contextlib.contextmanager
    def around_timed():
        faults["start"] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        with meter:
            if sampler is None:
                yield
            else:
                with sampler:
                    yield
        faults["end"] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    with context():
        timing = time_calls(forward, protocol, sync=sync, timer=timer, around_timed=around_timed)

    summary = summarize(timing.samples_ms)
    calls = summary.n * timing.calls_per_sample
    row.minor_faults_per_call = (faults["end"] - faults["start"]) / calls if calls else None
    row.environment["malloc"] = {k: os.environ.get(k) for k in
                                 ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")}
    if row.minor_faults_per_call and row.minor_faults_per_call > 256:
        row.warnings.append(
            f"{row.minor_faults_per_call:.0f} page faults per call: the allocator returns memory "
            "to the OS and faults it in again every call, and the latency includes that")
    row.latency_ms = summary.to_dict()
    drift = window_spread(timing.samples_ms)
    row.latency_ms["window_spread"] = None if drift is None else round(drift, 4)
    if drift is not None and drift > DRIFT_RATIO:
        row.warnings.append(
            f"drift: the medians of the four quarters of the timed loop differ by {drift:.2f}x; "
            "the machine's speed changed while this row was timed")
    row.latency_samples_ms = [round(s, 6) for s in timing.samples_ms]
    row.first_call_ms = timing.first_call_ms
    row.warmup_calls = timing.warmup_calls
    row.stopped_by = timing.stopped_by
    row.calls_per_sample, row.timer = timing.calls_per_sample, timing.timer
    row.throughput_img_s = batch / (summary.median / 1000)
    if job.compile:
        row.environment["first_call_includes_compile"] = True
    if summary.unstable:
        row.warnings.append(
            f"unstable latency: median ±{summary.ci_halfwidth_pct:.1f}% (95% CI), "
            f"IQR {summary.iqr_pct:.0f}% of the median")
    if timing.stopped_by == "max-time" and summary.n < job.repeat:
        row.warnings.append(f"max_time_s reached after {summary.n} of {job.repeat} samples")
    if (job.target_ci_pct is not None and timing.stopped_by == "max-time"
            and summary.ci_halfwidth_pct > job.target_ci_pct):
        row.warnings.append(f"target_ci_pct {job.target_ci_pct:g}% not reached in max_time_s: "
                            f"median ±{summary.ci_halfwidth_pct:.1f}%")

    row.environment["contention"] = meter.result
    row.foreign_cpu_pct, row.contended = meter.foreign_pct, meter.contended
    if meter.contended:
        row.warnings.append(
            f"contended: other processes used {meter.foreign_pct:.0f}% of the machine's CPU "
            f"while this row was timed (load {meter.result.get('load_average_1m_start')}); "
            "latency is likely inflated")

    if sampler is not None:
        images = summary.n * timing.calls_per_sample * batch
        telemetry = sampler.summary(images=images)
        row.gpu_telemetry = telemetry
        row.gpu_power_w = telemetry.get("power_w_mean")
        row.energy_j_per_img = telemetry.get("energy_j_per_img")
        row.gpu_util_pct = telemetry.get("util_pct_mean")
        row.gpu_temp_c = telemetry.get("temp_c_max")
    else:
        row.gpu_telemetry = {"nvml": "not sampled: device is cpu"}

    memory = read_peak_memory(module, cuda=cuda,
                              rss_before_inference_kib=rss_before_inference_kib if rss_ok else None)
    row.peak_memory_mb = memory["peak_memory_mb"]
    row.peak_memory_reserved_mb = memory["peak_memory_reserved_mb"]
    row.memory_method = memory["memory_method"]
    if memory["rss"]:
        row.environment["memory"] = {
            **memory["rss"], "rss_before_build_mb": round((baseline_rss_kib or 0) / 1024, 1)}


def read_peak_memory(module, *, cuda: bool, rss_before_inference_kib: Optional[int]) -> dict:
    """Peak memory since the counters were reset before the first call (module docstring).

    Returns ``peak_memory_mb``, ``peak_memory_reserved_mb`` (CUDA), ``memory_method`` and, on
    CPU, ``rss``: the parts of the figure. ``rss_before_inference_kib`` None on CPU means
    the peak-RSS counter could not be reset.
    """
    out: dict = {"peak_memory_mb": None, "peak_memory_reserved_mb": None, "rss": None}
    if cuda:
        import torch

        out["peak_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
        out["peak_memory_reserved_mb"] = torch.cuda.max_memory_reserved() / 2**20
        out["memory_method"] = ("cuda max_memory_allocated (weights+inputs+activations), peak "
                                "over the first call, warm-up and timed calls; reserved recorded too")
    elif rss_before_inference_kib is not None:
        # Peak = the model's own tensors + what inference added on top of the resident set.
        # Not "HWM - RSS before build": heap left over from building/counting would count.
        peak_kib = _proc_status_kib("VmHWM")
        extra_mb = max(0, peak_kib - rss_before_inference_kib) / 1024
        weights_mb = _tensor_bytes(module) / 2**20
        out["peak_memory_mb"] = weights_mb + extra_mb
        out["rss"] = {"weights_and_buffers_mb": round(weights_mb, 3),
                      "inference_extra_rss_mb": round(extra_mb, 3),
                      "rss_before_inference_mb": round(rss_before_inference_kib / 1024, 1),
                      "peak_rss_mb": round(peak_kib / 1024, 1)}
        out["memory_method"] = ("cpu: parameters+buffers plus the rise of peak RSS over the "
                                "resident set during inference (VmHWM reset before the first call)")
    else:
        out["memory_method"] = "unavailable: the peak-RSS counter cannot be reset on this OS"
    return out


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
    ok = [o for o in others if o.status == "ok" and o.latency_samples_ms]
    for index, other in enumerate(others, start=2):
        if other not in ok:
            row.warnings.append(f"timing process {index} failed ({other.error}); "
                                "its samples are left out")
    if not ok:
        return row
    runs = [first.latency_samples_ms, *(o.latency_samples_ms for o in ok)]
    pooled = [s for samples in runs for s in samples]
    summary = summarize(pooled)
    medians = [summarize(samples).median for samples in runs]
    spread = max(medians) / min(medians) if min(medians) > 0 else None
    window = [w for w in (window_spread(s) for s in runs) if w is not None]
    row.latency_ms = summary.to_dict()
    row.latency_ms.update(
        window_spread=round(max(window), 4) if window else None,
        processes=len(runs), process_medians_ms=[round(m, 6) for m in medians],
        process_spread=None if spread is None else round(spread, 4))
    if spread is not None and spread > PROCESS_SPREAD_RATIO:
        row.latency_ms["unstable"] = True
        row.warnings.append(
            f"between processes: the {len(runs)} worker processes' medians differ by "
            f"{spread:.2f}x ({', '.join(f'{m:.3g}' for m in medians)} ms); the machine's speed "
            "differs from process to process, so another run may differ as much")
    row.warnings = [w for w in row.warnings if not w.startswith("drift:")]
    if window and max(window) > DRIFT_RATIO:
        row.warnings.append(
            f"drift: the medians of the four quarters of a timed loop differ by up to "
            f"{max(window):.2f}x; the machine's speed changed while this row was timed")
    row.latency_samples_ms = pooled
    batch = row.batch_size or 1
    row.throughput_img_s = batch / (summary.median / 1000)
    row.environment["processes"] = [
        {"median_ms": round(m, 6), "samples": len(s)} for m, s in zip(medians, runs)]
    return row
