"""``vitbench run SUITE --resume DIR``: a run killed with SIGKILL after some rows were saved,
resumed, gives the rows an uninterrupted run gives (names, statuses, counts; timings
present), keeps the rows it had without measuring them again, and refuses other settings
with one line (exit 2).

Real processes: a tmp suite of four rows (one whose model fails to build, one the suite
marks unavailable, two tiny ``python:`` models) run by ``python -m vitbench run``; the run
to kill is started in its own process group and killed (SIGKILL, the whole group) once its
third row is in ``results.json``; an uninterrupted run of the same suite runs beside it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers_faults import assert_clean_failure, vitbench_cli

MODELS = '''
def tiny():
    from torch import nn
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 10))


def broken():
    raise RuntimeError("this model does not build")
'''

SUITE = """
name: resume
defaults: {threads: 1, image_size: 32, warmup: 1, repeat: 3, min_time_s: 0, processes: 1,
           timeout_s: 300}
models:
  - {name: broken, model: "python:vb_resume_models:broken"}
  - {name: gone, model: "python:vb_resume_models:tiny", unavailable: "weights withdrawn"}
  - {name: first, model: "python:vb_resume_models:tiny"}
  - {name: last, model: "python:vb_resume_models:tiny"}
"""
#: rows ``results.json`` must hold as final before the run is killed: broken, gone, first
KILL_AFTER = 3
#: how long a busy machine may take to start workers and measure those rows
START_S = 240
RUN = ["-m", "vitbench", "run", "suite.yaml", "--no-plots", "-q"]


def rows_of(folder: Path) -> list[dict]:
    try:
        return json.loads((folder / "results.json").read_text(encoding="utf-8"))["results"]
    except (OSError, ValueError, KeyError):
        return []  # not written yet (it is only ever replaced whole)


def start(tmp: Path, out: str) -> subprocess.Popen:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("VITBENCH_DEBUG", None)
    return subprocess.Popen([sys.executable, *RUN, "--out", out], cwd=tmp, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A folder with ``full/`` (an uninterrupted run), ``killed/`` (killed after
    :data:`KILL_AFTER` rows) and ``snapshot/`` (a copy of ``killed/`` as the kill left it)."""
    tmp = tmp_path_factory.mktemp("resume")
    (tmp / "vb_resume_models.py").write_text(MODELS)
    (tmp / "suite.yaml").write_text(SUITE)
    full, killed = start(tmp, "full"), start(tmp, "killed")
    try:
        deadline = time.monotonic() + START_S
        while sum(r["status"] != "pending" for r in rows_of(tmp / "killed")) < KILL_AFTER:
            assert killed.poll() is None, "the run to kill ended before it was killed"
            assert time.monotonic() < deadline, "the run to kill never saved its rows"
            time.sleep(0.05)
        os.killpg(killed.pid, signal.SIGKILL)  # the run and its worker, at once
        killed.wait(timeout=30)
        assert full.wait(timeout=START_S) == 1  # a failed row
    finally:
        for process in (full, killed):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
    shutil.copytree(tmp / "killed", tmp / "snapshot")
    return tmp


def test_a_killed_run_resumed_gives_the_rows_of_an_uninterrupted_one(runs):
    before = rows_of(runs / "killed")
    assert [r["status"] for r in before] == ["failed", "unavailable", "ok", "pending"], before
    killed_id = json.loads((runs / "killed" / "results.json").read_text())["run_id"]

    done = vitbench_cli(*RUN[2:], "--resume", "killed", cwd=runs)
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.code == 1, done.stderr[-3000:]  # as the uninterrupted run: one failed row

    resumed = json.loads((runs / "killed" / "results.json").read_text(encoding="utf-8"))
    full = json.loads((runs / "full" / "results.json").read_text(encoding="utf-8"))
    assert resumed["complete"] and resumed["run_id"] == killed_id
    got, want = resumed["results"], full["results"]
    assert [r["name"] for r in got] == [r["name"] for r in want]
    assert [r["status"] for r in got] == [r["status"] for r in want]
    assert [r["counts"] for r in got] == [r["counts"] for r in want]  # static counts identical
    assert [r["error"] for r in got] == [r["error"] for r in want]
    for row in got:
        if row["status"] == "ok":
            assert row["latency"]["samples_ms"] and row["memory"], row["name"]
    assert got[:KILL_AFTER] == before[:KILL_AFTER], "a finished row was measured again"
    [record] = resumed["environment"]["resumed"]
    assert record["kept_rows"] == KILL_AFTER and "--resume" in record["command"]
    assert (runs / "killed" / "results.csv").is_file()


@pytest.mark.parametrize("extra, fragment", [
    (["--threads", "2"], "--threads is 2 here but was not given in the run"),
    (["--static-only"], "--static-only is given here"),
    (["--only", "first"], "leaves out broken, gone, last"),
    (["--force"], "leave out --force"),
    (["--out", "elsewhere"], "leave out --out"),
], ids=["setting", "static-only", "only", "force", "out"])
def test_other_settings_are_refused_in_one_line(runs, extra, fragment):
    before = (runs / "snapshot" / "results.json").read_bytes()
    outcome = vitbench_cli(*RUN[2:], "--resume", "snapshot", *extra, cwd=runs, timeout=120)
    assert_clean_failure(outcome, 2, "--resume snapshot", fragment)
    assert (runs / "snapshot" / "results.json").read_bytes() == before
    assert not (runs / "elsewhere").exists()


def test_a_changed_suite_is_refused(runs):
    (runs / "changed.yaml").write_text(SUITE.replace("weights withdrawn", "gone for good"))
    outcome = vitbench_cli("run", "changed.yaml", "--resume", "snapshot", cwd=runs, timeout=120)
    assert_clean_failure(outcome, 2, "the suite changed since it ran")


def test_a_folder_without_a_run_is_refused(runs):
    (runs / "empty").mkdir()
    outcome = vitbench_cli(*RUN[2:], "--resume", "empty", cwd=runs, timeout=120)
    assert_clean_failure(outcome, 2, "no results.json in this folder")


def test_a_finished_run_has_nothing_to_resume(runs):
    before = (runs / "full" / "results.json").read_bytes()
    outcome = vitbench_cli(*RUN[2:], "--resume", "full", "--json", cwd=runs, timeout=120)
    assert outcome.code == 0 and "Traceback" not in outcome.stderr, outcome.stderr
    assert "nothing to resume" in outcome.stderr and "4 rows" in outcome.stderr
    assert json.loads(outcome.stdout)["run_id"] == json.loads(before)["run_id"]
    assert (runs / "full" / "results.json").read_bytes() == before


def test_a_row_is_final_only_when_every_planned_process_ran():
    """``ok`` after pass 1 of a row planned for 3 processes is partial: resumed, it is
    measured again; measured, failed, timed out or unavailable rows are kept."""
    from vitbench.records import ModelResult
    from vitbench.run.resume import is_final

    def row(status: str, **environment) -> ModelResult:
        return ModelResult(name="r", model="timm:resnet18", image_size=(32, 32), batch_size=1,
                           device="cpu", dtype="float32", flops_convention="matmul",
                           tolerance_pct=5.0, status=status, environment=environment)

    assert [is_final(row(s)) for s in ("ok", "failed", "timeout", "unavailable")] == [True] * 4
    assert not is_final(row("pending")) and not is_final(row("interrupted"))
    assert not is_final(row("ok", timing_processes={"planned": 3, "done": 1}))
    assert is_final(row("ok", timing_processes={"planned": 3, "done": 3}))
