"""Fault corpus, signals beyond ``vitbench run``: ``vitbench ab`` (its lockstep workers),
``sweep`` and ``selfcheck`` stopped by SIGTERM, SIGHUP, SIGINT or SIGKILL while a model hangs.

Each case starts a real ``python -m vitbench`` in a tmp working directory, waits until a
``python:`` model beside the suite (or on ``--python-path``/``PYTHONPATH``) has written its
pid and gone to sleep, sends the signal, and asserts: the signal's exit code (143, 129,
130) with one line and no traceback, no process of the command alive 5 s later (found by
their working directory, as in :mod:`test_faults_signals`), and no worker temp folder left.
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
from test_faults_signals import processes_in, stop_leftovers, wait_until_gone

pytestmark = pytest.mark.skipif(not Path("/proc/self/cwd").exists(),
                                reason="finds the command's processes through /proc")

#: ``stuck`` hangs in its second forward call inside a lockstep worker only (the static pass
#: counts it normally), and only in the workers started after the first ``VB_HANG_AFTER``
#: (so a round can finish first); ``hang`` hangs in its constructor wherever it is built.
#: Both write ``hanging-PID.pid`` beside the module first.
MODELS = '''
import os, pathlib, sys, time

from torch import nn


def _hang():
    pathlib.Path(__file__).with_name(f"hanging-{os.getpid()}.pid").write_text(str(os.getpid()))
    time.sleep(3600)


class Stuck(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.calls, self.hangs = nn.Conv2d(3, 4, 3), 0, False
        if sys.argv[0].endswith("lockstep_worker.py"):
            here = pathlib.Path(__file__).parent
            (here / f"lockstep-{os.getpid()}.started").touch()
            started = len(list(here.glob("lockstep-*.started")))
            self.hangs = started > int(os.environ.get("VB_HANG_AFTER", "0"))

    def forward(self, x):
        self.calls += 1
        if self.hangs and self.calls > 1:
            _hang()
        return self.conv(x)


def stuck():
    return Stuck()


def hang(**kwargs):
    _hang()
'''

SUITE = """
name: ab-signals
defaults: {threads: 1, image_size: 32, warmup: 1, repeat: 3, min_time_s: 0, max_time_s: 1,
           timeout_s: 600}
models:
  - {name: stuck, model: "python:vb_hang_models:stuck"}
"""

#: how long the command may take to import torch and reach the hang on a busy machine
START_S = 240

#: stderr lines that are progress, not errors: ``ab``'s per-stage and per-round lines, the
#: static runs' ``[1/1] row: stage`` log, ``MODEL: counting 32x32`` (sweep, selfcheck), and
#: torch's own log lines (``W1202 05:08:22.238000 …``, e.g. from torch.utils.benchmark)
PROGRESS = re.compile(r"^(counting params and GFLOPs of side |stage \d+ round |\[\d+/\d+\] |"
                      r"[\w.-]+: writing the reports$|python:vb_hang_models:\w+: |"
                      r"[IWEF]\d{4} \d\d:\d\d:\d\d)")


def start(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``python -m vitbench ARGS`` in ``tmp_path`` (which holds the suite and the models),
    returned once a model has written its pid and hangs."""
    (tmp_path / "vb_hang_models.py").write_text(MODELS)
    (tmp_path / "suite.yaml").write_text(SUITE)
    full_env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})}
    full_env.pop("VITBENCH_DEBUG", None)
    with open(tmp_path / "stdout.txt", "w") as out, open(tmp_path / "stderr.txt", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "vitbench", *args], cwd=tmp_path,
                                env=full_env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + START_S
    while not any(p.read_text() for p in tmp_path.glob("hanging-*.pid")):
        assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()[-3000:]
        assert time.monotonic() < deadline, "the hanging model was never reached"
        time.sleep(0.2)
    return proc


#: how long a signalled command may take to be gone: what is asserted is that nothing is left
#: running, not how fast (a whole-suite run once saw a sweep take 6 s to exit on this VM)
GONE_WITHIN_S = 15.0


def stop(tmp_path: Path, proc: subprocess.Popen, signum: int) -> tuple[set[int], Outcome]:
    """Send ``signum``; the processes still alive GONE_WITHIN_S later, and what the command did."""
    try:
        sent = time.monotonic()
        os.kill(proc.pid, signum)
        if signum == signal.SIGKILL:
            proc.wait(timeout=30)
        alive = wait_until_gone(tmp_path, sent, within_s=GONE_WITHIN_S)
        proc.wait(timeout=60)
    finally:
        stop_leftovers(tmp_path, proc)
    stderr = (tmp_path / "stderr.txt").read_text()
    return alive, Outcome(proc.returncode, (tmp_path / "stdout.txt").read_text(),
                          "\n".join(x for x in stderr.splitlines() if not PROGRESS.match(x)))


