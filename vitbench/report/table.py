"""The presentation model every report renders: one :class:`Table` of :class:`Cell`, the cell
formatters, and the protocol sentences printed under every table.

Markdown (:mod:`vitbench.report.markdown`), HTML (:mod:`vitbench.report.html`) and the terminal
(:mod:`vitbench.cli.console`) render from here, so a number reads the same in all three. Pure
data: imports the merge model and the result records, nothing that renders.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence, Union

from vitbench.conventions import FLOP_CONVENTIONS
from vitbench.records import ModelResult, RunResult
from vitbench.report.flags import FLAGS, delta_mark, status_text, warning_kinds
from vitbench.report.merge import Column, MergedReport, MergedRow, merge_runs

#: What a report is rendered from: one run, several runs of one suite, or a merged report.
RunLike = Union[RunResult, MergedReport, Sequence[RunResult]]

#: Printed latency keys by device.
PRINTED_LATENCY: dict[str, str] = {"cpu": "latency_cpu_ms", "cuda": "latency_gpu_ms"}


def as_report(data: RunLike) -> MergedReport:
    """A :class:`MergedReport` from one run, several runs of a suite, or a report."""
    if isinstance(data, MergedReport):
        return data
    if isinstance(data, RunResult):
        return merge_runs([data])
    return merge_runs(list(data))


# --- cell formatting (shared by Markdown, HTML and the terminal) ---------------------------

def fmt(value: Optional[float], digits: int = 2) -> str:
    """``value`` at ``digits`` decimals; ``–`` for a missing value."""
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


def fmt_measured(value: Optional[float]) -> str:
    """A measured params (M) or GFLOPs value next to a printed one: three decimals below 100
    (0.566, 14.010), one from 100 up (140.0)."""
    if value is None:
        return "–"
    return fmt(value, 3 if abs(value) < 100 else 1)


def fmt_delta(row: ModelResult, key: str) -> str:
    """'+1.2% ✓': ✓ within tolerance, ✗ outside it (:data:`~vitbench.report.flags.FLAGS`)."""
    comparison = row.comparisons.get(key)
    if comparison is None or comparison.delta_pct is None:
        return ""
    return f"{comparison.delta_pct:+.1f}% {delta_mark(bool(comparison.within_tolerance))}"


def fmt_printed(row: ModelResult, key: str) -> str:
    """The printed value of ``key`` at its printed precision (``0.40`` stays ``0.40``)."""
    value = row.reference.get(key)
    if value is None:
        return ""
    decimals = row.printed_decimals.get(key)
    return f"{value:.{decimals}f}" if decimals is not None else f"{value:g}"


def matches_printed(row: ModelResult, key: str) -> bool:
    """The measured value rounds to the printed one at the printed precision."""
    comparison = row.comparisons.get(key)
    return bool(comparison is not None and comparison.matches_printed)


# --- the table model: one structure, rendered as Markdown and as HTML ----------------------

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
    for device, key in PRINTED_LATENCY.items():
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
        if any(r.cell(column) is not None and r.cell(column).relative is not None
               for r in report.rows):
            heads.append((f"{group} × ref", group, "× ref", True))
            column_fields.append((column, "relative"))
        if any(r.cell(column) is not None and r.cell(column).deployment for r in report.rows):
            heads.append((f"{group} max abs err", group, "max abs err", True))
            column_fields.append((column, "output_error"))
        if column.key in printed_latency_after:
            heads.append(("paper (ms)", group, "paper (ms)", True))
            column_fields.append((column, "printed_latency"))
        if any(r.cell(column) is not None and r.cell(column).throughput_img_s is not None
               for r in report.rows):
            heads.append((f"{group} throughput (img/s)", group, "img/s", True))
            column_fields.append((column, "throughput"))
        heads.append((f"{group} peak mem (MiB)", group, "mem (MiB)", True))
        column_fields.append((column, "memory"))
        if any(_energy_j_per_img(r.cell(column)) is not None
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
            Cell(fmt(row.gmacs, 3), row.gmacs, bold=matches_printed(row, "gflops"),
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
        key = PRINTED_LATENCY[column.device]
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
        latency = result.latency_summary
        if latency is None:
            return Cell("–", None)
        text = fmt_ms(latency.median)
        unstable = latency.unstable
        if unstable:
            text += f" {FLAGS['unstable'].mark}"
        extra = []
        if result.batch_size != column.batch_size:
            extra.append(f"batch {result.batch_size}")
        if tuple(result.image_size) != tuple(merged.static.image_size):
            extra.append(f"{result.image_size[0]}×{result.image_size[1]}")
        if extra:
            text += f" ({', '.join(extra)})"
        title = (f"median {fmt_ms(latency.median)} ms, p90 {fmt_ms(latency.p90)} "
                 f"ms, 95% CI {fmt_ms(latency.ci_low)}–{fmt_ms(latency.ci_high)}"
                 f" ms, n={latency.n}" + (f"; {FLAGS['unstable'].meaning}" if unstable else ""))
        if result.deployment is not None and not result.deployment.comparable:
            return Cell(text + " (output ≠ eager)", latency.median, kind="bad",
                        title=title + "; not comparable: the output differs from eager's")
        return Cell(text, latency.median, kind="warn" if unstable else "", title=title)
    if what == "relative":
        rel = result.relative
        if rel is None:
            return Cell("–", None)
        return Cell(fmt(rel.ratio, 3), rel.ratio, title=(
            f"{rel.ratio:.3f}× {rel.reference}, 95% CI {rel.ci_low:.3f}–{rel.ci_high:.3f}, "
            f"{rel.block_pairs} block pairs in {len(rel.process_ratios)} processes"))
    if what == "output_error":  # a deployment runtime's output against eager's
        d = result.deployment
        if d is None or not d.checked:
            return Cell("–", None)
        return Cell(f"{d.max_abs_error:.1e}" + ("" if d.comparable else " ✗"), d.max_abs_error,
                    kind="" if d.comparable else "bad", title=d.error_text())
    if what == "throughput":
        return Cell(fmt(result.throughput_img_s, 1), result.throughput_img_s)
    if what == "energy":
        energy = _energy_j_per_img(result)
        return Cell(fmt(energy, 3), energy)
    if what == "memory":
        return Cell(fmt(result.peak_memory_mib, 1), result.peak_memory_mib,
                    title=(result.memory.method if result.memory else None) or "")
    raise ValueError(what)


def _energy_j_per_img(result: ModelResult) -> Optional[float]:
    return result.telemetry.energy_j_per_img if result.telemetry else None


def _status_cell(table: Table, report: MergedReport, merged: MergedRow) -> Cell:
    results = merged.results or [merged.static]
    if merged.static.status == "unavailable" and not merged.results:
        number = table.footnote(_failure_text(merged.static))
        return Cell("unavailable", "unavailable", kind="dim", note=number)
    bad = [r for r in results if r.status != "ok"]
    if not bad:
        kinds = warning_kinds([merged.static, *merged.results])
        return Cell(status_text("ok", kinds), "ok", kind="warn" if kinds else "ok",
                    title="see the warnings below the table" if kinds else "")
    labels = {c.key: c.label for c in report.columns}
    parts = []
    for key, result in merged.cells.items():
        if result.status != "ok":
            parts.append(f"{result.status} ({labels.get(key, result.device)})"
                         if len(report.columns) > 1 else result.status)
    return Cell(", ".join(parts), "failed", kind="bad")


# --- the prose under every table -----------------------------------------------------------

def _recorded(values: Iterable[Any]) -> set:
    """The distinct values of a timing option over some rows, without the unset ones."""
    return set(values) - {None, False}


def _settings_text(column: Column, cells: Sequence[ModelResult] = ()) -> str:
    parts = [f"batch {column.batch_size}", column.dtype]
    if column.threads:
        parts.append(f"{column.threads} thread{'s' if column.threads != 1 else ''}")
    # Timing options as recorded on the rows (None on rows measured before they existed).
    if "throughput" in _recorded(c.mode for c in cells):
        calls = _recorded(c.latency.calls_per_sample for c in cells if c.latency)
        parts.append("throughput mode" + (f" ({'/'.join(map(str, sorted(calls)))} calls per "
                                          "sample)" if calls else ""))
    if _recorded(c.channels_last for c in cells):
        parts.append("channels_last")
    for mode in sorted(map(str, _recorded(c.compile for c in cells))):
        parts.append(f"torch.compile({mode})")
    if _recorded(c.autocast for c in cells):
        parts.append("autocast")
    timers = _recorded(c.latency.timer for c in cells if c.latency)
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
    lines.append("Params: all parameters, millions. Δ = (measured − printed) / printed, judged "
                 "against the row's tolerance (default 5 %, widened to the printed precision: "
                 "0.4 stands for 0.35–0.45).")
    timed = [r for r in ok if r.latency_summary]
    if timed:
        samples = min(r.latency_summary.n for r in timed)
        lines.append(
            "Latency: wall time per forward pass of one batch under torch.inference_mode(), "
            f"after warm-up; median of ≥{samples} samples. img/s = batch / median latency.")
        if any(key in r.static.reference for r in report.rows for key in PRINTED_LATENCY.values()):
            lines.append("paper (ms): latency as printed, measured on the paper's hardware "
                         "(see the source): a reference point, not a target.")
        for run_ in report.runs:
            ref = run_.reference
            if ref is not None and ref.latency is not None:
                lines.append(
                    f"× ref: latency as a multiple of {ref.model}'s ({ref.image_size[0]} px, batch "
                    f"{ref.batch_size}: median {fmt_ms(ref.latency.median)} ms in this run), "
                    "each row and the reference timed in alternating ~0.1 s blocks in fresh "
                    "processes after the first, so the machine's drift cancels; it moves far "
                    "less between runs than the absolute median, by up to its CI. Rank by it.")
        methods = sorted({r.memory.method for r in timed if r.memory and r.memory.method})
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
    """(row name, note) for rows with a note, and (row name, warning) once per row and text;
    the run's own warnings (a busy machine before the run, a report that failed) first."""
    notes = [(m.name, m.static.note) for m in report.rows if m.static.note]
    warnings: list[tuple[str, str]] = []
    for run in report.runs:
        label = "run" if len(report.runs) == 1 else f"run {run.created_utc}"
        warnings += [(label, w) for w in dict.fromkeys(run.environment.get("warnings") or [])]
    for merged in report.rows:
        seen = set()
        for result in (merged.static, *merged.results):
            for warning in result.warnings:
                if warning not in seen:
                    seen.add(warning)
                    warnings.append((merged.name, warning))
    return notes, warnings
