"""The results history (vitbench.history, `vitbench history`, `compare --baseline history:`):
the same tests against a SQLite file and a real throwaway PostgreSQL server.

One real `vitbench run` of the tiny suite (worker processes, timed) appends itself; the other
runs of a history are that run's results.json re-dated, with its raw samples scaled, so every
point is a real row's shape with a known shift.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.fixtures_postgres import new_database, postgres_server  # noqa: F401 - a fixture
from vitbench.cli import app
from vitbench.history import History, HistoryError, Filters, runs_frame, series
from vitbench.records import RunResult

from helpers_history import REPO, append_scaled, run_suite, scaled
runner = CliRunner()


SUITE = """name: hist
python_path: ["{repo}"]
defaults: {{image_size: 32, threads: 1, warmup: 1, repeat: 5, min_time_s: 0}}
models:
  - {{name: Tiny, model: "python:tests.fixtures_models:tiny", reference: {{params_m: 0.0001}}}}
  - {{name: Later, unavailable: not built in tests}}
"""


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          cwd=folder, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """A real `vitbench run` (a worker process, timed) of a suite committed in its own git
    repository, with a tracked file changed (dirty), appending itself to a SQLite history."""
    folder = tmp_path_factory.mktemp("real")
    code = folder / "code"
    code.mkdir()
    (code / "hist.yaml").write_text(SUITE.format(repo=REPO), encoding="utf-8")
    (code / "model.py").write_text("# the measured code\n")
    git(code, "init", "-q")
    git(code, "add", "hist.yaml", "model.py")
    git(code, "commit", "-q", "-m", "suite")
    (code / "model.py").write_text("# changed, not committed\n")
    done = run_suite(code / "hist.yaml", folder / "run",  # the option wins over the variable
                     "--history", str(folder / "h.sqlite"))
    return {"results": folder / "run" / "results.json", "db": folder / "h.sqlite",
            "stderr": done.stderr, "head": git(code, "rev-parse", "HEAD")}


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    """An empty history: a SQLite path, or a URL of a fresh database on a real server."""
    if request.param == "sqlite":
        return str(tmp_path / "history.sqlite")
    return new_database(request.getfixturevalue("postgres_server"))


def test_a_run_appends_itself_with_its_commit_versions_and_suite_hash(real_run):
    run = RunResult.load(real_run["results"])
    assert "history: 1 run(s) appended" in real_run["stderr"]
    frame = runs_frame(real_run["db"])
    assert list(frame["run_id"]) == [run.id] and frame["rows"][0] == 2  # Tiny, Later
    assert frame["commit"][0] == real_run["head"] and frame["dirty"][0] == True  # noqa: E712
    points = series(real_run["db"])
    assert set(points["metric"]) >= {"params_m", "gflops", "latency_ms", "throughput_img_s",
                                     "first_call_ms", "peak_memory_mib"}
    latency = points[points.metric == "latency_ms"].iloc[0]
    summary = run.results[0].latency_summary
    assert latency["value"] == summary.median and latency["n"] == summary.n
    assert latency["ci_low"] <= latency["value"] <= latency["ci_high"]
    assert latency["q20"] == pytest.approx(np.quantile(run.results[0].latency.samples_ms, 0.2))
    assert points["suite_sha256"][0] == run.suite["sha256"] and points["vitbench_version"][0]
    assert points["env_key"].nunique() == 1 and "torch" in points["env_label"][0]


def test_appending_or_importing_twice_never_duplicates(db, real_run, tmp_path):
    run = RunResult.load(real_run["results"])
    with History(db) as history:
        assert history.append(run) is True
        assert history.append(run) is False
    broken = tmp_path / "old" / "results.json"
    broken.parent.mkdir()
    broken.write_text("{not json")
    pattern = str(real_run["results"].parent.parent / "**" / "results.json")
    done = runner.invoke(app, ["history", "import", pattern, str(broken), "--history", db])
    assert done.exit_code == 0, done.output
    assert "imported 0 new run(s), replaced 1, skipped 1" in done.stdout
    assert "warning: skipped" in done.stderr and str(broken) in done.stderr
    assert len(runs_frame(db)) == 1
    assert len(series(db, metric="latency_ms")) == 1
    folder = runner.invoke(app, ["history", "import", str(real_run["results"].parent.parent),
                                 "--history", db])  # a folder of runs: every results.json
    assert "imported 0 new run(s), replaced 1, skipped 0" in folder.stdout, folder.output


def test_series_and_the_listing_filter_by_suite_model_metric_env_date_and_commit(db, real_run):
    run = RunResult.load(real_run["results"])
    append_scaled(db, run, [1.0, 1.0, 1.0, 1.0], dirty_at=3)
    append_scaled(db, run, [1.0, 1.0], day=20, threads=2)  # another environment (2 threads)
    everything = series(db, metric="latency_ms")
    assert len(everything) == 6
    assert everything["env_key"].nunique() == 2
    one_env = everything["env_key"].iloc[0]
    assert len(series(db, metric="latency_ms", environment=one_env[:6])) == 4
    assert len(series(db, model="Tiny", metric="gflops", since="2026-11-02",
                      until="2026-11-03")) == 2
    assert len(series(db, model="python:tests.*", metric="params_m")) == 6
    assert series(db, suite="other").empty
    window = series(db, metric="latency_ms", commit="01..02")
    assert list(window["commit"].str[:2]) == ["01", "02"]
    assert series(db, metric="latency_ms", commit="03")["dirty"].tolist() == [True]
    runs = runs_frame(db, Filters(since="2026-11-03", status=None))
    assert len(runs) == 4 and list(runs["rows"]) == [2] * 4 and list(runs["ok"]) == [1] * 4
    listed = runner.invoke(app, ["history", "--history", db, "--metric", "latency_ms",
                                 "--model", "Tiny", "--csv", "--last", "2"])
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert lines[0].startswith("created_utc,run_id,commit,dirty,model,metric,value") and \
        len(lines) == 3
    as_json = json.loads(runner.invoke(app, ["history", "--history", db, "--json"]).stdout)
    assert len(as_json) == 6 and {"run_id", "commit", "environments"} <= set(as_json[0])
    table = runner.invoke(app, ["history", "--history", db, "--suite", "hist"],
                          terminal_width=200)
    assert table.exit_code == 0 and "6 run(s)" in table.stdout


def test_compare_against_the_last_n_comparable_runs_of_the_history(db, real_run, tmp_path):
    run = RunResult.load(real_run["results"])
    noise = 1 + 0.004 * np.random.default_rng(3).standard_normal(8)
    append_scaled(db, run, list(noise), dirty_at=3)
    append_scaled(db, run, [1.0, 1.0], day=25, threads=2)  # not comparable: other settings
    static = scaled(run, 50, 1.0, day=27)  # the newest, but static-only: no latency
    for row in static.results:
        row.latency = None
    with History(db) as history:
        history.append(static)
    candidates = []
    for i, factor in enumerate((1.30, 1.31, 1.29, 1.30)):
        path = tmp_path / f"c{i}" / "results.json"
        scaled(run, 100 + i, factor, day=28).save(path)
        candidates.append(str(path))
    slower = runner.invoke(app, ["compare", "history:hist,last=6", *candidates,
                                 "--history", db, "--metrics", "params,gflops,latency"])
    assert slower.exit_code == 1, slower.output
    assert "6 comparable run(s)" in slower.stderr and "FAIL" in slower.stdout
    assert static.id not in slower.stderr  # a timed candidate is judged by timed runs
    same = []
    for i, factor in enumerate((1.0, 1.002, 0.998, 1.001)):
        path = tmp_path / f"s{i}" / "results.json"
        scaled(run, 200 + i, factor, day=28).save(path)
        same.append(str(path))
    passed = runner.invoke(app, ["compare", "history:", *same, "--history", db])
    assert passed.exit_code == 0, passed.output
    assert "8 comparable run(s)" in passed.stderr
    elsewhere = [str(tmp_path / "o" / "results.json")]
    scaled(run, 300, 1.0, day=28, threads=4).save(elsewhere[0])
    none = runner.invoke(app, ["compare", "history:", *elsewhere, "--history", db])
    assert none.exit_code == 3 and "no run in" in none.stderr, none.output
    bad = runner.invoke(app, ["compare", "history:last=x", *same, "--history", db])
    assert bad.exit_code == 2 and "last=x" in bad.stderr


def test_another_schema_version_and_a_missing_database_are_one_line_errors(db, tmp_path):
    from sqlalchemy import update

    from vitbench.history import schema

    with History(db) as history, history.engine.begin() as conn:
        conn.execute(update(schema.meta).where(schema.meta.c.key == "version")
                     .values(value="99"))
    with pytest.raises(HistoryError, match="schema version '99'"):
        series(db)
    missing = runner.invoke(app, ["history", "--history", str(tmp_path / "none.sqlite")])
    assert missing.exit_code == 2 and "no history database here" in missing.stderr


def test_pandas_reads_a_table_in_one_line(db, real_run):
    import pandas as pd

    from vitbench.history import history_url

    with History(db) as history:
        history.append(RunResult.load(real_run["results"]))
    points = pd.read_sql_table("points", history_url(db))
    assert {"run_id", "metric", "value", "ci_low", "ci_high", "n"} <= set(points.columns)
    assert len(points) == len(series(db))


def test_a_history_that_cannot_be_written_warns_and_the_run_still_passes(real_run, capsys):
    from vitbench.cli.history import append_to_history

    append_to_history("/dev/null/history.sqlite", [real_run["results"]])  # never raises
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and "history not updated" in warning[0]
    assert f"vitbench history import {real_run['results']}" in warning[0]
    append_to_history("off", [real_run["results"]])  # off: nothing at all
    assert capsys.readouterr().err == ""


def test_ab_sides_are_kept_apart_even_when_their_suites_are_the_same(db, real_run, tmp_path):
    """ab's lockstep rounds carry no run_id, and an A/A comparison (one suite file, two code
    revisions) gives A and B the same derived id: the side's folder tells them apart."""
    from vitbench.cli.history import append_to_history

    run = RunResult.load(real_run["results"])
    made = []
    for label in ("stage1-round00-A", "stage1-round00-B"):
        side = run.model_copy(update={"run_id": None})
        made.append(side.save(tmp_path / "ab" / label / "results.json"))
    append_to_history(db, made, kind="ab", labels=["stage1-round00-A", "stage1-round00-B"])
    runs = runs_frame(db)
    assert list(runs["kind"]) == ["ab", "ab"] and runs["run_id"].str.endswith("-A").sum() == 1
    done = runner.invoke(app, ["history", "import", str(tmp_path / "ab"), "--history", db])
    assert "imported 0 new run(s), replaced 2" in done.stdout, done.output


