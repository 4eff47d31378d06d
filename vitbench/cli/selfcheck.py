"""``vitbench selfcheck``: benchmark the harness (agreement with simpler timers, run-to-run spread)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from vitbench.cli.app import app
from vitbench.cli.signals import interrupted, signals_interrupt


def _ratio(check: dict, key: str) -> str:
    ci = check.get(f"ratio_ci95_vs_{key}")
    text = _fmt(check[f"ratio_vs_{key}"], 3)
    return f"{text} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else text


def _fmt(value: Optional[float], digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


@app.command()
def selfcheck(
    models: Optional[list[str]] = typer.Option(None, "--model", "-m", metavar="NAME", help="zoo:name (repeatable) [default: resnet18, deit_tiny, pvt_v2_b0]"),
    threads: int = typer.Option(1, "--threads", min=1, help="CPU threads for every timing"),
    image_size: int = typer.Option(224, "--image-size", min=8, help="input side in pixels"),
    invocation_count: int = typer.Option(3, "--invocations", "-k", min=0, help="fresh worker processes per model for the spread (0: skip)"),
    min_time: float = typer.Option(3.0, "--min-time", min=0.1, help="seconds each method times each model, at least (split over the rounds)"),
    rounds: int = typer.Option(20, "--rounds", min=1, help="interleaved rounds: every method once per round, so drift hits all alike"),
    out: Path = typer.Option(Path("selfcheck.json"), "--out", "-o", help="where to write the JSON report"),
    python_path: Optional[list[Path]] = typer.Option(
        None, "--python-path", exists=True, file_okay=False,
        help="folder searched for a python: model after the installed packages (repeatable; "
             "never the working directory)"),
) -> None:
    """Check the harness: vitbench's median vs a bare perf_counter loop, timm's method and
    torch.utils.benchmark, in one process; then the spread over K fresh processes.

    A benchmark, not a test: it prints ratios (1.00 = the harness adds nothing) and the
    max/min of the medians across invocations, and writes everything to JSON.

    Example:

    \b
      vitbench selfcheck --threads 1 --invocations 3
    """
    from vitbench.cli.console import err, out as stdout
    from vitbench.files import write_atomic
    from vitbench.tools.selfcheck import DEFAULT_MODELS, run_selfcheck

    try:
        with signals_interrupt():  # SIGTERM/SIGHUP stop it as Ctrl-C does
            report = run_selfcheck(
                models or DEFAULT_MODELS, threads=threads, image_size=image_size,
                invocation_count=invocation_count, min_time_s=min_time, rounds=rounds,
                python_path=[str(p) for p in python_path or ()],
                on_progress=lambda message: err.print(message, style="dim", markup=False))
    except KeyboardInterrupt as exc:  # a worker timing a model is killed on the way out
        raise interrupted(exc, f"nothing was written ({out} is written at the end)") from None
    stdout.print(selfcheck_table(report, image_size=image_size, threads=threads,
                                 invocation_count=invocation_count))
    stdout.print("÷ = vitbench / reference from the per-round ratios of interleaved rounds "
                 "(Hodges–Lehmann, [95 % CI]; 1.00: no harness overhead). Spread = max/min of the "
                 "medians of fresh `vitbench run`-style worker processes. Foreign CPU = other "
                 "processes' share of the machine while timing (range over all timings of the "
                 "row); above 5 % the machine, not the harness, sets the spread.",
                 style="dim", markup=False)
    write_atomic(out, json.dumps(report, indent=1, default=str))
    stdout.print(f"Report: {out} (took {report['wall_s']} s)", markup=False, highlight=False)


def selfcheck_table(report: dict, *, image_size: int, threads: int, invocation_count: int):
    """The selfcheck report as a terminal table: one row per model, methods side by side."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"vitbench selfcheck — batch 1, {image_size}px, {threads} thread(s), "
                        "CPU", header_style="bold")
    table.add_column("model", no_wrap=True)
    for column in ("vitbench\nmedian ms", "bare loop\nmedian ms", "timm method\nmean ms",
                   "torch Timer\nmedian ms", "÷ bare", "÷ timm", "÷ Timer",
                   f"medians over {invocation_count}\nfresh processes (ms)", "spread\nmax/min",
                   "foreign\nCPU %"):
        table.add_column(column, justify="right")
    for check in report["checks"]:
        methods = check["methods"]
        if check["error"]:
            table.add_row(escape(check["model"]), f"[red]{escape(check['error'])}[/red]", *[""] * 10)
            continue
        foreign = [m.get("foreign_cpu_pct") for m in methods.values() if m.get("foreign_cpu_pct") is not None]
        foreign += [i.get("foreign_cpu_pct") for i in check["invocations"] if i.get("foreign_cpu_pct") is not None]
        table.add_row(
            escape(check["model"].split(":", 1)[1]),
            *(_fmt(methods.get(name, {}).get("ms")) for name in
              ("vitbench", "bare loop", "timm method", "torch Timer")),
            *(_ratio(check, key) for key in ("bare_loop", "timm_method", "torch_timer")),
            ", ".join(_fmt(v) for v in check["invocation_medians_ms"]) or "–",
            _fmt(check["spread_max_over_min"], 3),
            f"{min(foreign):.0f}–{max(foreign):.0f}" if foreign else "–",
        )
    return table
