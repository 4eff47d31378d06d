"""``vitbench sweep``: cost vs. input resolution, with the fitted exponent of cost vs. tokens."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from vitbench.cli.app import app, fail
from vitbench.cli.signals import interrupted, signals_interrupt
from vitbench.conventions import FLOP_CONVENTIONS, FlopConvention
from vitbench.errors import ExitCode
from vitbench.files import utc_stamp


@app.command()
def sweep(
    models: list[str] = typer.Argument(..., metavar="MODEL...",
                                       help="zoo:identifier, e.g. timm:vit_small_patch16_224"),
    image_size: str = typer.Option(..., "--image-size",
                                   help="START:STOP:STEP (stop included), N,N,... or HxW,HxW,..."),
    kwargs: Optional[str] = typer.Option(None, "--kwargs", help="builder kwargs as JSON, for every model"),
    time: bool = typer.Option(False, "--time", help="also time each size (worker process, few repeats) "
                                                    "and take its peak memory"),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads when timing"),
    warmup: int = typer.Option(2, "--warmup", min=0, help="untimed calls per size when timing"),
    repeat: int = typer.Option(5, "--repeat", min=1, help="timed calls per size when timing"),
    flops_convention: FlopConvention = typer.Option("matmul-only", "--flops-convention",
                                                    help="what GFLOPs count"),
    out: Optional[Path] = typer.Option(None, "--out", "-o",
                                       help="folder for sweep.json/.csv/.png [default: results/sweep/UTC-STAMP]"),
    python_path: Optional[list[Path]] = typer.Option(
        None, "--python-path", exists=True, file_okay=False,
        help="folder searched for a python: MODEL after the installed packages (repeatable; "
             "never the working directory)"),
) -> None:
    """How GFLOPs (and with --time latency and memory) grow with resolution.

    Builds each model for every size (random weights), counts GFLOPs split into attention
    (Q·Kᵀ, A·V) and the rest, and fits the exponent of cost vs. token count on a log-log
    scale (tokens = H·W/16²; the exponent does not depend on that constant). 1 = linear in
    tokens; 2 = quadratic. Writes a table, sweep.csv, sweep.json and a log-log plot.

    Examples:

    \b
      vitbench sweep timm:vit_small_patch16_224 timm:pvt_v2_b0 --image-size \\
          224:896:224
      vitbench sweep timm:swin_tiny_patch4_window7_224 --image-size \\
          224,448,672,896
      vitbench sweep timm:deit_tiny_patch16_224 --image-size 224,320,448 \\
          --time --threads 1
    """
    from vitbench.cli.console import err, out as console
    from vitbench.errors import VitbenchError
    from vitbench.tools.sweep import TOKEN_STRIDE, parse_sizes, sweep as run_sweep, write_outputs

    out = out or Path("results") / "sweep" / utc_stamp()
    results = []
    try:
        sizes = parse_sizes(image_size)
        extra = json.loads(kwargs) if kwargs else {}
        if not isinstance(extra, dict):
            raise VitbenchError("--kwargs: expected a JSON object")
        with signals_interrupt():  # SIGTERM/SIGHUP stop it as Ctrl-C does
            for model in models:
                results.append(run_sweep(
                    model, sizes, extra, convention=flops_convention, time=time,
                    threads=threads, warmup=warmup, repeat=repeat,
                    python_path=[str(p) for p in python_path or ()],
                    on_point=lambda m, model=model: err.print(f"{model}: {m}", style="dim",
                                                              markup=False, highlight=False)))
                print_sweep(results[-1], timed=time)
    except json.JSONDecodeError as exc:
        raise fail(f"--kwargs: not valid JSON ({exc.msg})") from None
    except VitbenchError as exc:
        raise fail(str(exc), exc.exit_code) from None
    except KeyboardInterrupt as exc:  # a worker timing a size is killed on the way out
        if not results:
            raise interrupted(exc, "nothing was written") from None
        write_outputs(results, out)
        raise interrupted(exc, f"the {len(results)} finished model(s) are in {out}") from None
    paths = write_outputs(results, out)
    console.print(f"tokens = H·W/{TOKEN_STRIDE}²; GFLOPs = 10⁹ multiply-accumulates, batch 1, "
                  f"{flops_convention}: {FLOP_CONVENTIONS[flops_convention]}", markup=False,
                  highlight=False)
    console.print(f"attention = scaled_dot_product_attention + matmul/bmm/einsum products; "
                  f"written: {paths['csv']}, {paths['json']}, {paths['png']}", markup=False,
                  highlight=False)
    if any(p.error for r in results for p in r.points):
        raise typer.Exit(ExitCode.FAILED)


def print_sweep(result, *, timed: bool) -> None:
    """One model's sweep as a terminal table, its fitted exponents, and the sizes that failed."""
    from rich.markup import escape
    from rich.table import Table

    from vitbench.cli.console import err, out as console

    table = Table(title=f"{escape(result.model)} — cost vs. resolution", title_justify="left")
    for column in ("H×W", "tokens", "params M", "GFLOPs", "attention GFLOPs", "attention %",
                   "local exp.", *(("latency ms", "peak MiB") if timed else ())):
        table.add_column(column, justify="right")
    for point, local in zip(result.points, result.local_exponents):
        share = (f"{100 * point.attention_gflops / point.gflops:.1f}"
                 if point.gflops and point.attention_gflops is not None else "–")
        cells = [f"{point.height}×{point.width}", f"{point.tokens:g}",
                 f"{point.params_m:.2f}" if point.params_m else "–",
                 f"{point.gflops:.3f}" if point.gflops is not None else escape(point.error or "–"),
                 f"{point.attention_gflops:.3f}" if point.attention_gflops is not None else "–",
                 share, f"{local:.2f}" if local is not None else "–"]
        if timed:
            cells += [f"{point.latency_ms:.1f}" if point.latency_ms else "–",
                      f"{point.peak_memory_mb:.0f}" if point.peak_memory_mb else "–"]
        table.add_row(*cells)
    console.print(table)
    fitted = ", ".join(f"{name} {fit.exponent:.2f} (R² {fit.r2:.3f})"
                       for name, fit in result.fits.items() if fit is not None)
    console.print(f"fitted exponent of cost vs. tokens: {fitted}", highlight=False)
    for point in result.points:
        if point.error:
            err.print(f"[yellow]warning:[/yellow] {point.height}×{point.width}: "
                      f"{escape(point.error)}", highlight=False)
