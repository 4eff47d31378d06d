"""The environment a number was measured in: hardware, software, threads and machine load.

Latency only means something next to the machine it came from, so every result file
carries :func:`environment`. Cheap parts (CPU, load) import nothing heavy; the
software part imports torch lazily.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from typing import Any, Optional


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask), not the machine's total."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """One fewer than the usable CPUs (at least 1): a core stays free for the OS and the
    harness, which avoids the oversubscription cliff on small shared machines."""
    return max(1, usable_cpus() - 1)


def load_average() -> Optional[float]:
    """The 1-minute load average, or None where the OS has none."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # pragma: no cover
        return None


def oversubscription_warning(threads: int) -> Optional[str]:
    """A warning when other work already keeps the CPUs busy, or None on a quiet machine.

    With more runnable threads than cores, OpenMP threads wait on each other and a forward
    pass can take tens of times longer than on a quiet machine.
    """
    load = load_average()
    cpus = usable_cpus()
    if threads > cpus:
        return (f"{threads} threads on {cpus} usable CPUs: threads will fight; "
                f"latency will be unreliable")
    if load is not None and load + threads > cpus + 0.5:
        advice = "close other work" + (", or use --threads 1" if threads > 1 else "")
        return (f"machine busy: load average {load:.2f} on {cpus} CPUs before the run, and "
                f"{threads} measuring thread(s); latency may be inflated and will vary "
                f"({advice})")
    return None


def cpu_model() -> str:
    """The CPU's marketing name, e.g. 'AMD EPYC 7B13', from /proc/cpuinfo where present."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def resolve_device(device: str) -> str:
    """'auto' → 'cuda' when a GPU is visible, else 'cpu'."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _version(module: str) -> Optional[str]:
    from importlib import metadata

    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return None


def environment(*, with_gpu: bool = True) -> dict[str, Any]:
    """Fingerprint of this machine and software stack (JSON-serialisable)."""
    from vitbench import __version__

    info: dict[str, Any] = {
        "vitbench": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": platform.node(),
        "cpu": cpu_model(),
        "cpu_count_logical": os.cpu_count(),
        "cpu_count_usable": usable_cpus(),
        "load_average_1m": load_average(),
    }
    try:
        import psutil

        info["cpu_count_physical"] = psutil.cpu_count(logical=False)
        info["memory_total_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except Exception:  # noqa: BLE001 - optional detail
        pass
    for package in ("torch", "torchvision", "timm", "fvcore", "numpy", "transformers"):
        info[package] = _version(package)
    if "torch" in sys.modules or with_gpu:
        info.update(_torch_details(with_gpu))
    return info


def _torch_details(with_gpu: bool) -> dict[str, Any]:
    import torch

    details: dict[str, Any] = {
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
        "cuda_available": torch.cuda.is_available(),
        "torch_cuda_build": torch.version.cuda,
    }
    try:
        details["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except Exception:  # noqa: BLE001 - older torch
        pass
    if with_gpu and torch.cuda.is_available():
        index = torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        details.update({
            "gpu": props.name,
            "gpu_memory_gib": round(props.total_memory / 2**30, 1),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "gpu_compute_capability": f"{props.major}.{props.minor}",
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
            "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
            "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
        })
        details.update(nvml_details(index))
    elif with_gpu:
        details.update(gpu=None, gpu_reason="torch sees no CUDA device")
    return details


def nvml_details(index: int = 0) -> dict[str, Any]:
    """GPU driver and clocks through NVML for torch's ``cuda:index`` (see :mod:`vitbench.nvml`)."""
    from vitbench.nvml import device_info

    return device_info(index)


#: A row is marked ``contended`` when other processes used more than this share (%) of the
#: machine's CPU capacity while it was being timed.
CONTENDED_FOREIGN_PCT = 5.0


def proc_stat_cpu_s() -> Optional[tuple[float, float]]:
    """Machine-wide (busy, steal) CPU-seconds since boot from ``/proc/stat``, or None."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = handle.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(v) for v in fields[1:]]
    ticks += [0] * (8 - len(ticks))
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks[:8]
    hz = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq + steal) / hz, steal / hz


def process_age_s() -> Optional[float]:
    """Seconds since this process was created, to the kernel's 10 ms tick, or None off Linux.

    Not ``time.time() - psutil.Process().create_time()``: psutil adds the boot time, which
    ``/proc/stat`` gives in whole seconds, so that difference is off by the same 0-1 s in
    every process (0.75 s on one boot of this VM, the whole of a forked worker's start-up).
    Both ends here are on the boot clock: the process's start tick and ``CLOCK_BOOTTIME``.
    """
    try:
        with open("/proc/self/stat", "rb") as handle:
            after_name = handle.read().rsplit(b")", 1)[1].split()
        start_ticks = int(after_name[19])  # field 22, starttime; fields 1-2 are pid and (comm)
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME)
                   - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, IndexError, ValueError, AttributeError):
        return None


def own_cpu_s() -> float:
    """CPU-seconds (user + system, all threads) this process has used."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class ContentionMeter:
    """Context manager: how much CPU *other* processes used while the block ran.

    foreign CPU = Δ(machine busy time in /proc/stat) − Δ(this process's rusage). It is
    reported in CPU-seconds and as a share of the machine's capacity (wall × logical CPUs).
    ``/proc/stat`` ticks are 10 ms, so blocks shorter than ~1 s carry a few % of noise.
    """

    def __init__(self):
        self.result: dict[str, Any] = {}

    def __enter__(self) -> "ContentionMeter":
        self._stat0, self._own0 = proc_stat_cpu_s(), own_cpu_s()
        self._t0 = time.perf_counter()
        self._load0 = load_average()
        return self

    def __exit__(self, *exc_info) -> None:
        wall = time.perf_counter() - self._t0
        stat1, own1 = proc_stat_cpu_s(), own_cpu_s()
        own = own1 - self._own0
        cpus = os.cpu_count() or 1
        self.result = {"wall_s": round(wall, 3), "own_cpu_s": round(own, 3),
                       "load_average_1m_start": self._load0,
                       "load_average_1m_end": load_average()}
        if self._stat0 is None or stat1 is None or wall <= 0:
            self.result["foreign_cpu"] = "unavailable: no /proc/stat"
            return
        busy = stat1[0] - self._stat0[0]
        foreign = max(0.0, busy - own)
        self.result.update(
            machine_busy_cpu_s=round(busy, 3), foreign_cpu_s=round(foreign, 3),
            steal_cpu_s=round(stat1[1] - self._stat0[1], 3),
            foreign_cpu_pct=round(foreign / (wall * cpus) * 100, 2),
            own_cpu_share=round(own / wall, 3))

    @property
    def foreign_pct(self) -> Optional[float]:
        return self.result.get("foreign_cpu_pct")

    @property
    def contended(self) -> Optional[bool]:
        pct = self.foreign_pct
        return None if pct is None else pct > CONTENDED_FOREIGN_PCT