def lockstep_temp_dir(pid: int) -> Path:
    """A lockstep worker's temp folder: where its stderr (``err-A.txt``) is written (a forked
    worker's command line is its fork server's, not ``… JOB.json``)."""
    return Path(os.readlink(f"/proc/{pid}/fd/2")).parent


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_ab_stopped_while_a_lockstep_worker_hangs_leaves_nothing_running(tmp_path, signum):
    """SIGTERM in round 2: exit 143, one line naming the signal, the finished round and the
    folder; round 1 on disk with its ``paired.json``. SIGKILL in round 1: no word is possible,
    but the lockstep workers die with their parent. Either way no process is alive 5 s later,
    and no temp folder of this run is left (after the next run's sweep)."""
    after = "2" if signum == signal.SIGTERM else "0"  # lockstep workers that do not hang
    proc = start(tmp_path, "ab", "suite.yaml", "suite.yaml", "--runs", "2", "--out", "out",
                 env={"VB_HANG_AFTER": after})
    hanging = {int(p.read_text()) for p in tmp_path.glob("hanging-*.pid")}
    assert hanging and hanging <= processes_in(tmp_path)
    temp = lockstep_temp_dir(min(hanging))
    assert temp.name.startswith("vitbench-") and temp.is_dir()
    alive, outcome = stop(tmp_path, proc, signum)
    assert not alive, f"still running {GONE_WITHIN_S:g} s after {signum.name}: {sorted(alive)}"
    out = tmp_path / "out"
    for label in "AB":
        assert (out / f"static-{label}" / "results.json").is_file()
    if signum == signal.SIGTERM:
        assert_clean_failure(outcome, 143, "interrupted by SIGTERM", "1 finished round(s) kept in out")
        for label in "AB":
            rows = json.loads((out / f"stage1-round00-{label}" / "results.json").read_text())
            assert [r["status"] for r in rows["results"]] == ["ok", "ok"], rows["results"]
            assert not (out / f"stage1-round01-{label}").exists()
        paired = json.loads((out / "paired.json").read_text())
        assert sorted(paired) == ["gate-calibration", "stuck"]
        assert all(len(ratios) == 1 for ratios in paired.values()), paired
    from vitbench.run.workers import sweep_temp_dirs

    sweep_temp_dirs()  # a SIGKILLed run's folder goes with the next run's sweep
    assert not temp.exists(), f"{temp} left behind"


@pytest.mark.parametrize("command, signum, code", [
    ("sweep", signal.SIGTERM, 143), ("sweep", signal.SIGINT, 130),
    ("selfcheck", signal.SIGHUP, 129)], ids=["sweep-SIGTERM", "sweep-SIGINT", "selfcheck-SIGHUP"])
def test_sweep_and_selfcheck_stop_like_ctrl_c(tmp_path, command, signum, code):
    """A model hanging while it is built in the command's own process: the signal's exit
    code, one line naming it, nothing half-written, nothing left running."""
    args = {"sweep": ["sweep", "python:vb_hang_models:hang", "--image-size", "32,64",
                      "--out", "out"],
            "selfcheck": ["selfcheck", "-m", "python:vb_hang_models:hang", "--invocations", "0",
                          "--rounds", "1", "--out", "out/selfcheck.json"]}[command]
    proc = start(tmp_path, *args, env={"PYTHONPATH": str(tmp_path)})
    alive, outcome = stop(tmp_path, proc, signum)
    assert not alive, f"still running {GONE_WITHIN_S:g} s after {signum.name}: {sorted(alive)}"
    assert_clean_failure(outcome, code, f"interrupted by {signum.name}")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_lockstep_worker_that_exits_while_importing_its_model_says_so(tmp_path):
    """As in a measure worker, an import-time ``os._exit`` is a failed row naming the import."""
    from jobs import small_job
    from vitbench.gate.lockstep import measure_pair

    (tmp_path / "vb_exits.py").write_text("import os\nos._exit(7)\n")
    outcome = measure_pair({"A": small_job("python:vb_exits:tiny", python_path=[str(tmp_path)])})
    row = outcome.rows["A"]
    assert row.status == "failed", row
    assert "exited with status 7 while importing vb_exits" in row.error, row.error
