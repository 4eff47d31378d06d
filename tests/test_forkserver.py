"""Fork-server workers (:mod:`vitbench.run.forkserver`) keep a fresh worker's contract: a
row per model, the timeout, a readable reason for a child that crashed, death with the run,
one server per worker environment, and fresh processes when a server cannot start.

Real processes: one server per thread count imports torch once for the whole module; each
row is a forked child. One fresh worker (the fallback) and one ``python`` "run" that is
killed are the slow parts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobs import REPO, small_job

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the fork server is used on Linux")

FIXTURES = "python:tests.fixtures_models"


def fork_job(model: str, **changes):
    return small_job(f"{FIXTURES}:{model}", **{"name": model, "worker_start": "fork", **changes})


@pytest.fixture(scope="module", autouse=True)
def servers():
    from vitbench.run.forkserver import stop_servers

    yield
    stop_servers()


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_a_forked_worker_measures_a_tiny_model_like_a_fresh_one():
    from vitbench.measure.job import measure_job
    from vitbench.run.workers import run_worker

    job = fork_job("tiny")
    row = run_worker(job)
    assert row.status == "ok", row.error
    assert row.environment["worker_start"] == "fork"
    assert not [w for w in row.warnings if w.startswith("worker start")], row.warnings
    assert len(row.latency.samples_ms) >= 3 and row.memory.peak_mib > 0
    reference = measure_job(job.model_copy(update={"repeat": 1}))  # what any process counts
    assert row.counts.params == reference.counts.params
    assert row.counts.gmacs == reference.counts.gmacs


def test_a_workers_start_stage_fits_inside_its_life_as_the_parent_saw_it():
    """The row's ``start`` (creation to build) is measured on the boot clock: never more
    than the time from asking for the worker to reading its row. (psutil's creation time
    carried the boot time's whole-second rounding: 0.75 s too much on every row of one boot.)"""
    from vitbench.run.workers import run_worker

    job = fork_job("tiny", static_only=True)
    run_worker(job)  # the server is up
    began = time.monotonic()
    row = run_worker(job)
    life = time.monotonic() - began
    assert row.status == "ok", row.error
    assert 0 <= row.stage_seconds["start"] <= life


def test_process_age_is_on_the_boot_clock_and_bounded_by_the_parents_view():
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-c",
                           "from vitbench.env import process_age_s; print(process_age_s())"],
                          capture_output=True, text=True, check=True, cwd=REPO)
    life = time.monotonic() - began
    assert 0 <= float(done.stdout) <= life


def test_threads_are_per_environment_and_a_forked_child_runs_openmp():
    """A second thread count is a second server; the child with 2 threads completes a
    matmul-heavy forward (the server started no OpenMP pool before forking)."""
    from vitbench.run.forkserver import running_servers
    from vitbench.run.workers import run_worker

    one = run_worker(fork_job("tiny", threads=1))
    two = run_worker(fork_job("matmuls_20", threads=2, image_size=(16, 16)))
    assert one.status == two.status == "ok", (one.error, two.error)
    assert one.environment["torch_num_threads"] == 1 and two.environment["torch_num_threads"] == 2
    assert two.environment["worker_start"] == "fork"
    servers = running_servers()
    assert set(servers) >= {"1", "2"} and servers["1"] != servers["2"]


def test_a_hanging_child_times_out_and_is_killed():
    from vitbench.run.workers import run_worker

    began = time.monotonic()
    row = run_worker(fork_job("hangs", timeout_s=2))
    assert row.status == "timeout" and "timed out after 2 s" in row.error
    assert row.environment["worker_start"] == "fork"
    assert time.monotonic() - began < 30


@pytest.mark.parametrize("model, reason", [
    ("exits", "worker exited with status 3"),
    ("killed", "worker died with SIGKILL (killed: most likely out of memory)")])
def test_a_child_that_crashes_is_a_failed_row_with_the_reason(model, reason):
    from vitbench.run.workers import run_worker

    row = run_worker(fork_job(model))
    assert row.status == "failed" and row.error.startswith(reason), row.error


RUN = """
import sys
sys.path.insert(0, {tests!r})
from jobs import small_job
from vitbench.run.workers import run_worker
run_worker(small_job("python:vb_fork_hang:hang", worker_start="fork", timeout_s=600,
                     python_path=[{folder!r}]))
"""

HANG = '''
import os, pathlib, time

def hang():
    pathlib.Path(__file__).with_name("hanging.pid").write_text(str(os.getpid()))
    time.sleep(3600)
'''


def test_a_killed_run_takes_its_server_and_children_with_it(tmp_path):
    (tmp_path / "vb_fork_hang.py").write_text(HANG)
    run = subprocess.Popen([sys.executable, "-c", RUN.format(
        tests=str(Path(REPO) / "tests"), folder=str(tmp_path))], cwd=tmp_path,
        stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    marker, deadline = tmp_path / "hanging.pid", time.monotonic() + 240
    child = server = 0
    try:
        while not (marker.is_file() and marker.read_text()):
            assert run.poll() is None, run.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the hanging child never started"
            time.sleep(0.2)
        child = int(marker.read_text())
        server = int(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[1])
        assert server != run.pid and alive(server), "the child is the server's, not the run's"
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
        gone_by = time.monotonic() + 5
        while (alive(child) or alive(server)) and time.monotonic() < gone_by:
            time.sleep(0.1)
        assert not alive(child) and not alive(server), "still running 5 s after the run died"
    finally:
        for pid in (child, server, run.pid):
            if pid and alive(pid):
                os.kill(pid, signal.SIGKILL)
        run.wait(timeout=30)


def test_a_server_that_cannot_start_falls_back_to_a_fresh_worker(monkeypatch):
    from vitbench.run import forkserver
    from vitbench.run.workers import run_worker

    monkeypatch.setattr(forkserver, "SERVER_START_S", 0.01)  # no server imports torch that fast
    row = run_worker(fork_job("tiny", threads=3))
    assert row.status == "ok", row.error
    assert row.environment["worker_start"] == "fresh"
    assert any("fork server did not start" in w and "fresh process" in w
               for w in row.warnings), row.warnings


def test_a_lockstep_worker_forks_too_and_its_row_says_so():
    from vitbench.gate.lockstep import measure_pair

    outcome = measure_pair({"A": fork_job("tiny", repeat=5), "B": fork_job("tiny", repeat=5)})
    for row in outcome.rows.values():
        assert row.status == "ok", row.error
        assert row.environment["worker_start"] == "fork" and row.latency.samples_ms
    assert len(outcome.log_ratios) >= 20
