"""Derived reports: CSV (a stable interface for CI), Markdown (a paper-style table), and on
request plots (:mod:`vitbench.report.plots`) and one self-contained HTML page.

Everything is rendered from :class:`~vitbench.records.RunResult` objects (``results.json``),
never from another report. Several runs of one suite (a CPU run and a GPU run, batch 1 and
batch 8) merge into one table through :mod:`vitbench.report.merge`.

The modules form a DAG, each importing only those above it::

    merge, agreement        the merged rows and columns; the agreement counts (pure data)
    table                   Cell, Table, build_table, the fmt* formatters, protocol_lines
    csv, markdown, html     results.csv (CSV_COLUMNS: only ever appended), results.md,
                            report.html; markdown_grid is the one Markdown table helper
    plots                   matplotlib figures, rendered to PNG/SVG
    this package            parse_formats, write_reports: which files, where
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Iterable

from vitbench.errors import ResultsError
from vitbench.files import write_atomic
from vitbench.report.csv import CSV_COLUMNS, flat_row, to_csv, to_frame
from vitbench.report.html import to_html
from vitbench.report.markdown import markdown_grid, markdown_table, to_markdown
from vitbench.report.table import RunLike, as_report, build_table, protocol_lines

__all__ = ["ALL_FORMATS", "CSV_COLUMNS", "DEFAULT_FORMATS", "RunLike", "as_report", "build_table",
           "flat_row", "markdown_grid", "markdown_table", "parse_formats", "protocol_lines",
           "report_sink", "to_csv", "to_frame", "to_html", "to_markdown", "write_reports"]

#: What :func:`write_reports` writes unless asked for more (cheap enough to redo every row).
DEFAULT_FORMATS: tuple[str, ...] = ("csv", "md")
#: Every format :func:`write_reports` knows.
ALL_FORMATS: tuple[str, ...] = ("md", "csv", "html", "png", "svg")


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
    table and plots (as SVG) embedded. Returns the paths written.
    """
    formats = parse_formats(formats)
    report = as_report(run)
    out_dir = Path(out_dir)  # created by write_atomic, whose DiskError names the file
    written: list[Path] = []
    plot_links: list[tuple[str, str]] = []
    skipped: list[tuple[str, str]] = []
    if any(f in formats for f in ("png", "svg", "html")):
        # Imported here, not above: matplotlib takes ~0.45 s to import, and the runner writes
        # csv+md after every row without plots.
        from vitbench.report import plots

        images = [ext for ext in plots.IMAGE_FORMATS
                  if ext in formats or (ext == "svg" and "html" in formats)]
        drawn, skipped = plots.render_all(report, images)
        for plot in drawn:
            for ext in ("png", "svg"):
                if ext in formats:
                    path = out_dir / "plots" / f"{plot.name}.{ext}"
                    write_atomic(path, plot.images[ext])
                    written.append(path)
            if "png" in formats:
                plot_links.append((plot.title, f"plots/{plot.name}.png"))
            elif "svg" in formats:
                plot_links.append((plot.title, f"plots/{plot.name}.svg"))
        if "html" in formats:
            path = out_dir / "report.html"
            write_atomic(path, to_html(report, [(p.name, p.title, p.caption,
                                                 p.images["svg"].decode("utf-8"))
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


#: While a run goes, its CSV and Markdown views are rewritten only when the last rewrite
#: took at most this share of the time since it: one rewrite costs O(rows), so after every
#: row of a zoo-scale suite they would cost O(rows²) of the driver's CPU (0.04 s a rewrite at
#: 200 rows), which on a Ray node competes with the rows being counted. ``results.json``
#: is still saved after every row; the views are rewritten whole when the run ends.
VIEWS_CPU_SHARE = 0.05


def report_sink(out_dir: str | Path, final_formats: str | Iterable[str] = ALL_FORMATS):
    """A sink for :func:`vitbench.run.runner.run_suite`: CSV and Markdown beside
    ``results.json`` as rows finish (after every row while that is cheap: at most
    :data:`VIEWS_CPU_SHARE` of the time), ``final_formats`` (plots, HTML) once the run is
    complete; a run that ended otherwise (interrupted) gets fresh CSV and Markdown."""
    final = parse_formats(final_formats)
    last = {"at": -math.inf, "took": 0.0}

    def sink(run, complete: bool) -> None:
        began = time.monotonic()
        ended = complete or run.finished_utc is not None
        if not ended and began - last["at"] < last["took"] / VIEWS_CPU_SHARE:
            return
        write_reports(run, out_dir, formats=final if complete else DEFAULT_FORMATS)
        last["at"], last["took"] = began, time.monotonic() - began

    return sink
