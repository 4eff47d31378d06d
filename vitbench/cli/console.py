"""Rich rendering for the terminal: the results table and the progress display.

Tables go to stdout (pipe-able); progress, warnings and errors go to stderr. Text from a
suite or a results file (names, notes, reasons, paths) never reaches Rich as markup: it is
passed as :class:`~rich.text.Text` or through ``escape``, so ``[/x]`` is shown, not parsed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                           TimeElapsedColumn)
from rich.table import Table
from rich.text import Text

from vitbench.cli.scale import RunTally
from vitbench.records import ModelResult, RunResult
from vitbench.report.agreement import agreement_sentence, summarize_agreement
from vitbench.report.flags import FLAGS, delta_mark, legend_text, status_text, warning_kinds
from vitbench.report.table import fmt, fmt_printed, protocol_lines


def _console(stderr: bool = False) -> Console:
    probe = Console(stderr=stderr)
    # Pipes and CI logs get a wide table instead of an 80-column fold.
    return probe if probe.is_terminal else Console(stderr=stderr, width=160)


out = _console()
err = _console(stderr=True)

_STATUS_STYLE = {"ok": "green", "failed": "red", "timeout": "red", "unavailable": "dim",
                 "interrupted": "yellow", "pending": "dim"}


def _delta(row: ModelResult, key: str) -> Text:
    comparison = row.comparisons.get(key)
    if comparison is None or comparison.delta_pct is None:
        return Text("")
    style = "green" if comparison.within_tolerance else "bold red"
    mark = delta_mark(bool(comparison.within_tolerance))
    return Text(f"{comparison.delta_pct:+.1f}% {mark}", style=style)


def results_table(run: RunResult) -> Table:
    """Measured next to printed, with the difference; failures and gaps in plain words."""
    suite = run.suite
    devices = sorted({r.device for r in run.results if r.status == "ok"}) or ["cpu"]
    title = suite.get("title") or suite.get("name")
    # Text, not str: a title or source is shown as written, brackets and all (never markup).
    table = Table(title=Text(str(title)) if title else None, title_style="bold",
                  caption=Text(f"printed values: {suite['source']}") if suite.get("source")
                  else None, header_style="bold", show_lines=False, expand=False)
    table.add_column("Model", no_wrap=True)
    table.add_column("Input", justify="right")
    table.add_column("Params (M)", justify="right")
    table.add_column("paper", justify="right", style="cyan")
    table.add_column("Δ", justify="right")
    table.add_column("GFLOPs", justify="right")
    table.add_column("paper", justify="right", style="cyan")
    table.add_column("Δ", justify="right")
    table.add_column(f"{'/'.join(d.upper() for d in devices)} ms\nmedian \\[p90]", justify="right")
    relative = any(r.relative is not None for r in run.results)
    if relative:  # the figure that repeats between runs (vitbench.run.reference)
        table.add_column("× ref\n±95% CI", justify="right")
    table.add_column("img/s", justify="right")
    table.add_column("Mem\n(MiB)", justify="right")
    table.add_column("Status", overflow="fold", max_width=40)
    footnotes: dict[str, int] = {}
    for row in run.results:
        latency = row.latency_summary
        lat = Text("–")
        if latency:
            lat = Text(f"{latency.median:.1f} [{latency.p90:.1f}]",
                       style="yellow" if latency.unstable else "")
            if latency.unstable:
                lat.append(f" {FLAGS['unstable'].mark}", style="yellow")
        size = f"{row.image_size[0]}" if row.image_size[0] == row.image_size[1] else \
            f"{row.image_size[0]}×{row.image_size[1]}"
        if row.batch_size != 1:
            size += f" ×{row.batch_size}"
        kinds = warning_kinds([row])
        status = Text(status_text(row.status, kinds),
                      style="yellow" if row.status == "ok" and kinds
                      else _STATUS_STYLE.get(row.status, ""))
        if row.error:
            number = footnotes.setdefault(row.error, len(footnotes) + 1)
            status.append(f" [{number}]")
        table.add_row(
            Text(row.name + ("" if row.runtime is None else f" · {row.runtime}"),
                 style="dim" if row.status == "unavailable" else ""), size,
            fmt(row.params_m), fmt_printed(row, "params_m"), _delta(row, "params_m"),
            fmt(row.gmacs, 3), fmt_printed(row, "gflops"), _delta(row, "gflops"),
            lat, *([_relative(row)] if relative else []), fmt(row.throughput_img_s, 1),
            fmt(row.peak_memory_mib, 0), status,
        )
    table.footnotes = footnotes  # type: ignore[attr-defined]
    return table


def _relative(row: ModelResult) -> Text:
    rel = row.relative
    if rel is None:
        return Text("–")
    return Text(f"{rel.ratio:.3f} ±{rel.ci_halfwidth_pct:.0f}%")


def runtime_lines(run: RunResult) -> list[str]:
    """One line per row a deployment runtime ran: its output against eager's, the export."""
    return [f"{row.name} · {row.deployment.check_line()}" for row in run.results
            if row.deployment is not None and row.deployment.checked]


