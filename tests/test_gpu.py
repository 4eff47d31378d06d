"""CUDA timing, dtypes, memory and NVML. The GPU tests need CUDA and are skipped without it;
their CPU-only twins check the "no GPU, no NVML" behaviour and are skipped where there is one."""

from __future__ import annotations

import re
import time

import pytest
import torch

from jobs import small_job

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
cpu_only = pytest.mark.skipif(torch.cuda.is_available(),
                              reason="checks the behaviour without a GPU")


def _job(**changes):
    return small_job("python:tests.fixtures_models:tiny", **{
        "name": "tiny", "kwargs": {"width": 16}, "image_size": (64, 64), "batch_size": 8,
        "device": "cuda", "warmup": 3, "repeat": 10, "max_time_s": 10.0, "timeout_s": 120,
        "count": False, **changes})


@cpu_only
def test_nvml_without_a_gpu_gives_reasons_not_errors():
    from vitbench.nvml import PowerSampler, device_info

    info = device_info(0)
    assert list(info) == ["nvml"] and info["nvml"].startswith("unavailable")
    with PowerSampler(0, interval_s=0.01) as sampler:
        pass
    summary = sampler.summary(images=10)
    assert list(summary) == ["nvml"] and summary["nvml"].startswith("unavailable")


@pytest.mark.gpu
@needs_cuda
def test_nvml_reads_the_gpu_and_samples_power_while_it_works():
    from vitbench.nvml import PowerSampler, device_info

    info = device_info(0)
    assert info["nvml"] == "ok"
    assert info["gpu_name_nvml"] and info["gpu_driver"]
    assert info["gpu_power_limit_w"] > 0 and info["gpu_sm_clock_max_mhz"] > 0
    x = torch.randn(2048, 2048, device="cuda")
    with PowerSampler(0, interval_s=0.01) as sampler:
        deadline = time.perf_counter() + 0.3
        while time.perf_counter() < deadline:
            x @ x
            torch.cuda.synchronize()
    summary = sampler.summary(images=10)
    assert summary["nvml"] == "ok" and summary["samples"] >= 2
    for key in ("power_w_mean", "power_w_max", "energy_j", "energy_j_per_img", "wall_s"):
        assert isinstance(summary[key], float) and summary[key] > 0, key
    assert summary["power_w_max"] >= summary["power_w_mean"]
    assert summary["energy_j_per_img"] == pytest.approx(summary["energy_j"] / 10)
    assert 0 <= summary["util_pct_mean"] <= 100 and summary["temp_c_max"] > 0


@cpu_only
def test_environment_says_why_there_is_no_gpu():
    from vitbench.env import environment

    env = environment(with_gpu=True)
    assert env["cuda_available"] is False
    assert env["gpu"] is None and env["gpu_reason"] == "torch sees no CUDA device"


@pytest.mark.gpu
@needs_cuda
def test_environment_describes_the_gpu():
    from vitbench.env import environment

    env = environment(with_gpu=True)
    assert env["cuda_available"] is True
    assert env["gpu"] == torch.cuda.get_device_name(torch.cuda.current_device())
    assert env["gpu_memory_gib"] > 0 and re.fullmatch(r"\d+\.\d+", env["gpu_compute_capability"])
    assert isinstance(env["cudnn_benchmark"], bool) and isinstance(env["tf32_matmul"], bool)
    assert env["nvml"] == "ok" and env["gpu_driver"]


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("mode", ["latency", "throughput"])
def test_cuda_row_is_complete(mode):
    from vitbench.measure.job import measure_job

    # 0.3 s of timed samples: long enough for the 20 ms power sampler to take several
    row = measure_job(_job(mode=mode, min_time_s=0.3))
    assert row.status == "ok", row.error
    timed, memory, telemetry = row.latency, row.memory, row.telemetry
    assert timed.timer == "cuda events"
    assert (timed.calls_per_sample == 1) if mode == "latency" else (timed.calls_per_sample >= 2)
    assert memory.peak_mib > 0 and memory.reserved_mib >= memory.peak_mib
    assert memory.method.startswith("cuda max_memory_allocated") and memory.parts is None
    assert isinstance(row.environment["cudnn_benchmark"], bool)
    assert row.environment["gpu"] == torch.cuda.get_device_name(torch.cuda.current_device())
    assert telemetry.nvml["nvml"] == "ok" and telemetry.nvml["samples"] >= 2
    assert telemetry.gpu_power_w > 0 and telemetry.energy_j_per_img > 0
    assert telemetry.gpu_temp_c > 0 and 0 <= telemetry.gpu_util_pct <= 100
    assert isinstance(telemetry.contended, bool) and timed.minor_faults_per_call >= 0


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("dtype, autocast", [("float16", False), ("bfloat16", False),
                                             ("float16", True)])
def test_cuda_dtypes_and_autocast(dtype, autocast):
    from vitbench.measure.job import measure_job

    row = measure_job(_job(dtype=dtype, autocast=autocast, channels_last=True))
    assert row.status == "ok", row.error
    assert row.dtype == dtype and row.autocast is autocast and row.channels_last


@pytest.mark.gpu
@needs_cuda
def test_cuda_max_batch_search_reports_the_batch_found(monkeypatch):
    from vitbench.measure import job as measure

    monkeypatch.setattr(measure, "MAX_BATCH_LIMIT", 64)  # the tiny model fits any batch
    row = measure.measure_job(_job(max_batch=True, batch_size=1))
    assert row.status == "ok", row.error
    assert row.batch_size == 64 and row.batch_size_search["found"] == 64
    assert [b for b, _ in row.batch_size_search["tries"]] == [1, 2, 4, 8, 16, 32, 64]


@pytest.mark.gpu
@needs_cuda
def test_peak_memory_is_reset_between_batch_sizes():
    from vitbench.measure.job import measure_job

    small = measure_job(_job(batch_size=1))
    large = measure_job(_job(batch_size=64))
    assert small.peak_memory_mib < large.peak_memory_mib


@pytest.mark.gpu
@needs_cuda
def test_nvml_maps_torch_device_by_bus_id():
    from vitbench.nvml import device_info, torch_pci_bus_id

    info = device_info(0)
    assert info["nvml"] == "ok"
    assert info["nvml_matched_by"].startswith("pci bus id")
    assert info["gpu_pci_bus_id"].lower().endswith(torch_pci_bus_id(0)[-7:].lower())
