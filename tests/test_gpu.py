"""CUDA timing, dtypes, memory and NVML. The CUDA tests are skipped without a GPU; the
"no GPU / no NVML" behaviour is checked everywhere."""

from __future__ import annotations

import pytest
import torch

from vitbench.config.spec import Job

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _job(**changes) -> Job:
    fields = dict(name="tiny", model="python:tests.fixtures_models:tiny", kwargs={"width": 16},
                  image_size=(64, 64), batch_size=8, device="cuda", dtype="float32", threads=1,
                  warmup=3, warmup_s=0.0, repeat=10, min_time_s=0.0, max_time_s=10.0,
                  timeout_s=120, flops_convention="matmul-only", tolerance_pct=5.0, count=False)
    fields.update(changes)
    return Job(**fields)


def test_nvml_without_a_gpu_gives_reasons_not_errors():
    from vitbench.nvml import PowerSampler, device_info

    info = device_info(0)
    assert "nvml" in info
    with PowerSampler(0, interval_s=0.01) as sampler:
        pass
    summary = sampler.summary(images=10)
    assert "nvml" in summary
    if not torch.cuda.is_available():
        assert summary["nvml"] != "ok" and "power_w_mean" not in summary


def test_environment_says_why_there_is_no_gpu():
    from vitbench.env import environment

    env = environment(with_gpu=True)
    if not torch.cuda.is_available():
        assert env["gpu"] is None and env["gpu_reason"]


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("mode", ["latency", "throughput"])
def test_cuda_row_is_complete(mode):
    from vitbench.measure.job import measure_job

    row = measure_job(_job(mode=mode))
    assert row.status == "ok", row.error
    assert row.timer == "cuda events"
    assert (row.calls_per_sample == 1) if mode == "latency" else (row.calls_per_sample >= 2)
    assert row.peak_memory_mb > 0 and row.peak_memory_reserved_mb >= row.peak_memory_mb
    assert row.environment["cudnn_benchmark"] in (True, False)
    assert row.gpu_telemetry.get("nvml")  # "ok" with numbers, or why not
    if row.gpu_telemetry["nvml"] == "ok":
        assert row.gpu_power_w > 0 and row.energy_j_per_img > 0


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
def test_cuda_max_batch_search_reports_the_batch_found():
    from vitbench.measure import job as measure

    old = measure.MAX_BATCH_LIMIT
    measure.MAX_BATCH_LIMIT = 64  # the tiny model fits any batch; cap the search
    try:
        row = measure.measure_job(_job(max_batch=True, batch_size=1))
    finally:
        measure.MAX_BATCH_LIMIT = old
    assert row.status == "ok", row.error
    assert row.batch_size == 64 and row.batch_size_search["found"] == 64
    assert [b for b, _ in row.batch_size_search["tries"]] == [1, 2, 4, 8, 16, 32, 64]


@pytest.mark.gpu
@needs_cuda
def test_peak_memory_is_reset_between_batch_sizes():
    from vitbench.measure.job import measure_job

    small = measure_job(_job(batch_size=1))
    large = measure_job(_job(batch_size=64))
    assert small.peak_memory_mb < large.peak_memory_mb


@pytest.mark.gpu
@needs_cuda
def test_nvml_maps_torch_device_by_bus_id():
    from vitbench.nvml import device_info, torch_pci_bus_id

    info = device_info(0)
    if info["nvml"] != "ok":
        pytest.skip(info["nvml"])
    assert info["nvml_matched_by"].startswith("pci bus id")
    assert info["gpu_pci_bus_id"].lower().endswith(torch_pci_bus_id(0)[-7:].lower())
