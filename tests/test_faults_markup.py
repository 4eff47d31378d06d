"""Fault corpus, user text: a suite whose title, source, row names, models, notes and reasons
are written in Rich markup, HTML and spreadsheet formulas is measured, shown and reported
like any other: exit 0, the text shown verbatim on the terminal, neutralised in
``results.md`` (HTML escaped) and ``results.csv`` (formulas quoted); a path with markup in an
error message is shown as it is.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from helpers_faults import assert_clean_failure, vitbench_cli
from vitbench.errors import ExitCode

CLOSING = "[/x]"
FORMULA = "=cmd|' /C calc'!A0"
SCRIPT = "<script>alert(1)</script>"
#: Every hostile spelling, as it must come back on the terminal.
HOSTILE = (CLOSING, "[bold]", "[1]", SCRIPT, FORMULA)

TITLE = "Hostile [/x] [bold]title[/bold] [1] <script>alert(1)</script>"
SOURCE = "seed [/x] table [1]"
BUILT = "ViT [/x] [bold]b[/bold] [1]"
NOTE = "[bold]bold?[/bold] [1] <script>alert(1)</script> & [/x]"
REASON = "[/x] not built: [bold]why[/bold] [1] <script>x</script>"
PLUS = "+SUM(A1:A9) [1]"

SUITE = f"""\
name: markup
title: {json.dumps(TITLE)}
source: {json.dumps(SOURCE)}
defaults: {{image_size: 64, threads: 1}}
models:
  - name: {json.dumps(BUILT)}
    model: timm:test_vit
    note: {json.dumps(NOTE)}
    source: {json.dumps("row [/x] source")}
    reference: {{params_m: 99.0, gflops: 0.01}}
  - name: {json.dumps(FORMULA)}
    model: "timm:[/x]"
    note: {json.dumps(FORMULA)}
    unavailable: {json.dumps(REASON)}
    reference: {{params_m: 1.5}}
  - name: {json.dumps(SCRIPT)}
    unavailable: {json.dumps(PLUS)}
  - name: "@SUM(1+1) [bold]"
    unavailable: "-2+3"
