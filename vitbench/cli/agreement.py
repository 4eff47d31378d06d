"""``vitbench agreement``: one agreement report (params and GFLOPs vs printed) over many runs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vitbench.cli.app import app, fail
from vitbench.errors import VitbenchError
from vitbench.files import write_atomic


@app.command()
def agreement(
    results_paths: list[Path] = typer.Argument(
        ..., metavar="RESULTS...", help="results.json files, or the folders holding them"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="also write the report to FILE.md"),
) -> None:
    """Summarise how many measured rows agree with the printed params and GFLOPs.

    Per suite and in total: rows, rows built, rows within tolerance for params and for
    GFLOPs, counter disagreements, and every row outside tolerance with its note.

    Example:

      vitbench agreement /tmp/seedruns/*/results.json --out agreement.md
    """
    from rich.markdown import Markdown

    from vitbench.cli.console import out as console
    from vitbench.report.agreement import summarize_agreement
    from vitbench.report.markdown import render_agreement
    from vitbench.report.merge import load_runs

    try:
        runs, _ = load_runs(results_paths)  # a folder means its results.json
    except VitbenchError as exc:
        raise fail(str(exc))
    text = "\n".join(render_agreement(summarize_agreement(runs))) + "\n"
    console.print(Markdown(text))
    if out is not None:
        write_atomic(out, text)
        console.print(f"written: {out}", markup=False, highlight=False)
