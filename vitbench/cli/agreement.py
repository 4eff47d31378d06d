"""``vitbench agreement``: one agreement report (params and GFLOPs vs printed) over many runs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vitbench.cli.app import app


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
    from vitbench.report.agreement import render_agreement, summarize_agreement
    from vitbench.cli.app import _fail
    from vitbench.cli.console import out as console
    from vitbench.errors import VitbenchError
    from vitbench.records import RunResult

    runs = []
    for path in results_paths:
        path = path / "results.json" if path.is_dir() else path
        try:
            runs.append(RunResult.load(path))
        except VitbenchError as exc:
            raise _fail(str(exc))
    summary = summarize_agreement(runs)
    text = "\n".join(render_agreement(summary)) + "\n"
    from rich.markdown import Markdown

    console.print(Markdown(text))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        console.print(f"written: {out}", highlight=False)