def test_env_key_is_stable_and_splits_what_makes_timings_incomparable():
    """A key once written must mean the same forever (histories outlive vitbench versions);
    a deployment runtime, a thread count or another CPU model is another key, the host name
    is not (CI runners are renamed every job)."""
    from tests.helpers_gate import row, run
    from vitbench.history.record import env_key, point_lines
    from vitbench.records.relative import RelativeLatency

    measured = run(row("m", latency=10.0))
    env, line = measured.environment, measured.results[0]
    assert env_key(env, line) == "342b8114b6c5"  # pinned: keys already in databases
    assert env_key({**env, "hostname": "runner-7"}, line) == "342b8114b6c5"
    line.runtime = "eager"
    assert env_key(env, line) == "342b8114b6c5"
    assert env_key(env, line.model_copy(update={"runtime": "openvino"})) != "342b8114b6c5"
    assert env_key(env, line.model_copy(update={"threads": 2})) != "342b8114b6c5"
    assert env_key({**env, "cpu": "other"}, line) != "342b8114b6c5"
    line.relative = RelativeLatency(reference="timm:resnet18", ratio=1.2, ci_low=1.1,
                                    ci_high=1.3, block_pairs=30)
    relative = [p for p in point_lines(measured, 0, line) if p["metric"] == "latency_relative"]
    assert relative[0]["value"] == 1.2 and relative[0]["unit"] == "× timm:resnet18"

