"""The device session: what it sets for one job, what it puts back, and what its
instruments and peak-memory counters report."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vitbench.measure import session as session_module
from vitbench.measure.session import DeviceSession, MinorFaults
from vitbench.measure.timing import CudaEventTimer, HostTimer

from jobs import small_job

TINY = "python:tests.fixtures_models:tiny"


def test_threads_are_set_for_the_job_and_put_back_on_exit():
    before = torch.get_num_threads()
    wanted = before + 1
    with DeviceSession(small_job(TINY, threads=wanted)) as session:
        assert torch.get_num_threads() == wanted
        assert isinstance(session.timer, HostTimer) and session.sync() is None
        assert session.device_settings() == {}
    assert torch.get_num_threads() == before


def test_threads_and_cudnn_benchmark_are_put_back_after_an_error():
    threads, benchmark = torch.get_num_threads(), torch.backends.cudnn.benchmark
    with pytest.raises(RuntimeError, match="model failed"):
        with DeviceSession(small_job(TINY, threads=threads + 1)):
            torch.backends.cudnn.benchmark = not benchmark  # e.g. a model's builder flips it
            raise RuntimeError("model failed")
    assert torch.get_num_threads() == threads
    assert torch.backends.cudnn.benchmark is benchmark


def test_a_cpu_job_leaves_cudnn_benchmark_alone():
    benchmark = torch.backends.cudnn.benchmark
    with DeviceSession(small_job(TINY, cudnn_benchmark=not benchmark)):
        assert torch.backends.cudnn.benchmark is benchmark


def test_measure_job_leaves_torch_threads_as_it_found_them():
    from vitbench.measure.job import measure_job

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(before + 1)
        row = measure_job(small_job(TINY, threads=before, count=False))
        assert row.status == "ok", row.error
        assert row.environment["torch_num_threads"] == before
        assert torch.get_num_threads() == before + 1
    finally:
        torch.set_num_threads(before)


def test_minor_faults_add_up_over_every_block_they_wrap(monkeypatch):
    readings = iter([10, 15, 40, 47])
    monkeypatch.setattr(session_module, "minor_faults", lambda: next(readings))
    faults = MinorFaults()
    with faults:
        pass
    with faults:
        pass
    assert faults.count == (15 - 10) + (47 - 40)


def test_the_timed_window_on_cpu_reports_faults_contention_and_malloc(monkeypatch):
    readings = iter([100, 164])
    monkeypatch.setattr(session_module, "minor_faults", lambda: next(readings))
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "123")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    with DeviceSession(small_job(TINY)) as session:
        with session.around_timed():
            sum(range(10_000))
        window = session.timed_window(images=8)
    assert window.minor_faults == 64
    assert window.malloc == {"MALLOC_TRIM_THRESHOLD_": "123", "MALLOC_MMAP_THRESHOLD_": None}
    assert window.gpu_telemetry == {"nvml": "not sampled: device is cpu"}
    assert window.contention["wall_s"] >= 0 and "load_average_1m_start" in window.contention
    assert window.foreign_cpu_pct == window.contention.get("foreign_cpu_pct")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux clear_refs")
def test_peak_memory_on_cpu_is_the_weights_plus_the_rise_over_the_resident_set():
    module = torch.nn.Linear(256, 256)
    weights_mib = (256 * 256 + 256) * 4 / 2**20
    with DeviceSession(small_job(TINY)) as session:
        session.reset_peak_memory()
        activation = torch.ones(32 * 2**20 // 4)  # 32 MiB, written: resident
        del activation
        memory = session.read_peak_memory(module)
    assert memory.method.startswith("cpu: parameters+buffers plus the rise of peak RSS")
    assert memory.reserved_mib is None
    assert memory.parts["weights_and_buffers_mib"] == round(weights_mib, 3)
    assert memory.parts["inference_extra_rss_mib"] >= 31
    assert memory.peak_mib == pytest.approx(
        weights_mib + memory.parts["inference_extra_rss_mib"], abs=1e-3)
    assert memory.parts["peak_rss_mib"] >= memory.parts["rss_before_inference_mib"] + 31


def test_where_the_peak_rss_counter_cannot_be_reset_cpu_peak_memory_is_unavailable():
    from vitbench.measure.memory import read_peak_memory

    memory = read_peak_memory(torch.nn.Linear(2, 2), cuda=False, rss_before_inference_kib=None)
    assert memory.peak_mib is None and memory.parts is None
    assert memory.method == "unavailable: the peak-RSS counter cannot be reset on this OS"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_cuda_session_times_with_events_and_puts_cudnn_benchmark_back():
    benchmark = torch.backends.cudnn.benchmark
    job = small_job(TINY, device="cuda", cudnn_benchmark=not benchmark)
    with DeviceSession(job) as session:
        assert torch.backends.cudnn.benchmark is (not benchmark)
        assert isinstance(session.timer, CudaEventTimer)
        assert session.sync is torch.cuda.synchronize
        settings = session.device_settings()
        assert settings["cudnn_benchmark"] is (not benchmark)
        assert settings["gpu"] == torch.cuda.get_device_name(torch.cuda.current_device())
        session.reset_peak_memory()
        block = torch.ones(2**20, device="cuda")  # 4 MiB
        del block
        memory = session.read_peak_memory(torch.nn.Linear(2, 2))
    assert torch.backends.cudnn.benchmark is benchmark
    assert memory.peak_mib >= 4 and memory.reserved_mib >= memory.peak_mib
    assert memory.parts is None
