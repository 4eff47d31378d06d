"""``vitbench agreement``: one agreement report (params and GFLOPs vs printed) over many runs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vitbench.cli.app import JSON_HELP, QUIET_HELP, app, fail, print_json
from vitbench.errors import VitbenchError
from vitbench.files import write_atomic


@app.command()
def agreement(
    results_paths: list[Path] = typer.Argument(
        ..., metavar="RESULTS...", help="results.json files, or the folders holding them"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="also write the report to FILE.md"),
    json_output: bool = typer.Option(False, "--json", help=JSON_HELP + " (per suite and total)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
) -> None:
    """Summarise how many measured rows agree with the printed params and GFLOPs.

    Per suite and in total: rows, rows built, rows within tolerance for params and for
    GFLOPs, counter disagreements, and every row outside tolerance with its note.

    Example:

    \b
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
    summary = summarize_agreement(runs)
    text = "\n".join(render_agreement(summary)) + "\n"
    if json_output:
        print_json(agreement_document(summary))
    elif not quiet:
        console.print(Markdown(text))
    if out is not None:
        write_atomic(out, text)
        if not (json_output or quiet):
            console.print(f"written: {out}", markup=False, highlight=False)


def agreement_document(summary) -> dict:
    """The agreement as plain data: per suite and in total, counts, shares and misses."""
    import dataclasses

    def one(part) -> dict:
        doc = dataclasses.asdict(part)
        doc["share_within"] = {q: part.share(q) for q in part.compared}
        return doc

    return {"suites": [one(s) for s in summary.suites], "total": one(summary.total),
            "unexplained": [dataclasses.asdict(m) for m in summary.unexplained]}
