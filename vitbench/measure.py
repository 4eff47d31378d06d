"""Measure one resolved :class:`~vitbench.spec.Job`: build, count, time, and take peak memory.

This runs inside a worker process (see :mod:`vitbench.worker`), so that each model starts
from a clean allocator and an honest peak-RSS counter, and a crash or hang costs one row.

Memory:
* CPU — the kernel's peak-RSS counter (VmHWM) is reset through ``/proc/self/clear_refs``
  just before the first inference call; ``peak_memory_mb`` is that peak minus the resident
  size measured after imports and before the model was built, i.e. weights + activations +
  workspace, without the Python/torch runtime (~0.8 GiB that would swamp small models).
* CUDA — ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``: weights,
  inputs, activations and workspace held by PyTorch's allocator (reserved is recorded too).
"""

from __future__ import annotations

import ctypes
import re
import time
import traceback
from typing import Callable, Optional

from .records import ModelResult
from .spec import Job

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

    from . import counting, zoo
    from .env import load_average
    from .stats import summarize
    from .timing import Protocol, time_calls

    configure_threads(job.threads)
    row = ModelResult(
        name=job.name, model=job.model, kwargs=job.kwargs, image_size=job.image_size,
        batch_size=job.batch_size, device=job.device, dtype=job.dtype, threads=job.threads,
        flops_convention=job.flops_convention, tolerance_pct=job.tolerance_pct,
    )
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

        stage = "count"
        on_stage("count")
        started = time.perf_counter()
        count = counting.count_flops(module, zoo.example_inputs(module, 1, job.image_size),
                                     job.flops_convention)
        row.stage_seconds["count"] = round(time.perf_counter() - started, 3)
        row.gflops, row.gflops_counter = count.gflops, count.counter
        row.gflops_crosscheck = count.gflops_crosscheck
        row.gflops_crosscheck_counter = count.crosscheck_counter
        row.counters_agree = count.counters_agree
        row.uncounted_ops, row.gap_ops = count.uncounted_ops, count.gap_ops
        row.flops_error = count.error or count.crosscheck_error
        if count.gap_ops:
            row.warnings.append("ops that may carry MACs were not counted: "
                                + ", ".join(count.gap_ops))
        if count.counters_agree is False:
            row.warnings.append(
                f"counters disagree: {count.counter} {count.gflops:.4f} vs "
                f"{count.crosscheck_counter} {count.gflops_crosscheck:.4f} GFLOPs")
        if job.static_only:
            row.status = "ok"
            return row

        stage = "time"
        on_stage("time")
        started = time.perf_counter()
        _time_and_memory(job, module, row, baseline_rss_kib, summarize, Protocol, time_calls)
        row.stage_seconds["time"] = round(time.perf_counter() - started, 3)
        row.environment["load_average_1m_end"] = load_average()
        row.status = "ok"
    except torch.OutOfMemoryError as exc:
        row.status, row.error = "failed", f"out of memory while {stage}ing: {_short_error(exc)}"
    except Exception as exc:  # noqa: BLE001 - the row records it, the suite goes on
        row.status = "failed"
        row.error = _short_error(exc) if stage == "build" else f"{stage}: {_short_error(exc)}"
        row.environment["traceback"] = traceback.format_exc(limit=8)
    return row


def _time_and_memory(job: Job, module, row: ModelResult, baseline_rss_kib, summarize, Protocol,
                     time_calls) -> None:
    import torch

    from . import zoo

    device = torch.device(job.device)
    dtype = getattr(torch, _DTYPES[job.dtype])
    module = module.to(device=device, dtype=dtype)
    inputs = zoo.example_inputs(module, job.batch_size, job.image_size, device=device, dtype=dtype)
    protocol = Protocol(warmup=job.warmup, warmup_s=job.warmup_s, repeat=job.repeat,
                        min_time_s=job.min_time_s, max_time_s=job.max_time_s)
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def forward():
        return module(*inputs)

    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        rss_ok = False
    else:
        rss_ok = _reset_peak_rss()
    with torch.inference_mode():
        timing = time_calls(forward, protocol, sync=sync)

    summary = summarize(timing.samples_ms)
    row.latency_ms = summary.to_dict()
    row.latency_samples_ms = [round(s, 6) for s in timing.samples_ms]
    row.first_call_ms = timing.first_call_ms
    row.warmup_calls = timing.warmup_calls
    row.stopped_by = timing.stopped_by
    row.throughput_img_s = job.batch_size / (summary.median / 1000)
    if summary.unstable:
        row.warnings.append(
            f"unstable latency: median ±{summary.ci_halfwidth_pct:.1f}% (95% CI), "
            f"IQR {summary.iqr_pct:.0f}% of the median")
    if timing.stopped_by == "max-time" and summary.n < job.repeat:
        row.warnings.append(f"max_time_s reached after {summary.n} of {job.repeat} samples")

    if cuda:
        row.peak_memory_mb = torch.cuda.max_memory_allocated() / 2**20
        row.environment["peak_memory_reserved_mb"] = torch.cuda.max_memory_reserved() / 2**20
        row.memory_method = "cuda max_memory_allocated (weights+activations), peak over all calls"
    elif rss_ok and baseline_rss_kib is not None:
        peak_kib = _proc_status_kib("VmHWM")
        row.peak_memory_mb = max(0, peak_kib - baseline_rss_kib) / 1024
        row.memory_method = ("cpu peak RSS during inference (VmHWM reset before the first call) "
                             "minus RSS before the model was built")
    else:
        row.memory_method = "unavailable: the peak-RSS counter cannot be reset on this OS"
