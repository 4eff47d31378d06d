"""``vitbench show``: a saved run's table again, from its canonical results.json."""

from __future__ import annotations

from pathlib import Path

import typer

from vitbench.cli.app import app, fail
from vitbench.errors import VitbenchError


@app.command()
def show(
    results_path: Path = typer.Argument(..., metavar="RESULTS", help="a results.json, or the folder holding it"),
) -> None:
    """Print a saved run's table again (from its canonical results.json).

    Example:

      vitbench show results/lightweight/20261122T010203Z
    """
    from vitbench.cli.console import print_results
    from vitbench.files import results_file
    from vitbench.records import RunResult

    try:
        result = RunResult.load(results_path)
    except VitbenchError as exc:
        raise fail(str(exc), exc.exit_code) from None
    print_results(result, str(results_file(results_path).parent))
