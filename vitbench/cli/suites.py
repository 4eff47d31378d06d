"""``vitbench validate`` and ``vitbench models``: check suites, find model names."""

from __future__ import annotations

from pathlib import Path
from enum import Enum
from typing import Optional

import typer

from vitbench.cli.app import JSON_HELP, QUIET_HELP, app, fail, print_error, print_json
from vitbench.errors import ExitCode, VitbenchError


@app.command()
def validate(
    suite_paths: list[Path] = typer.Argument(..., metavar="SUITE...", help="suite YAML files"),
    check_models: bool = typer.Option(True, "--check-models/--no-check-models",
                                      help="also check every model name exists in its zoo"),
    json_output: bool = typer.Option(False, "--json", help=JSON_HELP + " (one entry per file)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
) -> None:
    """Check suite files without measuring anything.

    Reports the first problem of each file as FILE: ENTRY: FIELD: PROBLEM, and unknown model
    names with the closest real ones. Exit code 2 if any file is invalid.

    Example:

    \b
      vitbench validate suites/*.yaml
    """
    from rich.markup import escape

    from vitbench.cli.console import out
    from vitbench.config.suite import load_suite
    from vitbench.run.runner import check_models as check_model_names, plan

    bad = 0
    report = []
    for path in suite_paths:
        try:
            planned = plan(load_suite(path))
            if check_models:
                check_model_names(planned, str(path))
        except VitbenchError as exc:
            bad += 1
            report.append({"path": str(path), "ok": False, "error": str(exc)})
            if not json_output:
                print_error(str(exc))
            continue
        runnable = sum(p.job is not None for p in planned)
        report.append({"path": str(path), "ok": True, "rows": len(planned),
                       "buildable": runnable, "unavailable": len(planned) - runnable})
        if not (json_output or quiet):
            out.print(f"[green]ok[/green] {escape(str(path))}: {len(planned)} rows, {runnable} "
                      f"buildable, {len(planned) - runnable} unavailable", highlight=False)
    if json_output:
        print_json(report)
    if bad:
        raise typer.Exit(ExitCode.BAD_INPUT)


class SearchableZoo(str, Enum):
    """The zoos ``vitbench models`` can list (``python:`` callables cannot be listed)."""

    timm = "timm"
    torchvision = "torchvision"
    vitbench = "vitbench"
    hf = "hf"


@app.command()
def models(
    pattern: str = typer.Argument("*", help="substring or shell pattern, e.g. 'pvt*' or vit_small"),
    zoo: Optional[list[SearchableZoo]] = typer.Option(None, "--zoo", help="a zoo to search (repeatable) [default: all]"),
    json_output: bool = typer.Option(False, "--json", help=JSON_HELP + " ({zoo: [names]})"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="bare zoo:name lines, no headings (for scripts)"),
) -> None:
    """Search the model zoos for names to put in a suite.

    Exit 1 when nothing matches.

    Examples:

    \b
      vitbench models pvt
      vitbench models 'deit_*_384' --zoo timm
    """
    from rich.markup import escape

    from vitbench.build.zoo import list_models
    from vitbench.cli.console import out

    zoos = [z.value for z in zoo] if zoo else None
    found = {name: names for name, names in list_models(pattern, zoos).items() if names}
    total = sum(map(len, found.values()))
    if json_output:
        print_json(found)
    for name, names in found.items():
        if json_output:
            break
        if quiet:
            typer.echo("\n".join(f"{name}:{model_name}" for model_name in names))
            continue
        out.print(f"[bold]{name}[/bold] ({len(names)})")
        for model_name in names:
            out.print(f"  {escape(name)}:{escape(model_name)}", highlight=False)
    if not total:
        raise fail(f"no model matches {pattern!r}", ExitCode.FAILED)
