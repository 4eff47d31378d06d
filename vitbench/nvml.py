"""GPU facts and telemetry through NVML (``nvidia-ml-py``, imported as ``pynvml``).

* :func:`device_info` — name, driver, clocks, power limit, PCI bus id of the NVML device that
  *is* torch's ``cuda:N``. The NVML index and the CUDA index differ whenever
  ``CUDA_VISIBLE_DEVICES`` reorders or hides GPUs (CUDA's default order is "fastest first",
  NVML's is PCI order), so the device is matched by PCI bus id, then by UUID.
* :class:`PowerSampler` — a background thread that samples power (W), utilisation (%) and
  temperature (°C) while the timed loop runs, and reads the board's energy counter
  (``nvmlDeviceGetTotalEnergyConsumption``, Volta and newer) before and after. Energy per image
  is that counter's delta (or, without the counter, mean power × time) over the images run.

Nothing here raises: without a GPU, without NVML, or on an NVML error, the functions return
``{"nvml": "unavailable: <reason>"}`` and the sampler returns an empty summary with the
reason, so CPU runs and odd drivers never fail because of telemetry.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Optional


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _init() -> tuple[Optional[Any], Optional[str]]:
    """``(pynvml, None)`` after nvmlInit, or ``(None, reason)``."""
    try:
        import pynvml
    except ImportError:
        return None, "unavailable: nvidia-ml-py is not installed"
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - no driver is normal on CPU machines
        return None, f"unavailable: {exc.__class__.__name__}: {exc}".strip()
    return pynvml, None


def _shutdown(pynvml) -> None:
    try:
        pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001
        pass


def torch_pci_bus_id(torch_index: int) -> Optional[str]:
    """torch's ``cuda:N`` as an NVML-style bus id ``DDDDDDDD:BB:DD.0``, or None."""
    try:
        import torch

        props = torch.cuda.get_device_properties(torch_index)
        return f"{props.pci_domain_id:08x}:{props.pci_bus_id:02x}:{props.pci_device_id:02x}.0"
    except Exception:  # noqa: BLE001 - old torch, no GPU
        return None


def _handle_for(pynvml, torch_index: int) -> tuple[Any, str]:
    """The NVML handle of torch's device ``torch_index``, and how it was matched."""
    bus_id = torch_pci_bus_id(torch_index)
    if bus_id:
        try:
            return pynvml.nvmlDeviceGetHandleByPciBusId(bus_id), f"pci bus id {bus_id}"
        except Exception:  # noqa: BLE001 - fall through to the UUID
            pass
    try:
        import torch

        uuid = str(torch.cuda.get_device_properties(torch_index).uuid)
        return pynvml.nvmlDeviceGetHandleByUUID(f"GPU-{uuid}"), f"uuid GPU-{uuid}"
    except Exception:  # noqa: BLE001
        pass
    return pynvml.nvmlDeviceGetHandleByIndex(torch_index), "nvml index (no bus id/uuid match)"


def device_info(torch_index: int = 0) -> dict[str, Any]:
    """GPU name, driver, clocks and power limit for torch's ``cuda:torch_index``."""
    pynvml, reason = _init()
    if pynvml is None:
        return {"nvml": reason}
    try:
        handle, matched = _handle_for(pynvml, torch_index)
        info: dict[str, Any] = {
            "nvml": "ok",
            "nvml_matched_by": matched,
            "gpu_name_nvml": _text(pynvml.nvmlDeviceGetName(handle)),
            "gpu_driver": _text(pynvml.nvmlSystemGetDriverVersion()),
        }
        for key, call in (
                ("gpu_pci_bus_id", lambda: _text(pynvml.nvmlDeviceGetPciInfo(handle).busId)),
                ("gpu_sm_clock_mhz", lambda: pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM)),
                ("gpu_mem_clock_mhz", lambda: pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_MEM)),
                ("gpu_sm_clock_max_mhz",
                 lambda: pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM)),
                ("gpu_power_limit_w", lambda: pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000),
                ("gpu_temperature_c",
                 lambda: pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)),
                ("gpu_persistence_mode", lambda: bool(pynvml.nvmlDeviceGetPersistenceMode(handle)))):
            try:
                info[key] = call()
            except Exception:  # noqa: BLE001 - not every board reports every field
                info[key] = None
        return info
    except Exception as exc:  # noqa: BLE001
        return {"nvml": f"error: {exc.__class__.__name__}: {exc}"}
    finally:
        _shutdown(pynvml)


