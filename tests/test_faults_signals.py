"""Fault corpus, signals: ``vitbench run`` stopped by SIGTERM, SIGHUP, SIGINT or SIGKILL while
a row hangs leaves no process of the run alive within 5 s, keeps every finished row, gives the
rest a reason, and removes its temporary folders.

Real processes only: a tmp suite of three ``python:`` rows (a tiny model, one whose
constructor writes its pid and sleeps for an hour, another tiny one), run by
``python -m vitbench run`` in a tmp working directory. The processes of that run are found
by their working directory (``/proc/PID/cwd``), which every worker inherits.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers_faults import Outcome, assert_clean_failure

pytestmark = pytest.mark.skipif(not Path("/proc/self/cwd").exists(),
                                reason="finds the run's processes through /proc")

MODELS = '''
import os, pathlib, time


def tiny():
    from torch import nn
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 10))


def hang():
    """Writes this worker's pid next to the module, then never returns."""
    pathlib.Path(__file__).with_name("hanging.pid").write_text(str(os.getpid()))
    time.sleep(3600)
'''

SUITE = """
name: signals
defaults: {threads: 1, image_size: 32, warmup: 1, repeat: 3, min_time_s: 0, processes: 1,
           timeout_s: 600}
models:
  - {name: fast, model: "python:vb_signal_models:tiny"}
  - {name: hangs, model: "python:vb_signal_models:hang"}
  - {name: never, model: "python:vb_signal_models:tiny"}
"""

#: how long two workers may take to import torch and reach the hanging row on a busy machine
START_S = 240


def processes_in(folder: Path) -> set[int]:
    """Live (not zombie) processes whose working directory is ``folder``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if Path(os.readlink(entry / "cwd")) != folder:
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            found.add(int(entry.name))
    return found


def worker_temp_dir(pid: int) -> Path:
    """The ``vitbench-*`` folder of a worker: where its stderr (``err.txt``) is written (a
    forked worker's command line is its fork server's, not ``… JOB.json ROW.json``)."""
    return Path(os.readlink(f"/proc/{pid}/fd/2")).parent


def start_hanging_run(tmp_path: Path) -> tuple[subprocess.Popen, int, Path]:
    """Start the run; return it once its second row's worker hangs: (run, worker pid, temp dir)."""
    (tmp_path / "vb_signal_models.py").write_text(MODELS)
    (tmp_path / "suite.yaml").write_text(SUITE)
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("VITBENCH_DEBUG", None)
    with open(tmp_path / "stdout.txt", "w") as out, open(tmp_path / "stderr.txt", "w") as err:
        run = subprocess.Popen(
            [sys.executable, "-m", "vitbench", "run", "suite.yaml", "--out", "out", "--no-plots"],
            cwd=tmp_path, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    marker, deadline = tmp_path / "hanging.pid", time.monotonic() + START_S
    while not (marker.is_file() and marker.read_text()):
        assert run.poll() is None, (tmp_path / "stderr.txt").read_text()[-3000:]
        assert time.monotonic() < deadline, "the hanging row's worker never started"
        time.sleep(0.2)
    worker = int(marker.read_text())
    return run, worker, worker_temp_dir(worker)


def stop_leftovers(tmp_path: Path, run: subprocess.Popen) -> None:
    """Kill (by pid) whatever this test's run left alive, so a failing case leaks nothing."""
    for pid in processes_in(tmp_path) | ({run.pid} if run.poll() is None else set()):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    run.wait(timeout=30)


def wait_until_gone(tmp_path: Path, since: float, within_s: float = 5.0) -> set[int]:
    """Poll until no process of the run is alive or ``within_s`` after ``since``; the live set."""
    while (alive := processes_in(tmp_path)) and time.monotonic() < since + within_s:
        time.sleep(0.1)
    return alive


def without_progress(stderr: str) -> str:
    """stderr less the progress log a run prints when it is not on a terminal
    (``[2/3] hangs: build``): what remains are warnings and errors."""
    return "\n".join(line for line in stderr.splitlines()
                     if not re.match(r"\[\d+/\d+\] ", line))


def results(tmp_path: Path) -> list[dict]:
    data = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    assert data["schema"].startswith("vitbench.result/") and not data["complete"]
    return data["results"]


@pytest.mark.parametrize("signum, code", [
    (signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)],
    ids=["SIGTERM", "SIGHUP", "SIGINT"])
def test_a_signalled_run_stops_like_ctrl_c(tmp_path, signum, code):
    """The worker is killed, finished rows kept, the rest ``interrupted`` with a reason, one
    line naming the signal and results.json, the signal's exit code; nothing left running."""
    run, worker, temp = start_hanging_run(tmp_path)
    try:
        sent = time.monotonic()
        os.kill(run.pid, signum)
        alive = wait_until_gone(tmp_path, sent)
        run.wait(timeout=60)
    finally:
        stop_leftovers(tmp_path, run)
    assert not alive, f"still running 5 s after {signum.name}: {sorted(alive)}"
    outcome = Outcome(run.returncode, (tmp_path / "stdout.txt").read_text(),
                      without_progress((tmp_path / "stderr.txt").read_text()))
    assert_clean_failure(outcome, code, f"interrupted by {signum.name}",
                         str(Path("out") / "results.json"))
    rows = results(tmp_path)
    assert [r["status"] for r in rows] == ["ok", "interrupted", "interrupted"]
    assert rows[0]["counts"]["params"] > 0 and rows[0]["latency"]["samples_ms"]
    assert all(signum.name in r["error"] for r in rows[1:]), [r["error"] for r in rows]
    assert not temp.exists(), f"{temp} left behind"


def test_a_killed_run_takes_its_worker_with_it(tmp_path):
    """SIGKILL of the parent: the worker dies within 5 s (parent-death signal / pipe), the
    results.json on disk is valid with the finished row and no unexplained ``pending`` row,
    and the next run's sweep removes the temporary folder the killed run could not."""
    run, worker, temp = start_hanging_run(tmp_path)
    try:
        sent = time.monotonic()
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
        alive = wait_until_gone(tmp_path, sent)
    finally:
        stop_leftovers(tmp_path, run)
    assert not alive, f"still running 5 s after the parent's SIGKILL: {sorted(alive)}"
    rows = results(tmp_path)
    assert rows[0]["status"] == "ok"
    assert all(r["error"] for r in rows[1:] if r["status"] == "pending"), rows[1:]

    from vitbench.run.workers import sweep_temp_dirs

    sweep_temp_dirs()
    assert not temp.exists(), f"{temp} left behind"


def worker_guard(code: str, **popen) -> subprocess.Popen:
    """A bare Python process running ``code`` after importing the worker's guards (no torch)."""
    return subprocess.Popen([sys.executable, "-c", f"from vitbench.measure.worker import *\n{code}"],
                            **popen)


def test_a_worker_exits_when_its_parent_pipe_closes():
    """The portable fallback: stdin's end-of-file (the parent's end closed) ends the worker."""
    child = worker_guard("die_with_parent()\nimport time\ntime.sleep(60)", stdin=subprocess.PIPE,
                         env={**os.environ, "VITBENCH_PARENT_PID": str(os.getpid())})
    time.sleep(1)
    assert child.poll() is None
    child.stdin.close()
    assert child.wait(timeout=20) == 3


def test_a_worker_whose_parent_is_already_gone_exits_at_once():
    """The race before the parent-death signal is set: another parent pid means orphaned."""
    child = worker_guard("die_with_parent()\nimport time\ntime.sleep(60)", stdin=subprocess.PIPE,
                         env={**os.environ, "VITBENCH_PARENT_PID": "1"})
    assert child.wait(timeout=20) == 3


def test_a_worker_dies_at_its_own_deadline_even_if_the_parent_is_stuck():
    """The backstop: SIGALRM's default action ends a worker that outlives its budget."""
    child = worker_guard("arm_deadline(1)\nimport time\ntime.sleep(60)")
    assert child.wait(timeout=30) == -signal.SIGALRM


def test_the_sweep_spares_a_live_runs_temp_folder_and_removes_a_dead_ones(tmp_path):
    from vitbench.run.workers import owned_temp_dir, sweep_temp_dirs

    with owned_temp_dir() as live:
        assert live.name.startswith("vitbench-") and (live / "owner.lock").is_file()
        assert live not in sweep_temp_dirs() and live.is_dir()
    assert not live.exists()
    dead = tmp_path / "vitbench-dead"
    dead.mkdir()
    (dead / "owner.lock").write_text("12345")  # written, then its owner died: unlocked
    starting = tmp_path / "vitbench-starting"
    starting.mkdir()
    (starting / "owner.lock").touch()  # created, not yet locked and written by its owner
    assert sweep_temp_dirs(tmp_path) == [dead]
    assert not dead.exists() and starting.is_dir()