"""


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> dict[str, object]:
    """The hostile suite run once (--static-only, into a folder whose name is markup), then
    shown and reported: every outcome the tests below read."""
    base = tmp_path_factory.mktemp("markup")
    (base / "suite").mkdir()
    suite = base / "suite" / "markup.yaml"
    suite.write_text(SUITE, encoding="utf-8")
    out = base / "run [/x] [bold]"
    ran = vitbench_cli("run", str(suite), "--static-only", "--out", str(out), "--no-plots",
                       cwd=base)
    shown = vitbench_cli("show", str(out), cwd=base)
    report_dir = base / "report [/x]"
    reported = vitbench_cli("report", str(out), "--format", "md,csv", "--out", str(report_dir),
                            cwd=base)
    return {"ran": ran, "shown": shown, "reported": reported, "out": out,
            "report": report_dir, "base": base}


def _clean(outcome) -> str:
    everything = outcome.stdout + outcome.stderr
    assert "Traceback" not in everything, everything[-3000:]
    assert outcome.code == 0, (outcome.code, everything[-3000:])
    assert not outcome.error_lines or all("error" not in line for line in outcome.error_lines), \
        outcome.stderr
    return outcome.stdout


@pytest.mark.parametrize("step", ["ran", "shown"])
def test_the_table_shows_every_name_title_reason_and_note_verbatim(measured, step):
    stdout = " ".join(_clean(measured[step]).split())  # the table may wrap a long reason
    for text in (TITLE, BUILT, FORMULA, SCRIPT, "@SUM(1+1) [bold]", REASON, PLUS, NOTE,
                 f"printed values: {SOURCE}"):
        assert " ".join(text.split()) in stdout, (text, stdout[-4000:])


def test_the_run_says_where_its_markup_named_folder_is(measured):
    assert f"Results: {measured['out']}" in _clean(measured["ran"])


def test_the_report_command_names_its_files_verbatim(measured):
    stdout = _clean(measured["reported"])
    assert TITLE in stdout
    assert str(measured["report"] / "results.md") in stdout


def test_markdown_escapes_html_and_pipes_in_every_user_text(measured):
    _clean(measured["reported"])
    for folder in (measured["out"], measured["report"]):
        text = (Path(folder) / "results.md").read_text(encoding="utf-8")
        assert "<script>" not in text and "</script>" not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
        assert "& [/x]" not in text and "&amp; [/x]" in text  # a bare & is escaped too
        assert "=cmd\\|' /C calc'!A0" in text  # a | cannot end a table cell
        lines = text.splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("|"))
        table = lines[start:start + 6]  # the results table: header, rule, four rows
        cells = {len(re.findall(r"(?<!\\)\|", line)) for line in table}
        assert all(line.startswith("|") for line in table) and len(cells) == 1, table
        assert not lines[start + 6].startswith("|")


def _csv_rows(folder: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((folder / "results.csv").read_text(encoding="utf-8"))))


def test_csv_quotes_formulas_in_text_columns_only(measured):
    _clean(measured["reported"])
    for folder in (measured["out"], measured["report"]):
        rows = {row["name"]: row for row in _csv_rows(Path(folder))}
        assert set(rows) == {BUILT, "'" + FORMULA, SCRIPT, "'@SUM(1+1) [bold]"}
        formula = rows["'" + FORMULA]
        assert formula["note"] == "'" + FORMULA
        assert formula["model"] == "timm:[/x]"
        assert formula["error"] == REASON
        assert rows[SCRIPT]["error"] == "'" + PLUS
        assert rows["'@SUM(1+1) [bold]"]["error"] == "'-2+3"
        built = rows[BUILT]
        assert built["note"] == NOTE and built["status"] == "ok"
        # Numbers stay numbers: a negative Δ is not text to neutralise.
        assert float(built["delta_params_pct"]) < 0 and not built["delta_params_pct"].startswith("'")
        assert float(built["paper_params_m"]) == 99.0


def test_results_json_keeps_the_text_as_written(measured):
    document = json.loads((Path(measured["out"]) / "results.json").read_text(encoding="utf-8"))
    assert document["suite"]["title"] == TITLE
    names = [row["name"] for row in document["results"]]
    assert names == [BUILT, FORMULA, SCRIPT, "@SUM(1+1) [bold]"]


@pytest.mark.parametrize("args, fragment", [
    (["show", "{base}/[/x] missing/results.json"], "[/x] missing/results.json: no such file"),
    (["report", "{base}/[bold]gone[/bold]"], "[bold]gone[/bold]"),
    (["compare", "{base}/[1] [/x].json", "{base}/[1] [/x].json"], "[1] [/x].json: no such file"),
    (["run", "{base}/[/x] suites/[bold].yaml"], "[/x] suites/[bold].yaml"),
    (["agreement", "{base}/[/x]"], "[/x]"),
])
def test_a_path_with_markup_is_shown_verbatim_in_the_error(args, fragment, tmp_path):
    outcome = vitbench_cli(*[a.format(base=tmp_path) for a in args], cwd=tmp_path)
    assert_clean_failure(outcome, ExitCode.BAD_INPUT, fragment)


def test_a_corrupt_file_with_markup_in_its_name_and_content_is_one_verbatim_line(tmp_path):
    path = tmp_path / "[/x] [bold]r.json"  # the "/" makes a folder "[" holding "x] [bold]r.json"
    path.parent.mkdir()
    path.write_text('{"schema": "vitbench.result/2", "suite": {}, "created_utc": "[/x]", '
                    '"results": [{"name": "[/x] <b>"}]}', encoding="utf-8")
    outcome = vitbench_cli("show", str(path), cwd=tmp_path)
    assert_clean_failure(outcome, ExitCode.BAD_INPUT, str(path), "results[0] ([/x] <b>)")


def _gate_command(command: str, hostile: Path, base: Path) -> tuple[list[str], str]:
    """``command`` reading the hostile run and writing under a folder named in markup; the
    line its output must show verbatim."""
    results = str(Path(hostile) / "results.json")
    out = base / "[/x] out [bold]"
    if command == "baseline":
        return ["baseline", results, "--out", str(out / "b.json")], f"→ {out / 'b.json'}"
    if command == "compare":
        return (["compare", results, results, "--metrics", "params,gflops", "--out", str(out)],
                f"written: {out / 'verdict.json'}")
    if command == "agreement":
        return ["agreement", results, "--out", str(out / "a.md")], f"written: {out / 'a.md'}"
    ab = base / "ab [/x]"
    for side in "AB":
        (ab / f"stage1-round01-{side}").mkdir(parents=True, exist_ok=True)
        (ab / f"stage1-round01-{side}" / "results.json").write_bytes(Path(results).read_bytes())
    return (["gate-selftest", "--from", str(ab), "--out", str(out), "--trials", "10"],
            f"written: {out / 'selftest.json'}")


@pytest.mark.parametrize("command", ["baseline", "compare", "agreement", "gate-selftest"])
def test_gate_commands_show_hostile_names_and_paths_verbatim(measured, command, tmp_path):
    args, shown = _gate_command(command, measured["out"], tmp_path)
    stdout = _clean(vitbench_cli(*args, cwd=tmp_path))
    assert shown in stdout, stdout[-3000:]
    if command in ("compare", "gate-selftest"):
        assert BUILT in stdout  # the row's name, in the verdict table or the summary
