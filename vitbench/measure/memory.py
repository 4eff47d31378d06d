"""Peak memory of one model's inference, from the first call to the last timed one.

* CPU — the kernel's peak-RSS counter (VmHWM) is reset through ``/proc/self/clear_refs``
  just before the first inference call; ``memory.peak_mib`` is the bytes of the model's
  parameters and buffers plus how far that peak rose above the resident set measured right
  before inference, i.e. weights + activations + workspace, without the Python/torch runtime
  (~0.8 GiB that would swamp small models) and without heap left over from building and
  counting the model.
* CUDA — ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``: weights,
  inputs, activations and workspace held by PyTorch's allocator; ``max_memory_reserved``
  (what the caching allocator took from the driver) goes to ``memory.reserved_mib``.

The reset itself belongs to the device session (:meth:`vitbench.measure.session.DeviceSession.
reset_peak_memory`), which calls these helpers.
"""

from __future__ import annotations

import ctypes
import re
from typing import Optional

from vitbench.records import PeakMemory


def proc_status_kib(field: str) -> Optional[int]:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``), or None off Linux."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            match = re.search(rf"^{field}:\s+(\d+)\s+kB", handle.read(), re.M)
        return int(match.group(1)) if match else None
    except OSError:
        return None


def reset_peak_rss() -> bool:
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


def tensor_bytes(module) -> int:
    """Bytes of a model's parameters and buffers (shared storage counted once)."""
    seen, total = set(), 0
    for tensor in [*module.parameters(), *module.buffers()]:
        key = tensor.untyped_storage().data_ptr()
        if key not in seen:
            seen.add(key)
            total += tensor.untyped_storage().nbytes()
    return total


def read_peak_memory(module, *, cuda: bool, rss_before_inference_kib: Optional[int]) -> PeakMemory:
    """Peak memory since the counters were reset before the first call (module docstring).

    ``rss_before_inference_kib`` None on CPU means the peak-RSS counter could not be reset.
    """
    if cuda:
        import torch

        return PeakMemory(
            peak_mib=torch.cuda.max_memory_allocated() / 2**20,
            reserved_mib=torch.cuda.max_memory_reserved() / 2**20,
            method=("cuda max_memory_allocated (weights+inputs+activations), peak over the "
                    "first call, warm-up and timed calls; reserved recorded too"))
    if rss_before_inference_kib is None:
        return PeakMemory(peak_mib=None,
                          method="unavailable: the peak-RSS counter cannot be reset on this OS")
    # Peak = the model's own tensors + what inference added on top of the resident set.
    # Not "HWM - RSS before build": heap left over from building/counting would count.
    peak_kib = proc_status_kib("VmHWM")
    extra_mib = max(0, peak_kib - rss_before_inference_kib) / 1024
    weights_mib = tensor_bytes(module) / 2**20
    return PeakMemory(
        peak_mib=weights_mib + extra_mib,
        method=("cpu: parameters+buffers plus the rise of peak RSS over the resident set "
                "during inference (VmHWM reset before the first call)"),
        parts={"weights_and_buffers_mib": round(weights_mib, 3),
               "inference_extra_rss_mib": round(extra_mib, 3),
               "rss_before_inference_mib": round(rss_before_inference_kib / 1024, 1),
               "peak_rss_mib": round(peak_kib / 1024, 1)})