def print_results(run: RunResult, out_dir: Optional[str] = None) -> None:
    table = results_table(run)
    out.print(table)
    for reason, number in table.footnotes.items():  # type: ignore[attr-defined]
        out.print(escape(f"[{number}] {reason}"), highlight=False, style="dim")
    out.print(f"• {escape(legend_text())}", style="dim", highlight=False)
    for line in protocol_lines(run):
        out.print(f"• {escape(line)}", style="dim", highlight=False)
    agreement = summarize_agreement(run)
    sentence = agreement_sentence(agreement)
    if sentence:
        out.print(sentence, style="bold" if agreement.misses else "bold green", highlight=False)
    for miss in agreement.misses:
        quantity = "params" if miss.quantity == "params_m" else "GFLOPs"
        reason = (miss.note, "") if miss.note else ("no note explains it", "red")
        out.print(Text.assemble(
            "  ", ("outside", "red"), f" {miss.name} {quantity}: printed {miss.printed:g}, "
            f"measured {miss.measured:.3f} ({miss.delta_pct:+.1f}%, allowed "
            f"±{miss.tolerance_pct:.1f}%) — ", reason), highlight=False)
    for line in runtime_lines(run):
        out.print(f"• {escape(line)}", style="dim", highlight=False)
    for row in run.results:
        for warning in row.warnings:
            out.print(Text.assemble(("warning", "yellow"), f" {row.name}: {warning}"),
                      highlight=False)
    if out_dir:
        names = [n for n in ("results.json", "results.csv", "results.md", "report.html", "plots/")
                 if (Path(out_dir) / n.rstrip("/")).exists()]
        out.print(Text.assemble("Results: ", (str(out_dir), "bold"), f" ({', '.join(names)})"),
                  highlight=False)


def make_progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[tally]}"),
                    TextColumn("{task.fields[detail]}"),
                    console=err, transient=False)


def stderr_is_terminal() -> bool:
    """True only for a real terminal: ``FORCE_COLOR`` (common in CI) makes Rich treat a pipe as
    one and draw redraw frames into the log, so the file descriptor itself is asked."""
    try:
        return os.isatty(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):
        return False


class LineLog:
    """The progress display for logs and pipes: one plain line per stage and per finished row
    (``[3/14] PVTv2-B0: ok, median 56.1 ms (41 s)``), flushed as it happens, no markup; after
    each measured row of a run of several, the tally (``[3/14] 3 done, 1 failed, 11 left,
    about 6 min to go``)."""

    def __init__(self, title: str, rows: int, stream=None, measured: Optional[int] = None,
                 extra: int = 0) -> None:
        self.title, self.rows, self.stream = title, rows, stream or sys.stderr
        self.tally = RunTally(rows, measured, extra)

    def __enter__(self) -> "LineLog":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def _line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def __call__(self, kind: str, index: int, row, detail: str) -> None:
        where = f"[{index + 1}/{self.rows}] {row.name}"
        if kind == "start":
            self.tally.start(index)
            self._line(f"{where}: start ({row.model or 'no model'})")
        elif kind == "stage":
            self._line(f"{self.title}: {detail}" if detail.startswith("writing")
                       else f"{where}: {detail}")
        elif kind == "done":
            parts = [detail]
            latency = row.latency_summary
            if latency is not None:
                parts.append(f"median {latency.median:.1f} ms")
            if row.error:
                parts.append(row.error.splitlines()[0][:200])
            elapsed = self.tally.finish(index, detail)
            took = f" ({elapsed:.0f} s)" if elapsed is not None and elapsed >= 0.5 else ""
            self._line(f"{where}: {', '.join(parts)}{took}")
            if elapsed is not None and self.tally.measured > 1:
                self._line(f"[{self.tally.done}/{self.rows}] {self.tally.text()}")
        elif kind == "process":  # a later pass: one more timing process of the row
            self.tally.process_done()
            parts = [f"timed {detail}"]
            if row.relative is not None:
                parts.append(f"× ref {row.relative.ratio:.3f}")
            self._line(f"{where}: {', '.join(parts)}; {self.tally.text()}")


def suite_progress(title: str, rows: int, *, terminal: Optional[bool] = None,
                   measured: Optional[int] = None, extra: int = 0):
    """A progress bar for a suite run and the ``on_event`` callback that drives it
    (:data:`vitbench.run.runner.EventCallback`): rows done, failed and left, an estimate of
    the time left (``measured``: the rows that will be measured; ``extra``: the timing
    processes of the later passes), the current row and stage.
    Not a terminal (a log file, CI): a :class:`LineLog` instead, one line per stage and row."""
    if not (stderr_is_terminal() if terminal is None else terminal):
        log = LineLog(title, rows, measured=measured, extra=extra)
        return log, log
    progress = make_progress()
    tally = RunTally(rows, measured, extra)
    task = progress.add_task(escape(title), total=rows, detail="", tally="")

    def on_event(kind: str, index: int, row, detail: str) -> None:
        name = escape(row.name)
        if kind == "start":
            tally.start(index)
            progress.update(task, detail=f"{name}: starting")
        elif kind == "stage":
            progress.update(task, detail=escape(detail) if detail.startswith("writing")
                            else f"{name}: {escape(detail)}")
        elif kind == "done":
            tally.finish(index, detail)
            progress.advance(task)
            progress.update(task, detail=f"{name}: {escape(detail)}", tally=tally.text())
        elif kind == "process":  # a later pass timed one more process of the row
            tally.process_done()
            progress.update(task, detail=f"{name}: timed {escape(detail)}", tally=tally.text())

    return progress, on_event
