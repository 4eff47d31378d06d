"""Derived reports: CSV (a stable interface for CI), Markdown (a paper-style table), and on
request plots (:mod:`vitbench.report.plots`) and one self-contained HTML page (:mod:`vitbench.report.html`).

Everything is rendered from :class:`~vitbench.records.RunResult` objects (``results.json``),
never from another report. Several runs of one suite (a CPU run and a GPU run, batch 1 and
batch 8) merge into one table through :mod:`vitbench.report.merge`. The CSV columns are stable:
new columns are only ever appended to :data:`CSV_COLUMNS`.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

from vitbench.conventions import FLOP_CONVENTIONS
from vitbench.errors import ResultsError
from vitbench.report.merge import Column, MergedReport, MergedRow, merge_runs
from vitbench.files import write_atomic
from vitbench.records import ModelResult, RunResult
from vitbench.config.spec import REFERENCE_KEYS

#: The printed-value keys the CSV had when its columns were fixed. A reference key added to
#: the suite schema later is appended at the end of the CSV, never inserted in the middle.
_PAPER_KEYS_V1: tuple[str, ...] = (
    "params_m", "gflops", "top1", "latency_cpu_ms", "latency_gpu_ms", "throughput_cpu_img_s",
    "throughput_gpu_img_s", "fps", "gpu_memory_mb", "miou")

#: The CSV header, in order. Stable: CI jobs parse these names; only ever append.
CSV_COLUMNS: tuple[str, ...] = (
    "name", "model", "image_size", "batch_size", "device", "dtype", "threads", "status", "error",
    "params_m", "gflops", "flops_convention", "gflops_counter", "gflops_crosscheck",
    "counters_agree", "uncounted_ops", "gap_ops",
    "latency_ms_median", "latency_ms_p90", "latency_ms_p99", "latency_ms_min", "latency_ms_mean",
    "latency_ms_ci_low", "latency_ms_ci_high", "latency_samples", "latency_unstable",
    "first_call_ms", "throughput_img_s", "peak_memory_mb",
    *(f"paper_{key}" for key in _PAPER_KEYS_V1),
    "delta_params_pct", "delta_gflops_pct", "params_within_tolerance", "gflops_within_tolerance",
    "note", "source",
    # appended in report v2:
    "params_matches_printed", "gflops_matches_printed", "column", "run_created_utc",
    # appended with the timing protocol (v3):
    "mode", "channels_last", "compile", "autocast", "calls_per_sample", "stopped_by",
    "latency_ms_iqr", "latency_ms_ci_halfwidth_pct", "peak_memory_reserved_mb",
    "foreign_cpu_pct", "contended", "gpu_power_w", "energy_j_per_img", "gpu_util_pct",
    "gpu_temp_c",
    "minor_faults_per_call", "latency_window_spread",
    *(f"paper_{key}" for key in REFERENCE_KEYS if key not in _PAPER_KEYS_V1),
    # appended with multi-process timing (v4):
    "latency_processes", "latency_process_spread",
)

#: What :func:`write_reports` writes unless asked for more (cheap enough to redo every row).
DEFAULT_FORMATS: tuple[str, ...] = ("csv", "md")
#: Every format :func:`write_reports` knows.
ALL_FORMATS: tuple[str, ...] = ("md", "csv", "html", "png", "svg")

RunLike = Union[RunResult, MergedReport, Sequence[RunResult]]


def as_report(data: RunLike) -> MergedReport:
    """A :class:`MergedReport` from one run, several runs of a suite, or a report."""
    if isinstance(data, MergedReport):
        return data
    if isinstance(data, RunResult):
        return merge_runs([data])
    return merge_runs(list(data))


def _round(value: Optional[float], digits: int) -> Optional[float]:
    return None if value is None else round(value, digits)


def _latency(row: ModelResult) -> dict[str, Any]:
    return row.latency_ms or {}


def flat_row(row: ModelResult, column: str = "", run_created_utc: str = "") -> dict[str, Any]:
    """One result as a flat dict with exactly :data:`CSV_COLUMNS` as keys."""
    latency = _latency(row)
    params_cmp = row.comparisons.get("params_m")
    gflops_cmp = row.comparisons.get("gflops")
    flat: dict[str, Any] = {
        "name": row.name, "model": row.model,
        "image_size": f"{row.image_size[0]}x{row.image_size[1]}",
        "batch_size": row.batch_size, "device": row.device, "dtype": row.dtype,
        "threads": row.threads, "status": row.status, "error": row.error,
        "params_m": _round(row.params_m, 4), "gflops": _round(row.gflops, 4),
        "flops_convention": row.flops_convention, "gflops_counter": row.gflops_counter,
        "gflops_crosscheck": _round(row.gflops_crosscheck, 4),
        "counters_agree": row.counters_agree,
        "uncounted_ops": ";".join(f"{op}:{n}" for op, n in row.uncounted_ops.items()),
        "gap_ops": ";".join(row.gap_ops),
        "latency_ms_median": _round(latency.get("median"), 4),
        "latency_ms_p90": _round(latency.get("p90"), 4),
        "latency_ms_p99": _round(latency.get("p99"), 4),
        "latency_ms_min": _round(latency.get("min"), 4),
        "latency_ms_mean": _round(latency.get("mean"), 4),
        "latency_ms_ci_low": _round(latency.get("ci_low"), 4),
        "latency_ms_ci_high": _round(latency.get("ci_high"), 4),
        "latency_samples": latency.get("n"),
        "latency_unstable": latency.get("unstable"),
        "first_call_ms": _round(row.first_call_ms, 4),
        "throughput_img_s": _round(row.throughput_img_s, 3),
        "peak_memory_mb": _round(row.peak_memory_mb, 1),
        **{f"paper_{key}": row.reference.get(key) for key in REFERENCE_KEYS},
        **{f"paper_{key}": row.reference.get(key) for key in _PAPER_KEYS_V1},
        "delta_params_pct": _round(params_cmp.delta_pct if params_cmp else None, 2),
        "delta_gflops_pct": _round(gflops_cmp.delta_pct if gflops_cmp else None, 2),
        "params_within_tolerance": params_cmp.within_tolerance if params_cmp else None,
        "gflops_within_tolerance": gflops_cmp.within_tolerance if gflops_cmp else None,
        "note": row.note, "source": row.source,
        "params_matches_printed": params_cmp.matches_printed if params_cmp else None,
        "gflops_matches_printed": gflops_cmp.matches_printed if gflops_cmp else None,
        "column": column, "run_created_utc": run_created_utc,
        **{key: getattr(row, key, None) for key in (
            "mode", "channels_last", "compile", "autocast", "calls_per_sample", "stopped_by",
            "contended", "gpu_util_pct", "gpu_temp_c")},
        "latency_ms_iqr": _round(latency.get("iqr"), 4),
        "latency_ms_ci_halfwidth_pct": _round(latency.get("ci_halfwidth_pct"), 3),
        "peak_memory_reserved_mb": _round(getattr(row, "peak_memory_reserved_mb", None), 1),
        "foreign_cpu_pct": _round(getattr(row, "foreign_cpu_pct", None), 1),
        "gpu_power_w": _round(getattr(row, "gpu_power_w", None), 2),
        "energy_j_per_img": _round(getattr(row, "energy_j_per_img", None), 5),
        "minor_faults_per_call": _round(getattr(row, "minor_faults_per_call", None), 1),
        "latency_window_spread": _round(latency.get("window_spread"), 3),
        "latency_processes": latency.get("processes", 1 if latency else None),
        "latency_process_spread": _round(latency.get("process_spread"), 3),
    }
    return {column_name: flat.get(column_name) for column_name in CSV_COLUMNS}


def _flat_rows(data: RunLike) -> list[dict[str, Any]]:
    """Long format: every row of every run, run by run, labelled with its table column."""
    report = as_report(data)
    labels = {c.key: c.label for c in report.columns}
    out = []
    for index, run in enumerate(report.runs):
        for row in run.results:
            label = "" if row.status == "unavailable" else labels.get(
                (index, row.device, row.batch_size), labels.get((index, row.device, None), ""))
            out.append(flat_row(row, label, run.created_utc))
    return out


def to_csv(run: RunLike) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for flat in _flat_rows(run):
        writer.writerow({k: ("" if v is None else v) for k, v in flat.items()})
    return buffer.getvalue()


def to_frame(run: RunLike):
    """The CSV view as a pandas DataFrame (for notebooks and further analysis)."""
    import pandas as pd

    return pd.DataFrame(_flat_rows(run), columns=list(CSV_COLUMNS))


# --- cell formatting (shared by Markdown, HTML and the terminal) ---------------------------

def fmt(value: Optional[float], digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def fmt_ms(value: Optional[float]) -> str:
    """Milliseconds with three significant-ish digits: 112.3, 45.22, 0.463."""
    if value is None:
        return "–"
    if value >= 100:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def fmt_delta(row: ModelResult, key: str) -> str:
    """'+1.2% ✓': ✓ within tolerance, ✗ outside it."""
    comparison = row.comparisons.get(key)
    if comparison is None or comparison.delta_pct is None:
        return ""
    mark = "✓" if comparison.within_tolerance else "✗"
    return f"{comparison.delta_pct:+.1f}% {mark}"


def fmt_printed(row: ModelResult, key: str) -> str:
    value = row.reference.get(key)
    if value is None:
        return ""
    decimals = row.printed_decimals.get(key)
    return f"{value:.{decimals}f}" if decimals is not None else f"{value:g}"


def matches_printed(row: ModelResult, key: str) -> bool:
    comparison = row.comparisons.get(key)
    return bool(comparison is not None and comparison.matches_printed)


def status_text(row: ModelResult) -> str:
    if row.status == "ok":
        return "ok" + (" ⚠" if row.warnings else "")
    return f"{row.status}: {row.error}" if row.error else row.status


# --- the table model: one structure, rendered as Markdown and as HTML ----------------------

#: Printed latency/throughput keys by device.
_PRINTED_LATENCY = {"cpu": "latency_cpu_ms", "cuda": "latency_gpu_ms"}


class Cell:
    """A table cell: display text, a sort key, and flags the renderers style."""

    __slots__ = ("text", "sort", "bold", "title", "kind", "note")

    def __init__(self, text: str, sort: Any = None, *, bold: bool = False, title: str = "",
                 kind: str = "", note: Optional[int] = None):
        self.text, self.sort, self.bold, self.title, self.kind, self.note = (
            text, sort, bold, title, kind, note)


class Table:
    """Headers (with units), body rows of :class:`Cell`, and numbered footnotes."""

    def __init__(self) -> None:
        self.headers: list[str] = []
        self.groups: list[str] = []
        self.subheaders: list[str] = []
        self.numeric: list[bool] = []
        self.rows: list[list[Cell]] = []
        self.footnotes: dict[str, int] = {}

    def footnote(self, text: str) -> int:
        return self.footnotes.setdefault(text, len(self.footnotes) + 1)


def _any_printed(report: MergedReport, key: str) -> bool:
    return any(key in r.static.reference for r in report.rows)


def _failure_text(result: ModelResult) -> str:
    return result.error or result.status


def build_table(data: RunLike) -> Table:
    """The paper-style table: suite order and labels, measured next to printed, one latency
    column group per merged setting, failures with their reasons as footnotes."""
    report = as_report(data)
    table = Table()
    show_top1 = _any_printed(report, "top1")
    printed_latency_after: dict[tuple, str] = {}
    for device, key in _PRINTED_LATENCY.items():
        if _any_printed(report, key):
            first = next((c for c in report.columns if c.device == device), None)
            if first is not None:
                printed_latency_after[first.key] = key
    show_input = True
    # (flat header, group, sub-header, numeric): Markdown uses the flat header, HTML the
    # two-row form (group over sub-headers).
    heads: list[tuple[str, str, str, bool]] = [
        ("Model", "", "Model", False), ("Input (px)", "", "Input (px)", True),
        ("Params (M)", "Params (M)", "measured", True), ("paper", "Params (M)", "paper", True),
        ("Δ", "Params (M)", "Δ", True), ("GFLOPs", "GFLOPs", "measured", True),
        ("paper", "GFLOPs", "paper", True), ("Δ", "GFLOPs", "Δ", True)]
    if show_top1:
        heads.append(("Top-1 (%) paper", "Top-1 (%)", "paper", True))
    column_fields: list[tuple[Column, str]] = []
    for column in report.columns:
        group = column.label
        heads.append((f"{group} latency (ms)", group, "latency (ms)", True))
        column_fields.append((column, "latency"))
        if column.key in printed_latency_after:
            heads.append(("paper (ms)", group, "paper (ms)", True))
            column_fields.append((column, "printed_latency"))
        if column.batch_size > 1 or any(
                (r.cell(column) and r.cell(column).batch_size > 1) for r in report.rows):
            heads.append((f"{group} throughput (img/s)", group, "img/s", True))
            column_fields.append((column, "throughput"))
        heads.append((f"{group} peak mem (MB)", group, "mem (MB)", True))
        column_fields.append((column, "memory"))
        if any(getattr(r.cell(column), "energy_j_per_img", None) is not None
               for r in report.rows if r.cell(column) is not None):
            heads.append((f"{group} energy (J/img)", group, "J/img", True))
            column_fields.append((column, "energy"))
    heads.append(("Status", "", "Status", False))
    table.headers = [h[0] for h in heads]
    table.groups = [h[1] for h in heads]
    table.subheaders = [h[2] for h in heads]
    table.numeric = [h[3] for h in heads]

    for merged in report.rows:
        row = merged.static
        h, w = row.image_size
        size = f"{h}" if h == w else f"{h}×{w}"
        cells = [
            Cell(merged.name, merged.name, kind="name" + (" dim" if row.status == "unavailable"
                                                         else "")),
            Cell(size if show_input else "", h * w),
            Cell(fmt(row.params_m), row.params_m, bold=matches_printed(row, "params_m"),
                 title="rounds to the printed value" if matches_printed(row, "params_m") else ""),
            Cell(fmt_printed(row, "params_m"), row.reference.get("params_m"), kind="paper"),
            _delta_cell(row, "params_m"),
            Cell(fmt(row.gflops, 3), row.gflops, bold=matches_printed(row, "gflops"),
                 title="rounds to the printed value" if matches_printed(row, "gflops") else ""),
            Cell(fmt_printed(row, "gflops"), row.reference.get("gflops"), kind="paper"),
            _delta_cell(row, "gflops"),
        ]
        if show_top1:
            cells.append(Cell(fmt_printed(row, "top1"), row.reference.get("top1"), kind="paper"))
        for column, what in column_fields:
            cells.append(_column_cell(table, merged, column, what))
        cells.append(_status_cell(table, report, merged))
        table.rows.append(cells)
    return table


def _delta_cell(row: ModelResult, key: str) -> Cell:
    comparison = row.comparisons.get(key)
    if comparison is None or comparison.delta_pct is None:
        return Cell("", None)
    kind = "ok" if comparison.within_tolerance else "bad"
    return Cell(fmt_delta(row, key), comparison.delta_pct, kind=kind,
                title=f"tolerance ±{comparison.tolerance_pct:.1f}%")


def _column_cell(table: Table, merged: MergedRow, column: Column, what: str) -> Cell:
    result = merged.cell(column)
    if what == "printed_latency":
        key = _PRINTED_LATENCY[column.device]
        return Cell(fmt_printed(merged.static, key), merged.static.reference.get(key),
                    kind="paper")
    if result is None:
        return Cell("–", None)
    if result.status != "ok":
        if what != "latency":
            return Cell("", None)
        if not result.error:  # pending: nothing to explain yet
            return Cell(result.status, None, kind="dim")
        number = table.footnote(_failure_text(result))
        return Cell(result.status, None, kind="bad", note=number)
    if what == "latency":
        latency = _latency(result)
        if not latency:
            return Cell("–", None)
        text = fmt_ms(latency.get("median"))
        unstable = bool(latency.get("unstable"))
        if unstable:
            text += " ⚠"
        extra = []
        if result.batch_size != column.batch_size:
            extra.append(f"batch {result.batch_size}")
        if tuple(result.image_size) != tuple(merged.static.image_size):
            extra.append(f"{result.image_size[0]}×{result.image_size[1]}")
        if extra:
            text += f" ({', '.join(extra)})"
        title = (f"median {fmt_ms(latency.get('median'))} ms, p90 {fmt_ms(latency.get('p90'))} "
                 f"ms, 95% CI {fmt_ms(latency.get('ci_low'))}–{fmt_ms(latency.get('ci_high'))}"
                 f" ms, n={latency.get('n')}")
        return Cell(text, latency.get("median"), kind="warn" if unstable else "", title=title)
    if what == "throughput":
        return Cell(fmt(result.throughput_img_s, 1), result.throughput_img_s)
    if what == "energy":
        energy = getattr(result, "energy_j_per_img", None)
        return Cell(fmt(energy, 3), energy)
    if what == "memory":
        return Cell(fmt(result.peak_memory_mb, 1), result.peak_memory_mb,
                    title=result.memory_method or "")
    raise ValueError(what)


def _status_cell(table: Table, report: MergedReport, merged: MergedRow) -> Cell:
    results = merged.results or [merged.static]
    if merged.static.status == "unavailable" and not merged.results:
        number = table.footnote(_failure_text(merged.static))
        return Cell("unavailable", "unavailable", kind="dim", note=number)
    bad = [r for r in results if r.status != "ok"]
    if not bad:
        warned = any(r.warnings for r in results) or bool(merged.static.warnings)
        return Cell("ok ⚠" if warned else "ok", "ok", kind="warn" if warned else "ok",
                    title="see warnings below the table" if warned else "")
    labels = {c.key: c.label for c in report.columns}
    parts = []
    for key, result in merged.cells.items():
        if result.status != "ok":
            parts.append(f"{result.status} ({labels.get(key, result.device)})"
                         if len(report.columns) > 1 else result.status)
    return Cell(", ".join(parts), "failed", kind="bad")


# --- Markdown ------------------------------------------------------------------------------

def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(run: RunLike) -> str:
    """The table as GitHub Markdown; failure reasons become footnotes ``[^n]``."""
    from tabulate import tabulate

    table = build_table(run)
    body = []
    for cells in table.rows:
        line = []
        for cell in cells:
            text = _md_escape(cell.text)
            if cell.bold and text:
                text = f"**{text}**"
            if cell.note is not None:
                text += f"[^{cell.note}]"
            line.append(text)
        body.append(line)
    align = ["right" if numeric else "left" for numeric in table.numeric]
    text = tabulate(body, headers=table.headers, tablefmt="github", disable_numparse=True,
                    colalign=align)
    if table.footnotes:
        text += "\n\n" + "\n".join(f"[^{n}]: {_md_escape(reason)}"
                                   for reason, n in table.footnotes.items())
    return text


def _settings_text(column: Column, cells: Sequence[ModelResult] = ()) -> str:
    parts = [f"batch {column.batch_size}", column.dtype]
    if column.threads:
        parts.append(f"{column.threads} thread{'s' if column.threads != 1 else ''}")
    # Timing options other code may record on a row (read defensively: older results lack them).
    def values(attr: str) -> set:
        return {getattr(c, attr, None) for c in cells} - {None, False}
    if "throughput" in values("mode"):
        calls = values("calls_per_sample")
        parts.append("throughput mode" + (f" ({'/'.join(map(str, sorted(calls)))} calls per "
                                          "sample)" if calls else ""))
    if values("channels_last"):
        parts.append("channels_last")
    for mode in sorted(map(str, values("compile"))):
        parts.append(f"torch.compile({mode})")
    if values("autocast"):
        parts.append("autocast")
    timers = values("timer")
    if timers:
        parts.append("timer: " + ", ".join(sorted(map(str, timers))))
    return ", ".join(parts)


def _environment_text(run: RunResult, device: str) -> str:
    env = run.environment
    if device == "cuda":
        hardware = f"GPU {env.get('gpu') or env.get('cuda_device') or '?'}"
        extra = []
        for key, label in (("cuda", "CUDA"), ("cudnn", "cuDNN"), ("gpu_driver", "driver")):
            if env.get(key):
                extra.append(f"{label} {env[key]}")
        hardware += (f" ({', '.join(extra)})" if extra else "") + f", host CPU {env.get('cpu', '?')}"
    else:
        hardware = f"{env.get('cpu', '?')} ({env.get('cpu_count_usable', '?')} usable CPUs)"
        if env.get("gpu"):
            hardware += f", GPU {env['gpu']}"
    return (f"{hardware}; torch {env.get('torch')}, timm {env.get('timm')}, fvcore "
            f"{env.get('fvcore')}, vitbench {env.get('vitbench')}; load average "
            f"{env.get('load_average_1m_before')} before, "
            f"{env.get('load_average_1m_after', '–')} after")


def protocol_lines(run: RunLike) -> list[str]:
    """What was measured how, in sentences: printed under every table."""
    report = as_report(run)
    all_results = [r for m in report.rows for r in (m.static, *m.results)]
    ok = [r for r in all_results if r.status == "ok"] or all_results
    lines = []
    for convention in sorted({r.flops_convention for r in ok}):
        lines.append(f"GFLOPs ({convention}): {FLOP_CONVENTIONS.get(convention, convention)}.")
    lines.append("Params: all parameters, millions. Δ = (measured − printed) / printed; ✓ within "
                 "tolerance (default 5 %, widened to the printed precision: 0.4 stands for "
                 "0.35–0.45), ✗ outside it.")
    timed = [r for r in ok if r.latency_ms]
    if timed:
        samples = min(r.latency_ms.get("n") or 0 for r in timed)
        lines.append(
            "Latency: wall time per forward pass of one batch under torch.inference_mode(), "
            f"after warm-up; median of ≥{samples} samples; ⚠ = unstable (95 % CI of the median "
            "wider than ±5 %). Throughput = batch / median latency.")
        if any(key in r.static.reference for r in report.rows for key in _PRINTED_LATENCY.values()):
            lines.append("paper (ms): latency as printed, measured on the paper's hardware "
                         "(see the source): a reference point, not a target.")
        methods = sorted({r.memory_method for r in timed if r.memory_method})
        if methods:
            lines.append("Peak memory: " + "; ".join(methods) + ".")
    if report.columns:
        for column in report.columns:
            run_ = report.runs[column.run_index]
            prefix = "Environment" if len(report.columns) == 1 else f"{column.label}"
            cells = [r.cell(column) for r in report.rows if r.cell(column) is not None]
            lines.append(f"{prefix}: {_settings_text(column, cells)}; "
                         f"{_environment_text(run_, column.device)}"
                         + (f"; run {run_.created_utc}" if len(report.runs) > 1 else "") + ".")
    else:
        for run_ in report.runs:
            lines.append(f"Environment: {_environment_text(run_, 'cpu')}.")
    return lines


def notes_and_warnings(report: MergedReport) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(row name, note) for rows with a note, and (row name, warning) once per row and text."""
    notes = [(m.name, m.static.note) for m in report.rows if m.static.note]
    warnings: list[tuple[str, str]] = []
    for merged in report.rows:
        seen = set()
        for result in (merged.static, *merged.results):
            for warning in result.warnings:
                if warning not in seen:
                    seen.add(warning)
                    warnings.append((merged.name, warning))
    return notes, warnings


