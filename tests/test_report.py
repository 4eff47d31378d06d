"""Markdown/CSV reports: golden files, merging runs, the `vitbench report` command."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from helpers_golden import assert_matches_golden
from typer.testing import CliRunner

from vitbench import report
from vitbench.cli import app
from vitbench.errors import ResultsError
from vitbench.report.markdown import markdown_grid
from vitbench.report.merge import load_runs, merge_runs
from vitbench.records import RunResult

DATA = Path(__file__).parent / "data"
CPU_B1 = DATA / "report_cpu_b1.json"         # `vitbench run suites/lightweight.yaml`, real
CPU_B4 = DATA / "report_cpu_b4.json"         # 3 rows, --threads 1 --repeat 10 --batch-size 4, real
GPU = DATA / "report_synthetic_cuda.json"    # CPU_B1 hand-edited into a cuda run: NOT measured


def _golden(name: str, text: str) -> None:
    assert_matches_golden(DATA / name, text)


def test_the_run_sink_rewrites_the_views_only_while_cheap_and_always_at_the_end(monkeypatch,
                                                                              tmp_path):
    """While a run goes, CSV/Markdown are rewritten when the last rewrite took at most
    VIEWS_CPU_SHARE of the time since it (a clock that moves only when told: exact); a run
    that has ended (complete, or interrupted: finished_utc set) is always written."""
    now = [0.0]
    monkeypatch.setattr(report.time, "monotonic", lambda: now[0])
    real_write = report.write_reports
    writes = []

    def write_taking_1s(run, out_dir, formats):
        writes.append(tuple(formats))
        now[0] += 1.0
        return real_write(run, out_dir, formats)

    monkeypatch.setattr(report, "write_reports", write_taking_1s)
    run = RunResult.load(CPU_B1)
    run.finished_utc = None
    sink = report.report_sink(tmp_path, final_formats="md,csv,html")
    sink(run, False)                        # t=0: first state, written (1 s)
    now[0] = 1.0 + 0.9 / report.VIEWS_CPU_SHARE
    sink(run, False)                        # too soon after a 1 s rewrite: skipped
    now[0] = 1.0 + 1.0 / report.VIEWS_CPU_SHARE
    sink(run, False)                        # written
    sink(run.model_copy(update={"finished_utc": "2026-12-02T00:00:00+00:00"}), False)
    sink(run, True)                         # complete: the final formats
    assert writes == [("csv", "md")] * 3 + [("md", "csv", "html")]
    assert {p.name for p in tmp_path.iterdir()} >= {"results.csv", "results.md", "report.html"}


def test_markdown_matches_golden():
    _golden("report_golden.md", report.to_markdown(RunResult.load(CPU_B1)))


def test_csv_matches_golden():
    _golden("report_golden.csv", report.to_csv(RunResult.load(CPU_B1)))


def test_merged_markdown_matches_golden():
    runs, _ = load_runs([CPU_B1, GPU])
    _golden("report_golden_merged.md", report.to_markdown(runs))


def test_csv_columns_only_ever_appended():
    first_version = (
        "name", "model", "image_size", "batch_size", "device", "dtype", "threads", "status",
        "error", "params_m", "gflops", "flops_convention", "gflops_counter", "gflops_crosscheck",
        "counters_agree", "uncounted_ops", "gap_ops", "latency_ms_median", "latency_ms_p90",
        "latency_ms_p99", "latency_ms_min", "latency_ms_mean", "latency_ms_ci_low",
        "latency_ms_ci_high", "latency_samples", "latency_unstable", "first_call_ms",
        "throughput_img_s", "peak_memory_mb", "paper_params_m", "paper_gflops", "paper_top1",
        "paper_latency_cpu_ms", "paper_latency_gpu_ms", "paper_throughput_cpu_img_s",
        "paper_throughput_gpu_img_s", "paper_fps", "paper_gpu_memory_mb", "paper_miou",
        "delta_params_pct", "delta_gflops_pct", "params_within_tolerance",
        "gflops_within_tolerance", "note", "source")
    assert report.CSV_COLUMNS[:len(first_version)] == first_version
    assert len(set(report.CSV_COLUMNS)) == len(report.CSV_COLUMNS)


def test_markdown_is_paper_style():
    run = RunResult.load(CPU_B1)
    text = report.to_markdown(run)
    table = report.markdown_table(run)
    names = [line.split("|")[1].strip() for line in table.splitlines()[2:] if line.startswith("|")]
    assert names == [r.name for r in run.results]            # the suite's order and labels
    assert "Params (M)" in table and "CPU latency (ms)" in table and "peak mem (MiB)" in table
    # long reasons are footnotes, not cell text; identical reasons share one footnote
    assert "unavailable[^1]" in table
    reasons = [r.error for r in run.results if r.status == "unavailable"]
    numbers = {reason: n for n, reason in enumerate(dict.fromkeys(reasons), start=1)}
    assert len(numbers) < len(reasons)  # the data has rows that share a reason (EMSNet)
    for reason, n in numbers.items():
        assert table.count(f"[^{n}]") == reasons.count(reason) + 1  # its rows + the definition
        assert f"[^{n}]: {reason}" in table
    assert "the seed gives no configuration" not in table.split("[^1]:")[0]
    # matches at printed precision are bold; Δ with the tolerance mark
    assert "**11.69**" in table and "-0.1% ✓" in table
    assert "Environment: batch 1, float32, 1 thread; AMD EPYC (2 usable CPUs)" in text


def test_merge_cpu_and_gpu_into_one_table():
    runs, paths = load_runs([GPU, CPU_B1])  # order of the files does not matter
    merged = merge_runs(runs, paths)
    assert [c.label for c in merged.columns] == ["CPU", "GPU"]
    assert [r.name for r in merged.rows] == [r.name for r in runs[1].results]
    table = report.markdown_table(merged)
    header = table.splitlines()[0]
    assert header.index("CPU latency (ms)") < header.index("GPU latency (ms)")
    tnt = next(line for line in table.splitlines() if line.startswith("| TNT-Ti"))
    assert "93.38" in tnt and "failed[^" in tnt and "failed (GPU)" in tnt
    assert "CUDA out of memory" in table.split("\n\n", 1)[1]  # as a footnote
    pvt = next(line for line in table.splitlines() if line.startswith("| PVTv2-B0 "))
    assert "52.07" in pvt and "0.469" in pvt
    lines = report.protocol_lines(merged)
    assert any(line.startswith("CPU: batch 1") for line in lines)
    assert any(line.startswith("GPU: batch 1") and "SYNTHETIC GPU" in line for line in lines)


def test_merge_batch_sizes_labels_and_throughput():
    runs, _ = load_runs([CPU_B1, CPU_B4])
    merged = merge_runs(runs)
    assert [c.label for c in merged.columns] == ["CPU b1", "CPU b4"]
    table = report.build_table(merged)
    assert "CPU b4 throughput (img/s)" in table.headers
    # img/s at batch 1 too: the terminal shows it, so Markdown and HTML do (issue 14)
    assert "CPU b1 throughput (img/s)" in table.headers


def test_batch_sweep_inside_one_run_gets_a_column_per_batch():
    run = RunResult.load(CPU_B4)
    sweep = run.model_copy(deep=True)
    extra = [r.model_copy(update={"batch_size": 8}) for r in sweep.results]
    sweep.results = [x for pair in zip(sweep.results, extra) for x in pair]
    merged = merge_runs([sweep])
    assert [c.label for c in merged.columns] == ["CPU b4", "CPU b8"]
    assert len(merged.rows) == 3
    rows = list(csv.DictReader(io.StringIO(report.to_csv(sweep))))
    assert [r["column"] for r in rows[:2]] == ["CPU b4", "CPU b8"]


def test_merge_refuses_different_suites():
    other = RunResult.load(CPU_B1)
    other.suite = {**other.suite, "name": "another"}
    with pytest.raises(ResultsError, match="different suites"):
        merge_runs([RunResult.load(CPU_B1), other])


def test_csv_long_format_for_merged_runs():
    runs, _ = load_runs([CPU_B1, GPU])
    rows = list(csv.DictReader(io.StringIO(report.to_csv(runs))))
    assert len(rows) == sum(len(run.results) for run in runs)  # every row of every run
    assert {r["column"] for r in rows if r["status"] == "ok"} == {"CPU", "GPU"}
    resnet = [r for r in rows if r["name"] == "ResNet-18"]
    assert [r["device"] for r in resnet] == ["cpu", "cuda"]
    assert resnet[0]["params_matches_printed"] == "True"


def test_write_reports_default_is_fast_csv_and_md(tmp_path):
    written = report.write_reports(RunResult.load(CPU_B1), tmp_path)
    assert sorted(p.name for p in written) == ["results.csv", "results.md"]
    assert not (tmp_path / "plots").exists()


def test_write_reports_rejects_unknown_format(tmp_path):
    with pytest.raises(ResultsError, match="unknown report format 'pdf'"):
        report.write_reports(RunResult.load(CPU_B1), tmp_path, formats="md,pdf")


def test_report_command_merges(tmp_path):
    result = CliRunner().invoke(app, ["report", str(CPU_B1), str(GPU.parent / GPU.name),
                                      "--format", "md,csv", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert "GPU latency (ms)" in text and "Merged from 2 runs" in text
    bad = CliRunner().invoke(app, ["report", str(tmp_path / "missing.json")])
    assert bad.exit_code == 2


def test_printed_latency_next_to_measured_and_pending_rows():
    run = RunResult.load(CPU_B1)
    run.results[2].reference["latency_cpu_ms"] = 67.3
    run.results[2].printed_decimals["latency_cpu_ms"] = 1
    run.results[4].status, run.results[4].latency = "pending", None
    table = report.build_table(run)
    at = table.headers.index("CPU latency (ms)")
    assert table.headers[at + 1] == "paper (ms)"
    assert table.rows[2][at + 1].text == "67.3"
    assert table.rows[4][at].text == "pending" and table.rows[4][at].note is None
    assert any("latency as printed" in line for line in report.protocol_lines(run))


def test_markdown_grid_escapes_cells_and_aligns():
    rows = [["a|b", 3, 1.5, None], ["line\nbreak <b>", "**bold**[^1]", "&nbsp;x", "–"]]
    padded = markdown_grid(["name", "n", "x", "y"], rows, ["left", "right", "right", "left"])
    lines = padded.splitlines()
    assert len({len(line) for line in lines}) == 1  # every column padded to one width
    assert "a\\|b" in lines[2] and "1.50" in lines[2] and "–" in lines[2]
    assert "line break &lt;b&gt;" in lines[3] and "**bold**[^1]" in lines[3]
    assert "&nbsp;x" in lines[3]  # entities pass: the profile indents with them
    compact = markdown_grid(["name", "n"], [["a|b", 3]], ["left", "right"], padded=False)
    assert compact == "| name | n |\n|---|---:|\n| a\\|b | 3 |"


def test_csv_lines_carry_their_schema_and_run_and_pandas_reads_the_booleans(tmp_path):
    """Concatenated CSVs keep each line's provenance; True/False/blank columns load as
    pandas' nullable booleans through the documented dtypes, not as ``object``."""
    import pandas as pd

    from vitbench import CSV_DTYPES, RunResult, read_csv, to_frame
    from vitbench.report.csv import BOOLEAN_COLUMNS, CSV_SCHEMA, to_csv

    runs = [RunResult.load(DATA / name) for name in ("report_cpu_b1.json", "report_cpu_b4.json")]
    path = tmp_path / "both.csv"
    path.write_text(to_csv(runs[0]) + to_csv(runs[1]).split("\n", 1)[1], encoding="utf-8")
    frame = read_csv(path)
    assert set(frame["schema"]) == {CSV_SCHEMA}
    assert frame["run_id"].nunique() == 2 and frame["run_id"].iloc[0] == runs[0].id
    assert all(frame[c].dtype == "boolean" for c in BOOLEAN_COLUMNS)
    assert pd.read_csv(path, dtype=CSV_DTYPES)["params_within_tolerance"].dtype == "boolean"
    assert (to_frame(runs[0]).dtypes == read_csv(path).dtypes)[list(BOOLEAN_COLUMNS)].all()
    assert runs[0].id == RunResult.load(DATA / "report_cpu_b1.json").id  # stable for old files
