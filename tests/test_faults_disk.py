"""Fault corpus, disk and output folders: a full or read-only disk, an ``--out`` that holds
another run or is in use, and the permissions of what a run writes.

Every case runs a real ``python -m vitbench`` and asserts its exit code, one line on stderr,
no traceback, and what is on disk afterwards: the last complete ``results.json``, every
finished row kept (in the folder, or in the copy the error line names).

A full disk is made for real where this machine lets an unprivileged user mount a small
tmpfs in its own namespace (``unshare -rm``); everywhere else, and to fail one chosen file,
through files.py's documented test seam ``VITBENCH_FAULT_DISK_FULL=N[:GLOB]``: writes of
paths matching GLOB fail with ENOSPC once N of them have succeeded.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers_faults import REPO, Outcome, assert_clean_failure, vitbench_cli

TINY = "python:tests.fixtures_models:tiny"
SUITE = f"""
name: disk
title: Disk faults
source: 'tests: hand-made'
python_path: ["{REPO}"]
defaults: {{image_size: 32, threads: 1, warmup: 1, repeat: 3, min_time_s: 0, processes: 1}}
models:
  - {{name: A, model: "{TINY}", reference: {{params_m: 0.0001}}}}
  - {{name: B, model: "{TINY}"}}
  - {{name: C, model: "{TINY}"}}
"""
#: Quick runs: params and GFLOPs only, in the vitbench process (no worker start-up).
QUICK = ("--static-only", "--in-process")
FULL = "VITBENCH_FAULT_DISK_FULL"


def with_b(model: str) -> str:
    """The suite with row B's model replaced."""
    old = f'{{name: B, model: "{TINY}"}}'
    assert old in SUITE
    return SUITE.replace(old, f'{{name: B, model: "{model}"}}')


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    path = tmp_path / "disk.yaml"
    path.write_text(SUITE, encoding="utf-8")
    return path


#: Model libraries' own Python warnings (torch's TorchScript deprecation, printed by the
#: counter in an --in-process run) are not vitbench's output and not under test here.
QUIET = {"PYTHONWARNINGS": "ignore"}


def without_progress(outcome: Outcome) -> Outcome:
    """``outcome`` less the progress log a run prints when stderr is not a terminal
    (``[2/3] B: count``, ``disk: writing the reports``): warnings and errors remain."""
    kept = [line for line in outcome.stderr.splitlines()
            if not (re.match(r"\[\d+/\d+\] ", line) or line == "disk: writing the reports")]
    return Outcome(outcome.code, outcome.stdout, "\n".join(kept))


def run_cli(suite: Path, out: Path, *args: str, env: dict | None = None, **kw) -> Outcome:
    return without_progress(vitbench_cli("run", str(suite), "--out", str(out), *args,
                                         env={**QUIET, **(env or {})}, **kw))


def run_in_namespace(script: str, env: dict) -> Outcome:
    """``sh -c script`` in a private user and mount namespace (``unshare -rm``)."""
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=REPO,
                          env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **QUIET, **env},
                          capture_output=True, text=True, timeout=600, errors="replace")
    return without_progress(Outcome(done.returncode, done.stdout, done.stderr))


def statuses(path: Path) -> list[str]:
    return [row["status"] for row in json.loads(path.read_text(encoding="utf-8"))["results"]]


def assert_clean_success(outcome: Outcome) -> None:
    everything = outcome.stdout + outcome.stderr
    assert "Traceback" not in everything, everything[-3000:]
    assert outcome.code == 0, (outcome.code, everything[-3000:])
    assert outcome.error_lines == [], outcome.error_lines


# --- a full disk ------------------------------------------------------------------------------

def test_disk_full_mid_run_stops_and_keeps_every_measured_row(suite, tmp_path):
    """The third results.json write fails: A is on disk, B is measured but cannot be saved
    there, C is not measured (it would be lost too). B lives in a copy the line names."""
    out, rescue = tmp_path / "out", tmp_path / "tmp"
    rescue.mkdir()
    outcome = run_cli(suite, out, *QUICK, env={FULL: f"2:{out}/results.json", "TMPDIR": str(rescue)})
    line = assert_clean_failure(outcome, 4, f"cannot write {out}/results.json",
                                "no space left on device", "stopped after 2 of 3 rows")
    assert statuses(out / "results.json") == ["ok", "pending", "pending"]  # the last valid state
    copies = list(rescue.glob("vitbench-unsaved-*/results.json"))
    assert len(copies) == 1 and str(copies[0]) in line
    assert statuses(copies[0]) == ["ok", "ok", "interrupted"]
    assert "B" in outcome.stdout  # the measured rows are printed too