def to_markdown(run: RunLike, plots: Sequence[tuple[str, str]] = (),
                skipped_plots: Sequence[tuple[str, str]] = ()) -> str:
    """The Markdown report; ``plots`` are (title, relative image path) pairs to embed."""
    report = as_report(run)
    suite = report.suite
    parts = [f"# {report.title}", ""]
    if suite.get("source"):
        parts += [f"Printed values from {suite['source']}.", ""]
    parts += [markdown_table(report), ""]
    parts += ["- **Bold**: the measured value rounds to the printed one at the printed "
              "precision (it matches the paper)."]
    parts += [f"- {line}" for line in protocol_lines(report)]
    notes, warnings = notes_and_warnings(report)
    if notes:
        parts += ["", "Notes:", ""] + [f"- **{name}**: {_md_escape(note)}" for name, note in notes]
    if warnings:
        parts += ["", "Warnings:", ""] + [f"- **{name}**: {_md_escape(w)}" for name, w in warnings]
    if any(r.comparisons for run_ in report.runs for r in run_.results):
        from vitbench.report.agreement import render_agreement, summarize_agreement

        parts += [""] + render_agreement(summarize_agreement(report.runs[0]))
    if plots or skipped_plots:
        parts += ["", "## Plots", ""]
        for title, path in plots:
            parts += [f"![{title}]({path})", ""]
        for name, reason in skipped_plots:
            parts += [f"- {name}: not drawn ({reason})."]
        if skipped_plots:
            parts.append("")
    parts.append("")
    if len(report.runs) == 1:
        run_ = report.runs[0]
        parts += [f"Run {run_.created_utc} → {run_.finished_utc or 'unfinished'}; schema "
                  f"{run_.schema_}; canonical data in results.json.", ""]
    else:
        listed = "; ".join(f"{r.created_utc} → {r.finished_utc or 'unfinished'}"
                           for r in report.runs)
        parts += [f"Merged from {len(report.runs)} runs ({listed}); schema "
                  f"{report.runs[0].schema_}; canonical data in each run's results.json.", ""]
    return "\n".join(parts)


