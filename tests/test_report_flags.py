"""One vocabulary for a row's state: the terminal (`vitbench show`, a real process), Markdown
and HTML mark the same states with the same symbols and words, and each prints the legend.

The states come from a real run (tests/data/report_cpu_b1.json: PVTv1-T is unstable) with the
others set on its rows the way the measuring code records them: a Δ outside tolerance (counts
changed, comparisons recomputed), a drift and a contended (busy) warning, failed / timeout /
interrupted rows with their reasons.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vitbench import report
from vitbench.records import RunResult, Telemetry
from vitbench.report.flags import FLAGS, legend_text, status_text, warning_kinds

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[1]

#: row name -> what its line must say in every output
EXPECTED = {
    "PVTv1-T": ["~", "ok ⚠ unstable"],
    "PoolFormerS12": ["~", "ok ⚠ unstable, other"],
    "ResNet-18": ["✗", "ok"],
    "TNT-Ti": ["✓", "ok ⚠ drift"],
    "PVTv2-B0": ["✓", "ok ⚠ busy"],
    "MobileViTv1-XXS": ["failed"],
    "MobileViTv2-0.5": ["timeout"],
    "EMSNet-Tiny": ["interrupted"],
    "EdgeViT-XXS": ["unavailable"],
}


def flagged_run() -> RunResult:
    run = RunResult.load(DATA / "report_cpu_b1.json")
    rows = {r.name: r for r in run.results}
    resnet = rows["ResNet-18"]
    resnet.counts = resnet.counts.model_copy(update={"gmacs": 1.8 * 0.48})  # −52 %
    resnet.compare_to_reference()
    rows["TNT-Ti"].warnings.append("drift: the medians of the four quarters of the timed loop "
                                   "differ by 1.31x; the machine's speed changed")
    busy = rows["PVTv2-B0"]
    busy.warnings.append("contended: other processes used 41% of the machine's CPU while this "
                         "row was timed (load 3.2); latency is likely inflated")
    for name, status, error in (("MobileViTv1-XXS", "failed", "RuntimeError: boom"),
                                ("MobileViTv2-0.5", "timeout", "no result within 60 s"),
                                ("EMSNet-Tiny", "interrupted", "run interrupted by SIGINT")):
        row = rows[name]
        row.status, row.error, row.latency, row.memory = status, error, None, None
    return run


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, str]:
    """The terminal, Markdown and HTML renderings of :func:`flagged_run`."""
    folder = tmp_path_factory.mktemp("flags")
    run = flagged_run()
    run.save(folder / "results.json")
    shown = subprocess.run([sys.executable, "-m", "vitbench", "show", str(folder / "results.json")],
                           capture_output=True, text=True, timeout=120, cwd=ROOT,
                           env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr[-2000:]
    return {"terminal": shown.stdout, "markdown": report.to_markdown(run),
            "html": report.to_html(run)}


def _row_text(output: str, kind: str, name: str) -> str:
    """The line (terminal, Markdown) or table row (HTML, tags stripped) of row ``name``."""
    if kind == "html":
        output = "\n".join(html.unescape(re.sub(r"<[^>]+>", " ", row))
                            for row in re.findall(r"<tr[ >].*?</tr>", output, re.S))
    pattern = rf"(^|[|│]) *{re.escape(name)} *[|│ ]"
    lines = [line for line in output.splitlines() if re.search(pattern, line)]
    assert lines, f"{kind}: no line for {name}"
    return lines[0]


def _flat(output: str, kind: str) -> str:
    """The whole output as plain text, whitespace collapsed (the terminal wraps lines)."""
    if kind == "html":
        output = re.sub(r"<(script|style)>.*?</\1>", " ", output, flags=re.S)
        output = html.unescape(re.sub(r"<[^>]+>", " ", output))
    return " ".join(output.split()).replace("• ", "")


@pytest.mark.parametrize("kind", ["terminal", "markdown", "html"])
@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_state_reads_the_same_in_every_output(outputs, kind, name):
    text = _row_text(outputs[kind], kind, name)
    for fragment in EXPECTED[name]:
        assert fragment in text, f"{kind}, {name}: {fragment!r} not in {text!r}"
    if name == "ResNet-18":
        assert "-52.0% ✗" in text
    if "⚠" not in " ".join(EXPECTED[name]):
        assert "⚠" not in text  # a clean row carries no warning mark


@pytest.mark.parametrize("kind", ["terminal", "markdown", "html"])
def test_every_output_prints_the_one_legend(outputs, kind):
    flat = _flat(outputs[kind], kind)
    assert " ".join(legend_text().split()) in flat
    for old in ("% !", "(see warnings)", "⚠ = unstable"):  # the three old vocabularies
        assert old not in flat


def test_the_legend_names_every_mark_and_status():
    legend = legend_text()
    for flag in FLAGS.values():
        assert flag.mark in legend and flag.word in legend
    for status in ("failed", "timeout", "unavailable", "interrupted"):
        assert status in legend


def test_status_words_from_flags_and_warning_texts():
    run = flagged_run()
    rows = {r.name: r for r in run.results}
    assert warning_kinds([rows["PoolFormerS12"]]) == ["unstable", "other"]
    assert warning_kinds([rows["PVTv2-B0"]]) == ["busy"]
    contended = rows["ResNet-18"].model_copy(update={"telemetry": Telemetry(contended=True)})
    assert warning_kinds([contended]) == ["busy"]  # the stored flag, without a warning text
    assert status_text("ok", ["drift", "busy"]) == "ok ⚠ drift, busy"
    assert status_text("failed", ["drift"]) == "failed" and status_text("ok") == "ok"


def test_run_level_busy_warning_is_listed_with_the_rows():
    run = flagged_run()
    run.environment["warnings"] = ["machine busy: load average 3.10 on 2 CPUs before the run"]
    text = report.to_markdown(run)
    assert "- **run**: machine busy: load average 3.10" in text


@pytest.mark.parametrize("kind", ["markdown", "html"])
def test_img_per_s_beside_the_latency_at_batch_1(outputs, kind):
    assert "img/s" in outputs[kind]
    line = _row_text(outputs[kind], kind, "ResNet-18")
    run = RunResult.load(DATA / "report_cpu_b1.json")
    rate = next(r for r in run.results if r.name == "ResNet-18").throughput_img_s
    assert f"{rate:.1f}" in line
