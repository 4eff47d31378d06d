"""The device session of one job: every piece of torch and machine state the measurement
sets or reads, in one place.

:class:`DeviceSession` is a context manager that, on enter, pins torch's threads and sets
``cudnn.benchmark`` as the job says, and on exit puts both back, so that with
``--in-process`` (and in selfcheck's parent process) one row's settings never leak into the
next. Inside it, it gives the timer and sync pair for the device, resets the peak-memory
counters right before the first call (:mod:`vitbench.measure.memory`), and wraps the timed
samples in the instruments of :meth:`DeviceSession.around_timed`: minor page faults, foreign
CPU (:class:`vitbench.env.ContentionMeter`) and, on CUDA, NVML power
(:class:`vitbench.nvml.PowerSampler`).

The measure worker (:mod:`vitbench.measure.job`), the lockstep worker
(:mod:`vitbench.measure.lockstep_worker`) and the harness self-check
(:mod:`vitbench.tools.selfcheck`) all measure inside one.
"""

from __future__ import annotations

import contextlib
import os
import resource
from typing import Any, Callable, Iterator, Optional

from vitbench.config.spec import Job
from vitbench.records import PeakMemory, TimedWindow

#: The glibc malloc thresholds a row records (the runner fixes them for its workers).
MALLOC_ENV_KEYS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")


def minor_faults() -> int:
    """Minor page faults of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class MinorFaults:
    """Context manager: minor page faults inside the blocks it wraps, summed over entries."""

    def __init__(self):
        self.count = 0
        self._start = 0

    def __enter__(self) -> "MinorFaults":
        self._start = minor_faults()
        return self

    def __exit__(self, *exc_info) -> None:
        self.count += minor_faults() - self._start


def configure_threads(threads: int) -> None:
    """Pin torch's intra-op threads (and one inter-op thread) before any parallel work."""
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already started (in-process runs): leave it as it is
        pass


class DeviceSession:
    """Torch's threads and ``cudnn.benchmark``, the timer, peak memory and the timed-window
    instruments for measuring ``job`` (module docstring).

    The inter-op thread count cannot be changed back once torch has used it, so it stays at 1.
    """

    def __init__(self, job: Job):
        self.job = job
        self.cuda = job.device == "cuda"
        self.faults = MinorFaults()
        self.timer: Any = None
        self.sync: Callable[[], None] = lambda: None
        self._saved: Optional[tuple[int, bool]] = None
        self._rss_before_inference_kib: Optional[int] = None
        self._meter = None
        self._sampler = None

    def __enter__(self) -> "DeviceSession":
        import torch

        from vitbench.measure.timing import CudaEventTimer, HostTimer

        self._saved = (torch.get_num_threads(), torch.backends.cudnn.benchmark)
        configure_threads(self.job.threads)
        if self.cuda:
            if self.job.cudnn_benchmark is not None:
                torch.backends.cudnn.benchmark = self.job.cudnn_benchmark
            self.timer, self.sync = CudaEventTimer(), torch.cuda.synchronize
        else:
            self.timer, self.sync = HostTimer(), (lambda: None)
        return self

    def __exit__(self, *exc_info) -> None:
        import torch

        threads, benchmark = self._saved
        torch.set_num_threads(threads)
        torch.backends.cudnn.benchmark = benchmark

    def device_settings(self) -> dict[str, Any]:
        """The CUDA settings a row records (cuDNN autotuning, TF32, the GPU); {} on CPU."""
        if not self.cuda:
            return {}
        import torch

        return dict(cudnn_benchmark=bool(torch.backends.cudnn.benchmark),
                    tf32_matmul=bool(torch.backends.cuda.matmul.allow_tf32),
                    tf32_cudnn=bool(torch.backends.cudnn.allow_tf32),
                    gpu=torch.cuda.get_device_name(torch.cuda.current_device()))

    # --- peak memory ------------------------------------------------------------------------

    def reset_peak_memory(self) -> None:
        """Reset the peak counters: call it right before the first inference call."""
        from vitbench.measure.memory import proc_status_kib, reset_peak_rss

        if self.cuda:
            import torch

            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            self._rss_before_inference_kib = None
        else:
            rss_ok = reset_peak_rss()
            rss_kib = proc_status_kib("VmRSS")
            self._rss_before_inference_kib = rss_kib if rss_ok else None

    def read_peak_memory(self, module) -> PeakMemory:
        """Peak memory since :meth:`reset_peak_memory` (see :mod:`vitbench.measure.memory`)."""
        from vitbench.measure.memory import read_peak_memory

        return read_peak_memory(module, cuda=self.cuda,
                                rss_before_inference_kib=self._rss_before_inference_kib)

    # --- the timed window -------------------------------------------------------------------

    @contextlib.contextmanager
    def around_timed(self) -> Iterator[None]:
        """Page faults, foreign CPU and, on CUDA, NVML power over the timed samples only."""
        from vitbench.env import ContentionMeter

        self._meter = ContentionMeter()
        self._sampler = None
        if self.cuda:
            import torch

            from vitbench.nvml import PowerSampler

            self._sampler = PowerSampler(torch_index=torch.cuda.current_device())
        with self.faults, self._meter, self._sampler or contextlib.nullcontext():
            yield

    def timed_window(self, images: int) -> TimedWindow:
        """What :meth:`around_timed` saw; ``images`` (calls × batch) sets energy per image."""
        meter = self._meter
        telemetry = (self._sampler.summary(images=images) if self._sampler is not None
                     else {"nvml": "not sampled: device is cpu"})
        return TimedWindow(
            minor_faults=self.faults.count, contention=meter.result,
            foreign_cpu_pct=meter.foreign_pct, contended=meter.contended,
            gpu_telemetry=telemetry, malloc={k: os.environ.get(k) for k in MALLOC_ENV_KEYS})
