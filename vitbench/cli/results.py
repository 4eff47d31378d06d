"""``vitbench show``: a saved run's table again, from its canonical results.json."""

from __future__ import annotations

from pathlib import Path

import typer

from vitbench.cli.app import JSON_HELP, QUIET_HELP, app, fail
from vitbench.errors import VitbenchError


@app.command()
def show(
    results_path: Path = typer.Argument(..., metavar="RESULTS", help="a results.json, a run folder, or a suite's folder of runs (its latest run)"),
    json_output: bool = typer.Option(False, "--json", help=JSON_HELP + " (the run, as results.json)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="only check that the file reads (exit 0) or say why not (exit 2)"),
) -> None:
    """Print a saved run's table again (from its canonical results.json).

    Given a suite's folder (results/lightweight/), the latest run in it is shown.

    Examples:

    \b
      vitbench show results/lightweight/20261122T010203Z
      vitbench show results/lightweight --json
    """
    from vitbench.cli.console import err, print_results
    from vitbench.files import latest_run, results_file
    from vitbench.records import RunResult

    path = latest_run(results_path)
    if path != results_file(results_path) and not (quiet or json_output):
        err.print(f"showing the latest run in {results_path}: {path.parent.name}",
                  markup=False, highlight=False)
    try:  # nothing found: the path as given, so the line says what is missing where
        result = RunResult.load(path if path.exists() else results_path)
    except VitbenchError as exc:
        raise fail(str(exc), exc.exit_code) from None
    if json_output:
        typer.echo(result.to_json())
    elif not quiet:
        print_results(result, str(path.parent))