def test_disk_full_everywhere_says_what_is_lost_and_prints_it(suite, tmp_path):
    """Neither the folder nor the temp dir can take a copy: the line says so, the table on
    stdout is the only copy of B, results.json still holds A."""
    out, rescue = tmp_path / "out", tmp_path / "tmp"
    rescue.mkdir()
    outcome = run_cli(suite, out, *QUICK, env={FULL: "2:*/results.json", "TMPDIR": str(rescue)})
    line = assert_clean_failure(outcome, 4, "no space left on device", "printed above")
    assert statuses(out / "results.json") == ["ok", "pending", "pending"]
    assert "holds 1 of them" in line and not list(rescue.glob("vitbench-unsaved-*/results.json"))
    assert "B" in outcome.stdout


def test_disk_full_before_the_first_row(suite, tmp_path):
    out = tmp_path / "out"
    outcome = run_cli(suite, out, *QUICK, env={FULL: "0:*/results.json"})
    assert_clean_failure(outcome, 4, f"cannot write {out}/results.json", "no space left on device",
                         "nothing was measured")
    assert not (out / "results.json").exists()
    assert [p.name for p in out.iterdir() if p.name.startswith(".results.json")] == []  # no temp left


def test_temp_folder_full_stops_the_run_with_every_row_saved(suite, tmp_path):
    """Not results.json but a worker's job file cannot be written (a full temp folder): the
    run stops, results.json holds the one measured row and says why the rest were not."""
    out = tmp_path / "out"
    outcome = run_cli(suite, out, "--static-only", env={FULL: "1:*/job.json"})
    assert_clean_failure(outcome, 4, "job.json: no space left on device",
                         "stopped after 1 of 3 rows", f"{out}/results.json holds all of them")
    rows = json.loads((out / "results.json").read_text(encoding="utf-8"))["results"]
    assert [r["status"] for r in rows] == ["ok", "interrupted", "interrupted"]
    assert "job.json (no space left on device)" in rows[2]["error"]


def test_disk_full_while_plots_are_written_is_a_warning(suite, tmp_path):
    out = tmp_path / "out"
    outcome = run_cli(suite, out, *QUICK, env={FULL: "0:*/plots/*"})
    assert_clean_success(outcome)
    warnings = [l for l in outcome.stderr.splitlines() if "warning:" in l and "plots" in l]
    assert len(warnings) == 1 and "no space left on device" in warnings[0], outcome.stderr
    data = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert data["complete"] and [r["status"] for r in data["results"]] == ["ok"] * 3
    assert any("no space left on device" in w for w in data["environment"]["warnings"])


