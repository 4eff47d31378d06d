"""A model that hangs, raises or kills its worker costs one row; the suite goes on.

The subprocess test starts one real worker per row (each imports torch: several seconds on a
busy 2-core machine), so it is marked ``slow``; the in-process checks are quick.
"""

from __future__ import annotations

import os
import signal

import pytest

from vitbench.config.spec import Job

from jobs import small_job

FIXTURES = "python:tests.fixtures_models"


def _job(model: str, **changes) -> Job:
    return small_job(f"{FIXTURES}:{model}", **{"name": model, **changes})


def test_forward_that_raises_is_a_failed_row_in_process():
    from vitbench.measure.job import measure_job

    row = measure_job(_job("raises", count=False))
    assert row.status == "failed"
    assert "fixture forward failed on purpose" in row.error and row.error.startswith("time:")


def test_builder_returning_no_module_is_a_failed_build():
    from vitbench.measure.job import measure_job

    row = measure_job(_job("not_a_module"))
    assert row.status == "failed" and "not a torch.nn.Module" in row.error


def test_worker_env_fixes_threads_and_puts_pythonpath_after_the_job_folders(monkeypatch):
    from vitbench.build.pythonpath import PYTHON_PATH_ENV
    from vitbench.run.workers import worker_env

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(["/user/lib", "", "/user/other"]))
    env = worker_env(_job("tiny", threads=3, python_path=["/suite", "/suite/lib"]))
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "3"
    assert "PYTHONPATH" not in env, "Python would search it before the installed packages"
    assert env[PYTHON_PATH_ENV].split(os.pathsep) == [
        "/suite", "/suite/lib", "/user/lib", "/user/other"]
    assert os.getcwd() not in env[PYTHON_PATH_ENV].split(os.pathsep)


@pytest.mark.parametrize("code, expected", [
    (3, "exited with status 3"),
    (-signal.SIGKILL, "died with SIGKILL (killed: most likely out of memory)"),
    (-signal.SIGSEGV, "died with SIGSEGV"),
])
def test_exit_reasons_are_readable(code, expected):
    from vitbench.run.workers import describe_exit

    assert describe_exit(code) == expected


SUITE = f"""
name: isolation
defaults: {{threads: 1, image_size: 32, warmup: 1, repeat: 3, min_time_s: 0, timeout_s: 120, processes: 1}}
models:
  - {{name: hangs, model: "{FIXTURES}:hangs", timeout_s: 10}}
  - {{name: raises, model: "{FIXTURES}:raises"}}
  - {{name: exits, model: "{FIXTURES}:exits"}}
  - {{name: killed, model: "{FIXTURES}:killed"}}
  - {{name: tiny, model: "{FIXTURES}:tiny", batch_size: [1, 2]}}
"""


@pytest.fixture(scope="module")
def isolation_run(tmp_path_factory):
    from vitbench.run.runner import run_suite
    from vitbench.config.suite import parse_suite

    out = tmp_path_factory.mktemp("isolation")
    run = run_suite(parse_suite(SUITE, "isolation.yaml"), out_dir=out)
    return {(r.name, r.batch_size): r for r in run.results}, run, out


@pytest.mark.slow
def test_a_hanging_forward_becomes_a_timeout_row(isolation_run):
    rows, _, _ = isolation_run
    row = rows[("hangs", 1)]
    assert row.status == "timeout" and "timed out after 10 s" in row.error


@pytest.mark.slow
def test_a_raising_forward_becomes_a_failed_row(isolation_run):
    rows, _, _ = isolation_run
    row = rows[("raises", 1)]
    assert row.status == "failed" and "fixture forward failed on purpose" in row.error


@pytest.mark.slow
def test_a_worker_that_exits_or_is_killed_becomes_a_failed_row(isolation_run):
    rows, _, _ = isolation_run
    assert rows[("exits", 1)].status == "failed"
    assert rows[("exits", 1)].error.startswith("worker exited with status 3")
    assert rows[("killed", 1)].status == "failed"
    assert rows[("killed", 1)].error.startswith("worker died with SIGKILL")


@pytest.mark.slow
def test_rows_after_the_failures_still_run_once_per_batch_size(isolation_run):
    rows, run, out = isolation_run
    for batch in (1, 2):
        row = rows[("tiny", batch)]
        assert row.status == "ok", row.error
        assert row.latency.summary.n >= 3 and row.batch_size == batch
    assert run.complete and (out / "results.json").is_file()
    assert "warnings" in run.environment, "the oversubscription check lands in the JSON"