class PowerSampler:
    """Sample GPU power, utilisation and temperature in a thread while a block runs.

    Usage::

        with PowerSampler(torch_index=0, interval_s=0.02) as sampler:
            ...timed loop...
        summary = sampler.summary(images=n_images)

    Sampling reads NVML only (no CUDA calls), so it does not synchronise the GPU. On a
    2-vCPU host the thread costs a wake-up every ``interval_s``; it is only started on CUDA.
    """

    def __init__(self, torch_index: int = 0, interval_s: float = 0.02):
        self.torch_index, self.interval_s = torch_index, interval_s
        self.reason: Optional[str] = None
        self._pynvml = None
        self._handle = None
        self._samples: list[tuple[float, float, Optional[float], Optional[float]]] = []
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._energy_mj: list[Optional[int]] = []
        self._t0 = self._t1 = 0.0

    def _energy(self) -> Optional[int]:
        try:
            return int(self._pynvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
        except Exception:  # noqa: BLE001 - pre-Volta boards
            return None

    def __enter__(self) -> "PowerSampler":
        pynvml, reason = _init()
        if pynvml is None:
            self.reason = reason
            return self
        try:
            self._handle, _ = _handle_for(pynvml, self.torch_index)
        except Exception as exc:  # noqa: BLE001
            self.reason = f"error: {exc.__class__.__name__}: {exc}"
            _shutdown(pynvml)
            return self
        self._pynvml = pynvml
        self._energy_mj.append(self._energy())
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="vitbench-nvml", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        pynvml, handle = self._pynvml, self._handle
        while not self._stop.is_set():
            try:
                power = pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
            except Exception as exc:  # noqa: BLE001
                self.reason = f"power not readable: {exc.__class__.__name__}"
                return
            try:
                util = float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except Exception:  # noqa: BLE001
                util = None
            try:
                temp = float(pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU))
            except Exception:  # noqa: BLE001
                temp = None
            self._samples.append((time.perf_counter(), power, util, temp))
            self._stop.wait(self.interval_s)

    def __exit__(self, *exc_info) -> None:
        if self._pynvml is None:
            return
        self._t1 = time.perf_counter()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._energy_mj.append(self._energy())
        _shutdown(self._pynvml)

    def summary(self, images: Optional[int] = None) -> dict[str, Any]:
        """Means over the samples, energy, and energy per image; reason when unavailable."""
        if self._pynvml is None or not self._samples:
            return {"nvml": self.reason or "unavailable: no samples taken"}
        wall = self._t1 - self._t0
        powers = [s[1] for s in self._samples]
        utils = [s[2] for s in self._samples if s[2] is not None]
        temps = [s[3] for s in self._samples if s[3] is not None]
        out: dict[str, Any] = {
            "nvml": "ok", "samples": len(powers), "interval_s": self.interval_s,
            "wall_s": round(wall, 4),
            "power_w_mean": sum(powers) / len(powers), "power_w_max": max(powers),
            "util_pct_mean": sum(utils) / len(utils) if utils else None,
            "temp_c_max": max(temps) if temps else None,
        }
        before, after = self._energy_mj[0], self._energy_mj[-1]
        if before is not None and after is not None and after >= before:
            out["energy_j"], out["energy_method"] = (after - before) / 1000.0, "nvml energy counter"
        else:
            out["energy_j"], out["energy_method"] = out["power_w_mean"] * wall, "mean power × wall time"
        if images:
            out["energy_j_per_img"] = out["energy_j"] / images
        if self.reason:
            out["note"] = self.reason
        return out
