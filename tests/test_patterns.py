"""Suites from patterns (``--model 'timm:vit_*'``, ``vitbench suite new``), printed values from
a results CSV (``--references``), and the run's clock (``--max-run-time``, the tally).

``tests/data/references_timm_format.csv`` is written by this project in the column layout of
timm's ``results/benchmark-infer-*.csv``; its counts are vitbench's own (rounded to two
decimals as timm prints them), its timing columns left empty; ``test_vit2`` is listed at
192 px only (to be reported, not compared, at its default 160), ``test_convnext`` under a
``name.tag`` spelling, ``test_convnext2`` without GMACs, ``test_vit3`` not at all.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from helpers_faults import assert_clean_failure, vitbench_cli

DATA = Path(__file__).resolve().parent / "data"
CSV = DATA / "references_timm_format.csv"


def test_patterns_expand_to_every_match_sorted_and_deduplicated():
    from vitbench.build.patterns import expand_patterns

    assert expand_patterns(["timm:TEST_VIT[32]", "test_vit", "timm:test_vit2",
                            "test_convnext?"]) == [
        "timm:test_vit2", "timm:test_vit3", "test_vit", "timm:test_convnext2",
        "timm:test_convnext3"]  # each pattern's matches sorted, first spelling kept
    assert expand_patterns(["resnet18"]) == ["resnet18"]  # plain names pass through


def test_a_pattern_that_matches_nothing_is_one_line_naming_patterns_that_do(tmp_path):
    from vitbench.build.patterns import expand_patterns
    from vitbench.errors import UnknownModelError

    line = assert_clean_failure(
        vitbench_cli("run", "--static-only", "--out", str(tmp_path / "run"), "--model",
                     "resnet18", "--model", "timm:tset_vit*"), 2,
        "--model timm:tset_vit*: no timm model matches; did you mean ", "vitbench models")
    assert "timm:test_vit*" in line.split("did you mean")[1], line
    assert not (tmp_path / "run").exists()  # refused before any folder or model
    with pytest.raises(UnknownModelError, match="python models cannot be listed"):
        expand_patterns(["python:pkg.*:fn"])


def test_suite_new_prints_a_suite_that_loads_back_with_sizes_and_references(tmp_path):
    from vitbench.config.suite import load_suite, parse_suite

    made = vitbench_cli("suite", "new", "-m", "timm:test_vit[23]", "-m", "test_vit",
                        "-m", "test_convnext*", "--references", str(CSV), "--name", "zoo")
    assert made.code == 0, made.stderr
    suite = parse_suite(made.stdout)
    rows = {entry.name: entry for entry in suite.models}
    assert list(rows) == ["test_vit2", "test_vit3", "test_vit", "test_convnext",
                          "test_convnext2", "test_convnext3"] and suite.name == "zoo"
    assert {entry.image_size for entry in suite.models} == {160}  # timm's default for each
    assert rows["test_vit"].reference.values() == {"params_m": 0.37, "gflops": 0.04}
    assert rows["test_convnext"].reference.values() == {"params_m": 0.27, "gflops": 0.03}
    assert rows["test_convnext2"].reference.values() == {"params_m": 0.48}  # no GMACs given
    assert rows["test_vit3"].reference.values() == {}  # not in the CSV
    assert rows["test_vit2"].reference.values() == {}  # only at 192: said, not compared
    assert "at 192 px, not 160: not compared" in rows["test_vit2"].note
    [summary] = made.stderr.strip().splitlines()
    assert summary.startswith(f"references {CSV}: 3 rows filled, 2 not in it (test_vit3, "
                              f"test_convnext3), 1 listed only at another input size"), summary

    # --image-size: every row at that size; the CSV has no 96 px lines, so nothing compares
    out = tmp_path / "s.yaml"
    made = vitbench_cli("suite", "new", "-m", "test_vit*2", "--image-size", "96",
                        "--references", str(CSV), "-o", str(out))
    assert made.code == 0, made.stderr
    suite = load_suite(out)
    assert suite.defaults.image_size == 96 and suite.models[0].image_size is None
    assert "lists timm:test_vit2 at 192 px, not 96: not compared" in suite.models[0].note
    assert_clean_failure(vitbench_cli("suite", "new", "-m", "test_vit", "-o", str(out)), 2,
                         f"--out {out} exists", "--force")


def test_references_fill_the_printed_columns_and_agreement_counts_them(tmp_path):
    """A real run (counted in vitbench's process, as --in-process does) with the CSV."""
    from vitbench.records import RunResult
    from vitbench.report.agreement import summarize_agreement

    done = vitbench_cli("run", "--model", "test_vit", "--model", "timm:test_convnext",
                        "--static-only", "--in-process", "--json", "--references", str(CSV),
                        "--out", str(tmp_path / "run"))
    assert done.code == 0, done.stderr
    run = RunResult.model_validate(json.loads(done.stdout))
    assert [(r.name, r.reference) for r in run.results] == [
        ("test_vit", {"params_m": 0.37, "gflops": 0.04}),
        ("test_convnext", {"params_m": 0.27, "gflops": 0.03})]
    assert all(c.within_tolerance for r in run.results for c in r.comparisons.values())
    total = summarize_agreement(run).total
    assert total.compared == {"params_m": 2, "gflops": 2} == total.within
    assert run.suite["source"] == "references_timm_format.csv (--references)"
    assert f"references {CSV}: 2 rows filled" in done.stderr


def test_any_csv_works_with_a_column_mapping_and_bad_ones_say_what_to_do(tmp_path):
    from vitbench.config.adhoc import suite_for_models
    from vitbench.config.references import ReferenceTable, apply_references, parse_columns
    from vitbench.errors import VitbenchError

    mine = tmp_path / "mine.csv"
    mine.write_text("name,res,params,gmacs\ntimm:test_vit,160x160,0.371,0.0376\n"
                    "test_vit2,160,0.456,\n")
    suite = suite_for_models(["test_vit", "test_vit2", "test_vit3"],
                             image_sizes={f"timm:{m}": (160, 160) for m in
                                          ("test_vit", "test_vit2", "test_vit3")})
    table = ReferenceTable.load(mine, parse_columns(
        "model=name, params_m=params,gflops=gmacs,image_size=res"))
    filled, applied = apply_references(suite, table)
    assert [e.reference.values() for e in filled.models] == [
        {"params_m": 0.371, "gflops": 0.0376}, {"params_m": 0.456}, {}]
    assert filled.models[0].reference.printed_decimals == {"params_m": 3, "gflops": 4}
    assert (applied.filled, applied.missing) == (["test_vit", "test_vit2"], ["test_vit3"])

    with pytest.raises(VitbenchError, match="needs a model column .* its columns: name, res, "
                                            "params, gmacs; map them with --references-columns"):
        ReferenceTable.load(mine)  # timm's names are not there
    with pytest.raises(VitbenchError, match="KEY one of model, params_m, gflops, image_size"):
        parse_columns("name=model")
    with pytest.raises(VitbenchError, match="no column 'size'"):
        ReferenceTable.load(mine, parse_columns("model=name,params_m=params,image_size=size"))
    mine.write_text("model,param_count\nx,0.3\ny,lots\n")
    with pytest.raises(VitbenchError, match=r"mine.csv: line 3: param_count: 'lots' is not a "):
        ReferenceTable.load(mine)
    line = assert_clean_failure(vitbench_cli("suite", "new", "-m", "test_vit", "--references",
                                             str(tmp_path / "none.csv")), 2, "none.csv: no such file")
    assert line.startswith("error: --references")


SLOW_MODULE = textwrap.dedent("""
    import time

    from torch import nn


    def quick():
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())


    def slow():
        time.sleep(2)  # longer than the run's --max-run-time: later rows must not start
        return quick()


    quick2 = quick
""")


def test_max_run_time_keeps_finished_rows_and_marks_the_rest_not_started(tmp_path):
    import os

    from vitbench.records import RunResult

    (tmp_path / "slowmods.py").write_text(SLOW_MODULE)
    out = tmp_path / "run"
    done = vitbench_cli("run", "--model", "python:slowmods:slow", "--model",
                        "python:slowmods:quick", "--model", "python:slowmods:quick2",
                        "--static-only", "--in-process", "--image-size", "16",
                        "--max-run-time", "1s", "--out", str(out), "--no-plots",
                        env={"PYTHONPATH": os.pathsep.join(
                            [str(tmp_path), os.environ.get("PYTHONPATH", "")])})
    assert done.code == 1, done.stderr  # documented: not every row measured
    run = RunResult.load(out / "results.json")
    assert [r.status for r in run.results] == ["ok", "interrupted", "interrupted"]
    assert run.results[1].error == "not started: the run's --max-run-time 1s had passed"
    assert run.results[0].counts.params > 0 and not run.complete
    assert (out / "results.md").is_file()  # the reports are still written
    lines = done.stderr.splitlines()
    assert "[1/3] 1 done, 2 left, about 2 s to go" in lines or any(
        line.startswith("[1/3] 1 done, 2 left, about ") for line in lines), lines
    assert any(line.startswith("--max-run-time 1s passed: 2 rows not started") for line in lines)

    assert_clean_failure(vitbench_cli("run", "--model", "test_vit", "--max-run-time", "soon"), 2,
                         "--max-run-time: expected a duration such as 90s")


def test_durations_and_the_tally():
    from vitbench.cli.scale import RunTally, human_duration, parse_duration
    from vitbench.errors import VitbenchError

    assert [parse_duration(t) for t in ("90", "90s", "45m", "2h", "1h30m", "1.5 h")] == [
        90, 90, 2700, 7200, 5400, 5400]
    for bad in ("0", "", "1x", "5 parsecs", "m"):
        with pytest.raises(VitbenchError):
            parse_duration(bad)
    assert [human_duration(s) for s in (42, 600, 3 * 3600)] == ["42 s", "10 min", "3.0 h"]
    tally = RunTally(rows=4, measured=3)
    assert tally.text() == "0 done, 4 left"  # no row measured yet: no estimate
    tally.finish(0, "unavailable")  # not measured: costs nothing, says nothing about time
    for index, status in ((1, "ok"), (2, "failed")):
        tally.start(index)
        tally.finish(index, status)
    assert re.fullmatch(r"3 done, 1 failed, 1 left, about \d+ s to go", tally.text())
    tally.start(3)
    tally.finish(3, "timeout")
    assert tally.text() == "4 done, 2 failed, 0 left"


def test_suite_new_teaches_in_its_help_at_80_columns():
    from typer.testing import CliRunner

    from vitbench.cli import app

    runner = CliRunner()
    for args in (["suite", "--help"], ["suite", "new", "--help"], ["run", "--help"]):
        text = runner.invoke(app, args, env={"COLUMNS": "80"}, terminal_width=80).stdout
        assert text.startswith("Usage:") and not [l for l in text.splitlines() if len(l) > 80]
    text = runner.invoke(app, ["suite", "new", "--help"], env={"COLUMNS": "80"}).stdout
    assert "Examples:" in text and "--references-columns" in text
    run_help = " ".join(runner.invoke(app, ["run", "--help"], terminal_width=200).stdout.split())
    assert "'timm:vit_*'" in run_help and "--max-run-time DURATION" in run_help