# --- writing -------------------------------------------------------------------------------

def parse_formats(value: str | Iterable[str]) -> tuple[str, ...]:
    """'md,csv,png' → ('md', 'csv', 'png'); 'all' → every format; unknown → ResultsError."""
    items = value.split(",") if isinstance(value, str) else list(value)
    formats: list[str] = []
    for item in items:
        item = item.strip().lower().lstrip(".")
        if not item:
            continue
        if item == "all":
            formats += [f for f in ALL_FORMATS if f not in formats]
            continue
        if item == "markdown":
            item = "md"
        if item not in ALL_FORMATS:
            raise ResultsError(f"unknown report format {item!r}; known: {', '.join(ALL_FORMATS)}, all")
        if item not in formats:
            formats.append(item)
    return tuple(formats)


def write_reports(run: RunLike, out_dir: str | Path,
                  formats: str | Iterable[str] = DEFAULT_FORMATS) -> list[Path]:
    """Write the reports of ``run`` (one run, several runs of a suite, or a merged report).

    ``results.csv`` and ``results.md`` by default (fast: the runner calls this after every
    row); ``png``/``svg`` add ``plots/*.png|svg`` and ``html`` adds ``report.html`` with the
    table and plots embedded. Returns the paths written.
    """
    formats = parse_formats(formats)
    report = as_report(run)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    plot_links: list[tuple[str, str]] = []
    skipped: list[tuple[str, str]] = []
    svgs: dict[str, str] = {}
    if any(f in formats for f in ("png", "svg", "html")):
        from vitbench.report import plots as _plots

        drawn, skipped = _plots.draw_all(report)
        plot_dir = out_dir / "plots"
        for plot in drawn:
            if "png" in formats or "svg" in formats:
                plot_dir.mkdir(exist_ok=True)
            rendered: dict[str, bytes] = {}
            for ext in ("png", "svg"):
                if ext in formats:
                    path = plot_dir / f"{plot.name}.{ext}"
                    rendered[ext] = _plots.render(plot.figure, ext)
                    write_atomic(path, rendered[ext])
                    written.append(path)
            if "png" in formats:
                plot_links.append((plot.title, f"plots/{plot.name}.png"))
            elif "svg" in formats:
                plot_links.append((plot.title, f"plots/{plot.name}.svg"))
            if "html" in formats:
                svgs[plot.name] = (rendered.get("svg") or _plots.render(plot.figure, "svg")
                                   ).decode("utf-8")
            _plots.close(plot.figure)
        if "html" in formats:
            from vitbench.report.html import to_html

            path = out_dir / "report.html"
            write_atomic(path, to_html(report, [(p.name, p.title, p.caption, svgs[p.name])
                                                 for p in drawn], skipped))
            written.append(path)
    if "csv" in formats:
        write_atomic(out_dir / "results.csv", to_csv(report))
        written.append(out_dir / "results.csv")
    if "md" in formats:
        write_atomic(out_dir / "results.md", to_markdown(report, plot_links,
                                                          skipped if plot_links else ()))
        written.append(out_dir / "results.md")
    return written
