"""Agreement summary over RunResult objects (built from records, no models run)."""

from __future__ import annotations

from typer.testing import CliRunner

from vitbench.report.agreement import summarize_agreement
from vitbench.report.markdown import render_agreement
from vitbench.cli import app
from vitbench.records import ModelResult, RunResult, StaticCost


def _row(name, status="ok", params=None, gflops=None, ref=None, decimals=None, note="",
         agree=True):
    """``params`` in millions, ``gflops`` in giga-MACs (the printed keys' units)."""
    counts = None if params is None else StaticCost(
        params=round(params * 1e6), gmacs=gflops, counters_agree=agree)
    row = ModelResult(name=name, model="timm:x", image_size=(224, 224), batch_size=1,
                      device="cpu", dtype="float32", flops_convention="matmul-only",
                      tolerance_pct=5.0, status=status, counts=counts,
                      reference=ref or {}, printed_decimals=decimals or {}, note=note)
    if status == "ok":
        row.compare_to_reference()
    return row


def _run(name, rows):
    return RunResult(suite={"name": name}, created_utc="2026-01-01T00:00:00Z", results=rows)


def _runs():
    a = _run("a", [
        _row("good", params=3.67, gflops=0.566, ref={"params_m": 3.7, "gflops": 0.6},
             decimals={"params_m": 1, "gflops": 1}),
        _row("slide-error", params=14.01, gflops=2.1, ref={"params_m": 13.1, "gflops": 2.1},
             decimals={"params_m": 1, "gflops": 1}, note="slide error"),
        _row("params-only", params=5.72, ref={"params_m": 6}, decimals={"params_m": 0}),
        _row("gone", status="unavailable", ref={"params_m": 1.0}),
    ])
    b = _run("b", [
        _row("unexplained", params=10.0, gflops=1.0, ref={"params_m": 10.0, "gflops": 2.0},
             agree=False),
        _row("broken", status="failed", ref={"params_m": 1.0}),
    ])
    return [a, b]


def test_counts_per_suite_and_total():
    summary = summarize_agreement(_runs())
    a, b = summary.suites
    assert (a.rows, a.built, a.unavailable, a.failed) == (4, 3, 1, 0)
    assert (a.compared["params_m"], a.within["params_m"]) == (3, 2)
    assert (a.compared["gflops"], a.within["gflops"]) == (2, 2)
    assert (b.built, b.failed, b.within["gflops"]) == (1, 1, 0)
    total = summary.total
    assert (total.rows, total.built, total.compared["params_m"], total.within["params_m"]) == (6, 4, 4, 3)
    assert total.share("gflops") == 2 / 3
    assert total.counters_disagree == ["b: unexplained"]


def test_misses_carry_their_notes():
    summary = summarize_agreement(_runs())
    misses = {(m.name, m.quantity): m for m in summary.misses}
    assert set(misses) == {("slide-error", "params_m"), ("unexplained", "gflops")}
    assert misses[("slide-error", "params_m")].note == "slide error"
    assert [m.name for m in summary.unexplained] == ["unexplained"]


def test_single_run_and_markdown():
    summary = summarize_agreement(_runs()[0])
    assert len(summary.suites) == 1
    text = "\n".join(render_agreement(summary))
    assert "| a | 4 | 3 | 1 | 0 | 2/3 (67 %) | 2/2 (100 %) |" in text
    assert "slide-error" in text and "slide error" in text


def test_rows_without_comparisons_are_compared_on_the_fly():
    row = _row("late", params=3.67, ref={"params_m": 3.7}, decimals={"params_m": 1})
    row.comparisons = {}
    summary = summarize_agreement(_run("c", [row]))
    assert summary.total.within["params_m"] == 1


def test_command(tmp_path):
    paths = []
    for run in _runs():
        folder = tmp_path / run.suite["name"]
        run.save(folder / "results.json")
        paths.append(str(folder))
    out = tmp_path / "agreement.md"
    result = CliRunner().invoke(app, ["agreement", *paths, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "unexplained" in out.read_text()
    bad = CliRunner().invoke(app, ["agreement", str(tmp_path / "missing.json")])
    assert bad.exit_code == 2
