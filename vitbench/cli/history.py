"""``vitbench history`` (list and filter what the history holds; ``import`` back-fills old
runs) and the ``--history`` option with which ``run`` and ``ab`` append every run they make
(:mod:`vitbench.history`, docs/history.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Optional

import typer

from vitbench.cli.app import app, fail, print_json
from vitbench.errors import VitbenchError

HISTORY_METAVAR = "PATH|URL|off"
HISTORY_HELP = ("history database the run is appended to: a SQLite path, a "
                "postgresql+psycopg:// URL, or off [default: $VITBENCH_HISTORY, else "
                "results/history.sqlite]")


def history_option(help_text: str = HISTORY_HELP) -> Any:
    """The ``--history`` option, declared once (``$VITBENCH_HISTORY`` is its default)."""
    return typer.Option(None, "--history", envvar="VITBENCH_HISTORY", metavar=HISTORY_METAVAR,
                        show_envvar=False, help=help_text)


def history_target(value: Optional[str]) -> Optional[str]:
    """The database to use: the option (or its variable), else the default; None when off."""
    from vitbench.history.store import DEFAULT_HISTORY, is_off

    target = value if value not in (None, "") else DEFAULT_HISTORY
    return None if is_off(target) else target


def append_to_history(value: Optional[str], paths: Iterable[Path], *, kind: str = "run",
                      labels: Optional[list[str]] = None, quiet: bool = False) -> None:
    """Append the runs just made. A history that cannot be written is one warning line,
    never a failed command: the runs are on disk and ``vitbench history import`` adds them
    later."""
    from rich.markup import escape

    from vitbench.cli.console import err

    target = history_target(value)
    paths = [p for p in paths if Path(p).is_file()]
    if target is None or not paths:
        return
    try:
        from vitbench.history.store import append_results

        done = append_results(target, paths, kind=kind, labels=labels)
    except Exception as exc:  # noqa: BLE001 - the run itself succeeded: warn, never fail it
        text = (str(exc).splitlines() or [exc.__class__.__name__])[0][:300]
        err.print(f"[yellow]warning:[/yellow] history not updated: {escape(text)}; the run is "
                  f"on disk: vitbench history import {escape(str(paths[0]))} adds it later",
                  highlight=False, soft_wrap=True)
        return
    if not quiet:
        ids = ", ".join(run_id for run_id, _ in done[:2]) + (" …" if len(done) > 2 else "")
        from vitbench.history.store import shown

        err.print(f"history: {len(done)} run(s) appended to {escape(shown(target))} ({ids})",
                  markup=True, highlight=False, soft_wrap=True, style="dim")


history_app = typer.Typer(invoke_without_command=True, rich_markup_mode=None,
                          context_settings={"help_option_names": ["-h", "--help"]})
app.add_typer(history_app, name="history")

_POINT_COLUMNS = ["created_utc", "run_id", "commit", "dirty", "model", "metric", "value",
                  "ci_low", "ci_high", "n", "unit", "env_key", "flags"]


@history_app.callback()
def history(
    ctx: typer.Context,
    database: Optional[str] = history_option("history database: a SQLite path or a "
                                             "postgresql+psycopg:// URL [default: "
                                             "$VITBENCH_HISTORY, else results/history.sqlite]"),
    suite: Optional[list[str]] = typer.Option(None, "--suite", "-s", metavar="NAME", help="only this suite (repeatable)"),
    model: Optional[list[str]] = typer.Option(None, "--model", "-m", metavar="ROW", help="only this row name or model id, * globs (repeatable)"),
    metric: Optional[list[str]] = typer.Option(None, "--metric", metavar="M", help="list the points of this metric (repeatable): params_m, gflops, latency_ms, throughput_img_s, peak_memory_mib, ..."),
    environment: Optional[str] = typer.Option(None, "--env", metavar="KEY|TEXT", help="only this environment: an env_key prefix or a piece of its label (EPYC, cuda)"),
    since: Optional[str] = typer.Option(None, "--since", metavar="DATE", help="runs created at or after this ISO date/time"),
    until: Optional[str] = typer.Option(None, "--until", metavar="DATE", help="runs created up to this ISO date/time (a date: that whole day)"),
    commit: Optional[str] = typer.Option(None, "--commit", metavar="SHA|A..B", help="runs of this commit (prefix), or from the first run of A to the last of B"),
    all_rows: bool = typer.Option(False, "--all-rows", help="points of failed and timed-out rows too (default: ok rows only)"),
    last: Optional[int] = typer.Option(None, "--last", "-n", min=1, metavar="N", help="only the last N lines"),
    csv_output: bool = typer.Option(False, "--csv", help="print CSV on stdout instead of the table"),
    json_output: bool = typer.Option(False, "--json", help="print one JSON list on stdout instead of the table"),
) -> None:
    """List the runs in the history database, or with --metric their points.

    Every `vitbench run` and `vitbench ab` appends its rows (--history on those
    commands); `vitbench history import` back-fills older results.json files. Filters
    combine with AND. The points' env_key says where and how a value was measured: only
    equal keys are comparable. Exit 0; 2: no database there, or a bad filter.

    Examples:

    \b
      vitbench history --suite lightweight
      vitbench history --model PVTv2-B0 --metric latency_ms --since 2026-11-01
      vitbench history --metric gflops --commit v1.2..main --csv > gflops.csv
      vitbench history import 'results/**/results.json'
    """
    if ctx.invoked_subcommand is not None:
        ctx.obj = database
        return
    from vitbench.history.query import Filters, runs_frame, series

    target = history_target(database)
    if target is None:
        raise fail("--history off: no database to list; give a path or URL")
    filters = dict(suite=suite or None, model=model or None, environment=environment,
                   since=since, until=until, commit=commit)
    try:
        if metric:
            frame = series(target, metric=metric,
                           status=None if all_rows else ("ok",), **filters)
            frame = frame[[*_POINT_COLUMNS, *[c for c in frame.columns
                                             if c not in _POINT_COLUMNS]]]
        else:
            frame = runs_frame(target, Filters(**filters, status=None))
    except VitbenchError as exc:
        raise fail(str(exc), exc.exit_code) from None
    if last is not None:
        frame = frame.tail(last)
    if csv_output:
        typer.echo(frame.to_csv(index=False), nl=False)
    elif json_output:
        print_json(frame.astype(object).where(frame.notna(), None).to_dict(orient="records"))
    else:
        from vitbench.history.store import shown

        _print_table(frame, bool(metric), shown(target))


def _print_table(frame: Any, points: bool, target: str) -> None:
    from rich.table import Table
    from rich.text import Text

    from vitbench.cli.console import out

    def cell(value: Any, digits: int = 4) -> str:
        if value is None or (isinstance(value, float) and value != value):
            return ""
        if isinstance(value, float):
            return f"{value:.{digits}g}"
        return str(value)

    def commit_of(line: Any) -> str:
        sha = cell(line["commit"])[:8]
        return sha + ("*" if sha and line["dirty"] is True else "")

    table = Table(title=Text(f"{target}: {len(frame)} {'point' if points else 'run'}(s)"),
                  header_style="bold")
    if points:
        for name in ("created (UTC)", "run", "commit", "model", "metric", "value", "95% CI",
                     "n", "env", "flags"):
            table.add_column(name, justify="right" if name in ("value", "n") else "left")
        for _, line in frame.iterrows():
            ci = (f"{cell(line['ci_low'])}–{cell(line['ci_high'])}"
                  if cell(line["ci_low"]) else "")
            table.add_row(*map(Text, (cell(line["created_utc"])[:19], cell(line["run_id"]),
                                      commit_of(line), cell(line["model"]),
                                      cell(line["metric"]),
                                      f"{cell(line['value'])} {cell(line['unit'])}", ci,
                                      cell(line["n"]), cell(line["env_key"]),
                                      cell(line["flags"]))))
    else:
        for name in ("created (UTC)", "run", "suite", "commit", "kind", "rows", "ok",
                     "environments", "vitbench"):
            table.add_column(name, justify="right" if name in ("rows", "ok") else "left")
        for _, line in frame.iterrows():
            table.add_row(*map(Text, (cell(line["created_utc"])[:19], cell(line["run_id"]),
                                      cell(line["suite"]), commit_of(line), cell(line["kind"]),
                                      cell(line["rows"]), cell(line["ok"]),
                                      cell(line["environments"]),
                                      cell(line["vitbench_version"]))))
    out.print(table)


@history_app.command("import")
def import_(
    ctx: typer.Context,
    patterns: list[str] = typer.Argument(..., metavar="RESULTS...", help="results.json files, run folders or glob patterns ('results/**/results.json': quote it, ** crosses folders)"),
    database: Optional[str] = history_option("history database to add them to [default: "
                                             "$VITBENCH_HISTORY, else "
                                             "results/history.sqlite]"),
) -> None:
    """Back-fill the history from results.json files written earlier.

    A run already there (same run_id) is replaced, never duplicated; a file that
    cannot be read is one warning line and skipped. No git commit is recorded for
    imported runs (the commit checked out now is not the one they measured).

    Example:

    \b
      vitbench history import 'results/**/results.json'
    """
    from rich.markup import escape

    from vitbench.cli.console import err, out
    from vitbench.history.store import import_results, shown

    target = history_target(database or ctx.obj)
    if target is None:
        raise fail("--history off: no database to import into; give a path or URL")

    def warn(message: str) -> None:
        err.print(f"[yellow]warning:[/yellow] {escape(message)}", highlight=False,
                  soft_wrap=True)

    try:
        new, replaced, skipped = import_results(target, patterns, warn)
    except VitbenchError as exc:
        raise fail(str(exc), exc.exit_code) from None
    out.print(f"imported {new} new run(s), replaced {replaced}, skipped {skipped} into {shown(target)}",
              markup=False, highlight=False)


def history_baseline_side(value: Optional[str], spec: str, candidate: list[Path],
                          quantile: Optional[float]) -> Any:
    """``compare``'s baseline side for ``history:<spec>``: the last N history runs comparable
    with the candidate runs (:mod:`vitbench.history.baseline`), with one line on stderr
    saying how many it used and from when."""
    from vitbench.cli.console import err
    from vitbench.gate import Baseline, GateError, load_results
    from vitbench.history.baseline import baseline_document
    from vitbench.history.store import shown
    from vitbench.files import utc_now

    target = history_target(value)
    if target is None:
        raise GateError(f"history:{spec}: --history is off; give the database to read")
    if quantile is not None and quantile not in (0.2, 0.5):
        raise GateError(f"history:{spec}: the history keeps each run's 0.2 and 0.5 latency "
                        f"quantiles only; use --quantile 0.2 or 0.5")
    document = baseline_document(target, load_results(candidate), spec, created_utc=utc_now())
    used = document["sources"][1:]
    err.print(f"baseline: history:{spec} — {len(used)} comparable run(s) from {shown(target)} "
              f"({used[0]} … {used[-1]})", markup=False, highlight=False, soft_wrap=True)
    side = Baseline.from_document(document, f"history:{spec}").to_side("baseline")
    side.sources = list(document["sources"])
    return side
