"""The Typer app every command registers on, the exit codes, and what commands share.

Errors: a library :class:`~vitbench.errors.VitbenchError` becomes one red line on stderr and
its exit code (:class:`~vitbench.errors.ExitCode`, the one table for every command); any
other exception is an internal error, one line and exit 4 (``VITBENCH_DEBUG=1`` shows the
traceback), so a crash is never read by CI as a failed row or a regression.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import typer

from vitbench.errors import ExitCode, VitbenchError

app = typer.Typer(
    name="vitbench",
    help=(
        "Measure what vision models really cost — params, GFLOPs, latency, throughput, "
        "memory — and print it next to the numbers their papers printed.\n\n"
        "Start with:  vitbench run suites/lightweight.yaml\n\n"
        "Exit codes (every command): 0 ok, 1 rows failed / gate regression, 2 bad input or "
        "usage, 3 gate inconclusive, 4 a file it cannot write or an internal error, "
        "130 interrupted (Ctrl-C), "
        "143 SIGTERM, 129 SIGHUP."
    ),
    no_args_is_help=True,
    rich_markup_mode=None,  # help text is shown as written: brackets are not markup
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        import platform

        from vitbench import __version__

        typer.echo(f"vitbench {__version__} (Python {platform.python_version()})")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", "-V", callback=_print_version,
                                 is_eager=True, help="print vitbench's version and exit"),
) -> None:
    """Options that come before the command (``vitbench --version``)."""


#: The two machine/human switches every table-printing command shares.
JSON_HELP = "print one JSON document on stdout instead of the table"
QUIET_HELP = "print nothing but errors (the exit code says how it went)"


def print_json(document: Any) -> None:
    """One JSON document on stdout (``json.loads`` of the whole stdout gives it back)."""
    import json

    typer.echo(json.dumps(document, indent=1, ensure_ascii=False, default=str))


def print_error(message: str) -> None:
    """``error: message`` on stderr, one line; the message is shown as written (no markup)."""
    from rich.markup import escape

    from vitbench.cli.console import err

    err.print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False, soft_wrap=True)


def fail(message: str, code: int = ExitCode.BAD_INPUT) -> typer.Exit:
    """Print the error and return the :class:`typer.Exit` to raise: ``raise fail(...)``."""
    print_error(message)
    return typer.Exit(int(code))


def parse_image_size(value: Optional[str]) -> Optional[Any]:
    """``224`` → 224, ``512x1024`` → (512, 1024); a usage error otherwise."""
    if value is None:
        return None
    parts = value.lower().replace("×", "x").split("x")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        raise typer.BadParameter("expected N or HxW, e.g. 224 or 512x1024") from None
    if len(numbers) == 1:
        return numbers[0]
    if len(numbers) == 2:
        return tuple(numbers)
    raise typer.BadParameter("expected N or HxW, e.g. 224 or 512x1024")


def main() -> None:
    """Console-script entry point: the app, with every escaping error mapped to one line and
    a code of the table (click already maps usage errors to 2 and Ctrl-C to 130)."""
    try:
        app()
    except VitbenchError as exc:
        raise SystemExit(int(fail(str(exc), exc.exit_code).exit_code)) from None
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, exit 4
        if os.environ.get("VITBENCH_DEBUG"):
            raise
        first = (f"{exc.__class__.__name__}: {exc}".splitlines() or ["?"])[0][:300]
        fail(f"internal error: {first} (VITBENCH_DEBUG=1 shows the traceback)", ExitCode.ERROR)
        raise SystemExit(int(ExitCode.ERROR)) from None
