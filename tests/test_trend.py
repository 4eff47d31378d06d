"""`vitbench trend`: change points on synthetic series, the charts and the dashboard written
from a real history, and the exit codes a nightly job reads."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vitbench.cli import app
from vitbench.history.changes import (find_changes, find_splits, latest_regressions,
                                      level_changes)
from vitbench.history.query import series
from vitbench.records import RunResult

from helpers_history import REPO, append_scaled, commit_of, run_suite
runner = CliRunner()

SUITE = """name: trendy
python_path: ["{repo}"]
defaults: {{image_size: 32, threads: 1, warmup: 1, repeat: 5, min_time_s: 0}}
models:
  - {{name: Tiny, model: "python:tests.fixtures_models:tiny"}}
"""


def noisy(n: int, seed: int, cv: float = 0.02) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(0.0, cv, n)


@pytest.mark.parametrize("seed", range(5))
def test_a_step_is_found_where_it_is(seed):
    values = noisy(30, seed) * np.where(np.arange(30) >= 20, 1.10, 1.0)
    splits = find_splits(values)
    assert [s.index for s in splits] == [20]
    assert 0 < splits[0].p_value < 0.01


@pytest.mark.parametrize("seed", range(5))
def test_a_flat_series_has_no_change_point(seed):
    assert find_splits(noisy(30, 100 + seed)) == []
    assert find_splits(np.full(12, 3.5)) == []


def test_one_slow_run_is_not_a_change_and_does_not_move_the_step():
    values = noisy(30, 7) * np.where(np.arange(30) >= 20, 1.10, 1.0)
    values[12] *= 1.6  # a busy machine, before the step
    assert [s.index for s in find_splits(values)] == [20]
    alarms = 0
    for seed in range(20):  # α = 0.01 per series: a slow run may tip one, not several
        flat = noisy(30, 200 + seed)
        flat[seed % 30] *= 1.6
        alarms += bool(find_splits(flat))
    assert alarms <= 1


def test_counts_change_at_any_new_value_with_no_noise():
    assert [(s.index, s.p_value) for s in level_changes([1.27, 1.27, 1.31, 1.31])] == [(2, 0.0)]
    assert level_changes([0.4] * 6) == []


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> RunResult:
    """One real timed `vitbench run` of a tiny model (a worker process)."""
    folder = tmp_path_factory.mktemp("trend")
    (folder / "trendy.yaml").write_text(SUITE.format(repo=REPO), encoding="utf-8")
    run_suite(folder / "trendy.yaml", folder / "run", "--history", "off")
    return RunResult.load(folder / "run" / "results.json")


def test_changes_on_a_real_history_report_run_commit_size_and_p(real_run, tmp_path):
    db = tmp_path / "h.sqlite"
    factors = noisy(14, 3, 0.01) * np.where(np.arange(14) >= 10, 1.25, 1.0)
    append_scaled(db, real_run, factors, folder=tmp_path)
    found = find_changes(series(db, suite="trendy", metric=["latency_ms", "params_m"]))
    assert len(found) == 1
    change = found[0]
    assert (change.model, change.metric, change.index, change.runs) == ("Tiny", "latency_ms",
                                                                        10, 14)
    assert change.commit == commit_of(10) and change.direction == "regression"
    assert change.ci_low_pct < change.change_pct < change.ci_high_pct
    assert 15 < change.change_pct < 35 and change.p_value < 0.01
    assert latest_regressions(found, window=5) == [change]
    assert latest_regressions(found, window=3) == []


def test_trend_writes_charts_and_a_dashboard_and_exits_1_on_a_latest_regression(real_run,
                                                                               tmp_path):
    db = tmp_path / "h.sqlite"
    append_scaled(db, real_run, noisy(16, 4, 0.01) * np.where(np.arange(16) >= 11, 1.3, 1.0),
                  folder=tmp_path)
    out = tmp_path / "trend"
    done = runner.invoke(app, ["trend", "trendy", "--history", str(db), "--out", str(out),
                               "--changes", "--json", "--metric", "latency_ms",
                               "--metric", "params_m"])
    assert done.exit_code == 1, done.output
    report = json.loads(done.stdout)
    assert [c["index"] for c in report["latest_regressions"]] == [11]
    for metric in ("latency_ms", "params_m"):
        assert (out / f"trend-{metric}.png").read_bytes()[:4] == b"\x89PNG"
        assert (out / f"trend-{metric}.svg").read_text(encoding="utf-8").lstrip().startswith("<?xml")
    page = (out / "dashboard.html").read_text(encoding="utf-8")
    assert page.count("data:image/svg+xml;base64,") >= 2 and "http" not in page.split(
        "<body>")[1].replace("http://www.w3.org", "")
    assert "regression +" in page and "href='../20261116T000000Z-00000f/'" in page

    # a wider window than the step's distance from the end, then a narrower one
    assert runner.invoke(app, ["trend", "trendy", "--history", str(db), "--changes",
                               "--window", "3"]).exit_code == 0
    done = runner.invoke(app, ["trend", "trendy", "--history", str(db), "--changes"])
    assert done.exit_code == 1 and "latest" in done.stdout


def test_trend_bad_input_is_one_line_and_exit_2(real_run, tmp_path):
    missing = runner.invoke(app, ["trend", "trendy", "--history", str(tmp_path / "no.sqlite"),
                                  "--changes"])
    assert missing.exit_code == 2 and "no history database" in missing.output
    db = tmp_path / "h.sqlite"
    append_scaled(db, real_run, [1.0, 1.0, 1.0], folder=tmp_path)
    assert runner.invoke(app, ["trend", "trendy", "--history", str(db)]).exit_code == 2
    other = runner.invoke(app, ["trend", "other", "--history", str(db), "--changes"])
    assert other.exit_code == 2 and "no " in other.output and "other" in other.output
    flat = runner.invoke(app, ["trend", "trendy", "--history", str(db), "--changes"])
    assert flat.exit_code == 0 and "no change point" in flat.stdout


CHROMIUM_REQUIRED = os.environ.get("VITBENCH_REQUIRE_CHROMIUM") == "1"
HAVE_CHROMIUM = any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome"))


@pytest.mark.skipif(not (HAVE_CHROMIUM or CHROMIUM_REQUIRED),
                    reason="chromium not installed (apt-get install -y chromium)")
def test_the_dashboard_renders_in_headless_chromium(real_run, tmp_path):
    assert HAVE_CHROMIUM, "VITBENCH_REQUIRE_CHROMIUM=1 but no chromium on PATH"
    db = tmp_path / "h.sqlite"
    append_scaled(db, real_run, noisy(10, 5, 0.01) * np.where(np.arange(10) >= 6, 1.3, 1.0),
                  folder=tmp_path)
    out = tmp_path / "trend"
    done = runner.invoke(app, ["trend", "trendy", "--history", str(db), "--out", str(out),
                               "--metric", "latency_ms", "--metric", "params_m"])
    assert done.exit_code == 0, done.output
    shot = tmp_path / "shot.png"
    rendered = subprocess.run([str(REPO / "scripts" / "screenshot_report.sh"),
                               str(out / "dashboard.html"), str(shot), "1200x900"],
                              capture_output=True, text=True, timeout=120)
    assert rendered.returncode == 0, rendered.stderr
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 30_000  # a page, not a blank