def test_disk_full_for_the_csv_costs_no_row(suite, tmp_path):
    """A derived view that cannot be written is a warning; the measuring goes on."""
    out = tmp_path / "out"
    outcome = run_cli(suite, out, *QUICK, "--no-plots", env={FULL: "0:*/results.csv"})
    assert_clean_success(outcome)
    assert "results.csv" in outcome.stderr and not (out / "results.csv").exists()
    assert json.loads((out / "results.json").read_text(encoding="utf-8"))["complete"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("finished")
    (folder / "disk.yaml").write_text(SUITE, encoding="utf-8")
    outcome = run_cli(folder / "disk.yaml", folder / "run", *QUICK, "--no-plots")
    assert outcome.code == 0, outcome.stderr[-2000:]
    return folder / "run"


@pytest.mark.parametrize("command", [
    ["report", "{run}", "--format", "md,csv", "--out", "{target}"],
    ["agreement", "{run}", "--out", "{target}/agreement.md"],
    ["baseline", "{run}", "--out", "{target}/baseline.json"],
    ["profile", TINY, "--image-size", "32", "--out", "{target}/profile.md"],
    ["sweep", TINY, "--image-size", "32,64", "--out", "{target}"],
], ids=lambda c: c[0])
def test_every_command_that_writes_says_which_file_on_a_full_disk(command, finished_run, tmp_path):
    target = tmp_path / "target"
    args = [a.format(run=finished_run, target=target) for a in command]
    outcome = vitbench_cli(*args, env={FULL: "0", "PYTHONPATH": str(REPO), **QUIET})
    progress = [line for line in outcome.stderr.splitlines() if line.startswith(f"{TINY}: ")]
    outcome = Outcome(outcome.code, outcome.stdout, "\n".join(  # sweep's "MODEL: counting 32x32"
        line for line in outcome.stderr.splitlines() if line not in progress))
    assert_clean_failure(outcome, 4, f"cannot write {target}/", "no space left on device")
    assert not target.exists() or [p for p in target.rglob("*") if p.is_file()] == []


def _can_mount_tmpfs() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


def test_a_real_full_tmpfs_mid_run(tmp_path):
    """No seam: row B's builder fills a 2 MiB tmpfs that holds the run folder, so the save
    after B really fails with ENOSPC. The tmpfs lives in a private mount namespace; the
    folder is copied out before the namespace ends."""
    if not _can_mount_tmpfs():
        pytest.skip("this machine does not let an unprivileged user mount a tmpfs")
    mnt, kept, rescue = tmp_path / "mnt", tmp_path / "kept", tmp_path / "tmp"
    mnt.mkdir()
    rescue.mkdir()
    (tmp_path / "disk.yaml").write_text(with_b("python:tests.fixtures_disk:fills_the_disk"),
                                        encoding="utf-8")
    script = (f"mount -t tmpfs -o size=2m tmpfs {mnt} && "
              f"{sys.executable} -m vitbench run {tmp_path}/disk.yaml --out {mnt}/out "
              f"--static-only; rc=$?; cp -a {mnt}/out {kept}; exit $rc")
    outcome = run_in_namespace(script, {"TMPDIR": str(rescue), "FILL_THE_DISK": f"{mnt}/filler"})
    line = assert_clean_failure(outcome, 4, "no space left on device", "stopped after 2 of 3 rows")
    assert statuses(kept / "results.json") == ["ok", "pending", "pending"]
    copies = list(rescue.glob("vitbench-unsaved-*/results.json"))
    assert len(copies) == 1 and str(copies[0]) in line
    assert statuses(copies[0]) == ["ok", "ok", "interrupted"]


# --- folders that cannot be written ------------------------------------------------------------

def test_out_is_a_file(suite, tmp_path):
    target = tmp_path / "a-file"
    target.write_text("mine", encoding="utf-8")
    outcome = run_cli(suite, target, *QUICK)
    assert_clean_failure(outcome, 2, f"--out {target}", "choose another")
    assert target.read_text(encoding="utf-8") == "mine"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 0o555")
def test_out_in_a_read_only_folder_by_permissions(suite, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    try:
        outcome = run_cli(suite, locked / "out", *QUICK)
        assert_clean_failure(outcome, 2, f"--out {locked}/out", "permission denied")
        outcome = run_cli(suite, locked, *QUICK)
        assert_clean_failure(outcome, 2, f"--out {locked}", "permission denied")
    finally:
        locked.chmod(0o755)
    assert list(locked.iterdir()) == []


def test_out_on_a_read_only_file_system(suite, tmp_path):
    """A read-only tmpfs (EROFS holds for root too): refused before anything is measured."""
    if not _can_mount_tmpfs():
        pytest.skip("this machine does not let an unprivileged user mount a tmpfs")
    mnt = tmp_path / "ro"
    mnt.mkdir()
    script = (f"mount -t tmpfs -o ro,size=64k tmpfs {mnt} && "
              f"{sys.executable} -m vitbench run {suite} --out {mnt} {' '.join(QUICK)}")
    assert_clean_failure(run_in_namespace(script, {}), 2, f"--out {mnt}", "read-only file system")


# --- folders that hold another run -------------------------------------------------------------

def test_out_that_holds_a_run_is_refused(suite, tmp_path):
    out = tmp_path / "out"
    assert_clean_success(run_cli(suite, out, *QUICK))
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    outcome = run_cli(suite, out, *QUICK)
    assert_clean_failure(outcome, 2, f"--out {out} already holds a run", "suite disk", "--force")
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # untouched


@pytest.mark.parametrize("leftover", ["results.json", "report.html", "plots/measured_vs_printed.png"])
def test_out_with_any_file_of_a_run_is_refused(suite, tmp_path, leftover):
    out = tmp_path / "out"
    (out / leftover).parent.mkdir(parents=True)
    (out / leftover).write_text("{not json", encoding="utf-8")
    outcome = run_cli(suite, out, *QUICK)
    assert_clean_failure(outcome, 2, f"--out {out} already holds a run", "--force")
    assert (out / leftover).read_text(encoding="utf-8") == "{not json"


def test_force_replaces_the_run_and_removes_its_stale_files(suite, tmp_path):
    out = tmp_path / "out"
    assert_clean_success(run_cli(suite, out, *QUICK))  # with report.html and plots/
    assert (out / "report.html").is_file() and (out / "plots").is_dir()
    (out / "mine.txt").write_text("not vitbench's", encoding="utf-8")
    old = json.loads((out / "results.json").read_text(encoding="utf-8"))["created_utc"]
    time.sleep(1.1)
    outcome = run_cli(suite, out, *QUICK, "--no-plots", "--only", "A", "--force")
    assert_clean_success(outcome)
    assert not (out / "report.html").exists() and not (out / "plots").exists()
    data = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert data["created_utc"] != old and [r["name"] for r in data["results"]] == ["A"]
    assert (out / "mine.txt").read_text(encoding="utf-8") == "not vitbench's"


def test_out_with_only_other_files_is_used(suite, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    assert_clean_success(run_cli(suite, out, *QUICK, "--no-plots"))
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert statuses(out / "results.json") == ["ok"] * 3


def test_concurrent_runs_into_one_folder_cannot_both_win(suite, tmp_path):
    """Run 1 hangs in a row while holding the folder; run 2, even with --force, is refused
    and deletes nothing; after run 1 is SIGKILLed its lock is gone, and run 3 may replace it."""
    out = tmp_path / "out"
    hang = tmp_path / "hang.yaml"
    hang.write_text(with_b("python:tests.fixtures_models:hangs"), encoding="utf-8")
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **QUIET}
    first = subprocess.Popen([sys.executable, "-m", "vitbench", "run", str(hang), "--out", str(out),
                              *QUICK], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not ((out / "results.json").is_file() and statuses(out / "results.json")[0] == "ok"):
            assert first.poll() is None and time.monotonic() < deadline, "run 1 did not start"
            time.sleep(0.2)
        outcome = run_cli(suite, out, *QUICK, "--force")
        assert_clean_failure(outcome, 2, f"--out {out}", "in use by another vitbench run",
                             f"pid {first.pid}")
        assert statuses(out / "results.json") == ["ok", "pending", "pending"]  # not replaced
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    assert_clean_success(run_cli(suite, out, *QUICK, "--no-plots", "--force"))
    assert statuses(out / "results.json") == ["ok"] * 3


def test_the_lock_is_released_when_the_run_ends(tmp_path):
    """In one process (a library user, CliRunner tests): held, it refuses a second claim even
    with replace; released, the folder can be claimed again and its lock file is gone."""
    from vitbench.errors import OutputFolderError
    from vitbench.files import LOCK_FILE, claim_run_folder

    lock = claim_run_folder(tmp_path / "out")
    with pytest.raises(OutputFolderError, match=f"pid {os.getpid()}"):
        claim_run_folder(tmp_path / "out", replace=True)
    lock.release()
    assert not (tmp_path / "out" / LOCK_FILE).exists()
    claim_run_folder(tmp_path / "out").release()


def test_report_and_ab_refuse_a_folder_another_command_is_writing(suite, tmp_path):
    """`report` into a run's folder while something holds it (a run still writing it), and
    `ab` into a held --out, are refused with one line and write nothing there; once it is
    released the report is written and leaves no lock file behind."""
    from vitbench.files import LOCK_FILE, FolderLock

    folder, ab_out = tmp_path / "run", tmp_path / "ab"
    folder.mkdir()
    ab_out.mkdir()
    shutil.copy(REPO / "tests" / "data" / "report_cpu_b1.json", folder / "results.json")
    with FolderLock(folder), FolderLock(ab_out):
        assert_clean_failure(vitbench_cli("report", str(folder), "--format", "md"), 2,
                             f"the report folder {folder} is in use by another vitbench run",
                             f"pid {os.getpid()}")
        assert_clean_failure(vitbench_cli("ab", str(suite), str(suite), "--runs", "2", "--out",
                                          str(ab_out), "--history", "off", env=QUIET), 2,
                             f"--out {ab_out} is in use by another vitbench run")
        assert sorted(p.name for p in folder.iterdir()) == [LOCK_FILE, "results.json"]
        assert [p.name for p in ab_out.iterdir()] == [LOCK_FILE]
    assert_clean_success(vitbench_cli("report", str(folder), "--format", "md"))
    assert (folder / "results.md").is_file() and not (folder / LOCK_FILE).exists()


def test_default_folders_never_collide(monkeypatch, tmp_path):
    """Two runs in the same second get two folders (the second with a suffix)."""
    from vitbench.config.suite import load_suite
    from vitbench.run import runner

    (tmp_path / "disk.yaml").write_text(SUITE, encoding="utf-8")
    suite = load_suite(tmp_path / "disk.yaml")
    monkeypatch.setattr(runner, "utc_stamp", lambda: "20261202T010203Z")
    first = runner.default_out_dir(suite, tmp_path / "results")
    second = runner.default_out_dir(suite, tmp_path / "results")
    assert first != second and first.is_dir() and second.is_dir()
    assert second.name.startswith("20261202T010203Z") and sorted([second.name, first.name])[0] == first.name


# --- permissions -------------------------------------------------------------------------------

def test_every_output_is_0644_under_umask_022(suite, tmp_path):
    out = tmp_path / "out"
    previous = os.umask(0o022)
    try:
        outcome = run_cli(suite, out, *QUICK)
    finally:
        os.umask(previous)
    assert_clean_success(outcome)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {"results.json", "results.csv", "results.md", "report.html"} <= {p.name for p in files}
    assert any(p.suffix == ".png" for p in files)
    assert {p.relative_to(out).as_posix(): oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {
        p.relative_to(out).as_posix(): "0o644" for p in files}
    assert stat.S_IMODE((out / "plots").stat().st_mode) == 0o755
