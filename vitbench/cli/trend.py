"""``vitbench trend``: a suite's metrics over the history's runs (charts and an HTML dashboard)
and their change points (``--changes``, for nightly jobs)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vitbench.cli.app import JSON_HELP, app, fail, print_json
from vitbench.errors import ExitCode

#: The metrics drawn and searched when --metric is not given (those the runs have).
DEFAULT_METRICS = ("latency_ms", "throughput_img_s", "peak_memory_mib", "params_m", "gflops")


def suite_name(value: str) -> str:
    """A suite file's ``name:`` (or its file stem), or the value itself when it is a name."""
    path = Path(value)
    if path.suffix.lower() not in (".yaml", ".yml"):
        return value
    if not path.is_file():
        raise fail(f"{value}: no such suite file; give a suite YAML or a suite name as "
                   f"`vitbench history` lists it")
    import yaml

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise fail(f"{value}: cannot read the suite ({exc.__class__.__name__}); fix the "
                   f"file or give the suite's name") from None
    name = document.get("name") if isinstance(document, dict) else None
    return str(name or path.stem)


@app.command("trend", epilog="Exit 0: done (with --changes: no regression in the latest "
             "window); 1: --changes found a regression change point in the latest window; "
             "2: bad input, or no history for the suite.")
def trend(
    suite: str = typer.Argument(..., metavar="SUITE",
                                help="suite YAML (its name: is used) or suite name"),
    model: Optional[list[str]] = typer.Option(None, "--model", "-m", metavar="NAME",
                                              help="only this row name or model id, * globs "
                                                   "(repeatable)"),
    metric: Optional[list[str]] = typer.Option(None, "--metric", metavar="M",
                                               help="only this metric (repeatable) [default: "
                                                    + ", ".join(DEFAULT_METRICS) + "]"),
    environment: Optional[str] = typer.Option(None, "--environment", "-e", metavar="KEY|TEXT",
                                              help="only points of environments whose key "
                                                   "starts with, or label contains, this"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", metavar="DIR",
                                       help="write trend-METRIC.png/.svg per metric and "
                                            "dashboard.html here"),
    changes: bool = typer.Option(False, "--changes",
                                 help="list the change points; exit 1 when a regression "
                                      "starts in the latest window"),
    window: int = typer.Option(5, "--window", min=1, metavar="N",
                               help="the latest window: a change point whose new level "
                                    "starts in the last N runs of its series"),
    database: Optional[str] = typer.Option(None, "--history", envvar="VITBENCH_HISTORY",
                                           metavar="PATH|URL", show_envvar=False,
                                           help="history database: a SQLite path or a "
                                                "postgresql:// URL [default: "
                                                "$VITBENCH_HISTORY, else "
                                                "results/history.sqlite]"),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """A suite's metrics over the runs in the history: a chart per metric (each run's CI as
    a band, one line per model and environment) and an HTML dashboard with a small chart per
    model and metric, change points flagged and links to the runs.

    Change points are searched per (model, metric, environment) series: a permutation test
    on ranks (p < 0.01) finds whether a series moved, ruptures (binary segmentation) where;
    each has its run and commit, its size with a bootstrap 95 % CI and its p-value. A series
    needs 3 runs on each side of a change. Params and GFLOPs change at any new value.

    Examples:

    \b
      vitbench trend suites/lightweight.yaml --out trend/
      vitbench trend lightweight --model PVTv2-B0 --metric latency_ms --out trend/
      vitbench trend lightweight --changes --window 5     # nightly: exit 1 on a regression
    """
    from vitbench.history.changes import find_changes, latest_regressions
    from vitbench.history.query import runs_frame, series, Filters
    from vitbench.history.store import DEFAULT_HISTORY, is_off

    if out is None and not changes:
        raise fail("trend: nothing to do; give --out DIR for the charts and dashboard, "
                   "--changes for the change points, or both")
    target = database if database not in (None, "") else DEFAULT_HISTORY
    if is_off(target):
        raise fail("trend: --history off leaves nothing to read; give a database path or URL")
    if "://" not in str(target) and not Path(target).is_file():
        raise fail(f"trend: no history database at {target}; runs append to it (or "
                   f"`vitbench history import results/**/results.json`), or give --history")
    name = suite_name(suite)
    metrics = list(metric or DEFAULT_METRICS)
    frame = series(target, suite=name, model=model or None, metric=metrics,
                   environment=environment)
    if frame.empty:
        raise fail(f"trend: no {', '.join(metrics)} points for suite {name!r}"
                   f"{' and those models' if model else ''} in {target}; `vitbench history "
                   f"--suite {name}` lists what it holds")
    metrics = [m for m in metrics if (frame["metric"] == m).any()]
    found = find_changes(frame)
    flagged = latest_regressions(found, window)
    written: list[Path] = []
    if out is not None:
        written = _write(frame, metrics, found, out, name, target, window,
                         runs_frame(target, Filters(suite=name, model=model or None,
                                                    environment=environment, status=None)))
    if as_json:
        print_json({"suite": name, "history": str(target), "runs": int(frame["run_id"].nunique()),
                    "metrics": metrics, "window": window,
                    "change_points": [c.as_dict() for c in found],
                    "latest_regressions": [c.as_dict() for c in flagged],
                    "files": [str(p) for p in written]})
    else:
        _print(found, flagged, written, changes, window, int(frame["run_id"].nunique()))
    if changes and flagged:
        raise typer.Exit(int(ExitCode.FAILED))


def _write(frame, metrics, found, out: Path, name: str, target: str, window: int, runs
           ) -> list[Path]:
    from vitbench.files import write_atomic
    from vitbench.history.dashboard import dashboard_html
    from vitbench.history.trendplot import write_metric_plots

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise fail(f"--out {out}: cannot create the folder ({exc.strerror}); choose another",
                   ExitCode.ERROR) from None
    written = write_metric_plots(frame, metrics, found, out)
    page = dashboard_html(frame, runs, metrics, found, out, title=f"{name}: trends",
                          window=window, source=str(target))
    written.append(write_atomic(out / "dashboard.html", page))
    return written


def _print(found, flagged, written, changes: bool, window: int, runs: int) -> None:
    from rich.table import Table

    from vitbench.cli.console import out as console

    if changes:
        table = Table(title=f"change points over {runs} runs (latest window: last {window})")
        for column in ("model", "metric", "env", "starts at", "change [95 % CI]", "p", ""):
            table.add_column(column, justify="right" if column in ("p",) else "left")
        for c in found:
            latest = " ← latest" if c in flagged else ""
            table.add_row(c.model, c.metric, c.env_key[:6],
                          f"{(c.commit or '')[:7] or c.created_utc[:16]} (run {c.index + 1}/"
                          f"{c.runs})", f"{c.change_pct:+.1f} % [{c.ci_low_pct:+.1f}, "
                          f"{c.ci_high_pct:+.1f}]", f"{c.p_value:.3g}",
                          f"{c.direction}{latest}")
        console.print(table if found else f"no change point over {runs} runs")
        if flagged:
            console.print(f"{len(flagged)} regression(s) start in the latest {window} runs: "
                          "exit 1", style="bold red")
    for path in written:
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)
