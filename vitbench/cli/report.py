"""``vitbench report``: re-render reports from canonical results, merging runs of one suite."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vitbench.cli.app import app, fail
from vitbench.errors import VitbenchError
from vitbench.files import lock_folder, utc_stamp


@app.command()
def report(
    results: list[Path] = typer.Argument(..., metavar="RESULT.json...",
                                         help="results.json files (or folders holding one) of one suite"),
    formats: str = typer.Option("md,csv,html,png,svg", "--format", "-f",
                                help="comma-separated: md, csv, html, png, svg, or all"),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o",
        help="folder to write to [default: the run's folder for one run; "
             "results/SUITE/merged-UTC-STAMP for several]"),
) -> None:
    """Render tables, plots and an HTML page from results.json; merge several runs.

    Reports are rebuilt from the canonical results.json, never from CSV. Several runs of
    one suite (a CPU run and a GPU run, batch 1 and batch 8) become one table: rows matched
    by name, one latency column per device (and per batch/dtype/threads where they differ).

    Examples:

    \b
      vitbench report results/lightweight/20261122T010203Z
      vitbench report cpu/results.json gpu/results.json --out \\
          results/lightweight/cpu+gpu
      vitbench report results/lightweight/*/results.json --format md,csv
    """
    from vitbench.cli.console import out as console
    from vitbench.report import parse_formats, write_reports
    from vitbench.report.merge import load_runs, merge_runs

    try:
        wanted = parse_formats(formats)
        runs, paths = load_runs(results)  # a folder means its results.json
        merged = merge_runs(runs, paths)
    except VitbenchError as exc:
        raise fail(str(exc))
    if not wanted:
        raise fail("--format: name at least one of md, csv, html, png, svg")
    option = "--out" if out is not None else "the report folder"
    if out is None:
        if len(paths) == 1:
            out = paths[0].parent
        else:
            out = Path("results") / (runs[0].suite.get("name") or "merged") / f"merged-{utc_stamp()}"
    try:  # a run still writing that folder, or another report: refused
        with lock_folder(out, option):
            written = write_reports(merged, out, wanted)
    except VitbenchError as exc:  # DiskError: "cannot write PATH: CAUSE", exit 4
        raise fail(str(exc), exc.exit_code) from None
    columns = ", ".join(c.label for c in merged.columns) or "no timed columns"
    console.print(f"{merged.title}: {len(merged.rows)} rows from {len(runs)} run"
                  f"{'s' if len(runs) > 1 else ''} ({columns})", markup=False, highlight=False)
    for path in written:
        console.print(f"  {path}", markup=False, highlight=False)
