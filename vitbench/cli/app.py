"""The ``vitbench`` command line: a thin layer over the library.

Exit codes: 0 every row measured (unavailable rows are expected, not failures); 1 some rows
failed; 2 bad input (malformed suite, unknown model, bad option); 130 interrupted (results
measured so far are on disk).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer

from vitbench.errors import VitbenchError

app = typer.Typer(
    name="vitbench",
    help=(
        "Measure what vision models really cost — params, GFLOPs, latency, throughput, "
        "memory — and print it next to the numbers their papers printed.\n\n"
        "Start with:  vitbench run suites/lightweight.yaml"
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

EXIT_OK, EXIT_ROWS_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> "typer.Exit":
    from vitbench.cli.console import err

    err.print(f"[bold red]error:[/bold red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _parse_image_size(value: Optional[str]) -> Optional[Any]:
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


def _parse_batch_size(value: str) -> Any:
    text = value.strip().lower()
    if text == "max":
        return "max"
    try:
        numbers = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise _fail(f"--batch-size: expected N, N,N,… or max, got {value!r}") from None
    if not numbers:
        raise _fail(f"--batch-size: expected N, N,N,… or max, got {value!r}")
    return numbers[0] if len(numbers) == 1 and "," not in text else numbers


def _parse_compile(value: Optional[str]) -> Any:
    if value is None:
        return None
    text = value.strip().lower()
    if text in ("off", "false", "no", "none"):
        return False
    if text not in ("default", "reduce-overhead", "max-autotune"):
        raise _fail(f"--compile: expected off, default, reduce-overhead or max-autotune, got {value!r}")
    return text


@app.command()
def run(
    suite_path: Path = typer.Argument(..., metavar="SUITE", help="suite YAML, e.g. suites/lightweight.yaml"),
    device: Optional[str] = typer.Option(None, "--device", help="cpu | cuda | auto (overrides the suite)"),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="float32 | float16 | bfloat16"),
    batch_size: Optional[str] = typer.Option(None, "--batch-size", "-b", help="images per forward pass: N, a sweep N,N,… (one row each), or max (cuda)"),
    image_size: Optional[str] = typer.Option(None, "--image-size", help="N or HxW, for every row"),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads [default: usable CPUs − 1]"),
    warmup: Optional[int] = typer.Option(None, "--warmup", min=0, help="untimed iterations before timing"),
    repeat: Optional[int] = typer.Option(None, "--repeat", min=1, help="timed iterations, at least"),
    min_time: Optional[float] = typer.Option(None, "--min-time", min=0, help="timed seconds, at least"),
    timeout: Optional[float] = typer.Option(None, "--timeout", min=1, help="seconds before a model's worker is killed"),
    processes: Optional[int] = typer.Option(None, "--processes", min=1, help="fresh worker processes that time each row, samples pooled [default: 3]"),
    max_time: Optional[float] = typer.Option(None, "--max-time", help="stop timing a row after this many seconds"),
    target_ci: Optional[float] = typer.Option(None, "--target-ci", help="time on until the median's 95% CI is within ±this % (or --max-time)"),
    mode: Optional[str] = typer.Option(None, "--mode", help="latency (sync every call) | throughput (blocks of calls)"),
    channels_last: Optional[bool] = typer.Option(None, "--channels-last/--no-channels-last", help="NHWC memory format"),
    compile_mode: Optional[str] = typer.Option(None, "--compile", help="torch.compile: off | default | reduce-overhead | max-autotune"),
    autocast: Optional[bool] = typer.Option(None, "--autocast/--no-autocast", help="float32 weights under torch.autocast(--dtype)"),
    flops_convention: Optional[str] = typer.Option(None, "--flops-convention", help="matmul-only | fvcore"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="result folder [default: results/SUITE/UTC-STAMP]"),
    only: Optional[list[str]] = typer.Option(None, "--only", help="measure only this row (repeatable)"),
    static_only: bool = typer.Option(False, "--static-only", help="params and GFLOPs only; no timing"),
    in_process: bool = typer.Option(False, "--in-process", help="no worker processes (debugging; no timeout)"),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="also write plots/ and report.html at the end"),
) -> None:
    """Measure every model of a suite and print it next to the paper's numbers.

    Each model is built with random weights in its own worker process, counted (params,
    GFLOPs with attention), then timed on the chosen device after warm-up. Results land in
    results/SUITE/UTC-STAMP/ as results.json (canonical), results.csv and results.md,
    rewritten after every model so an interrupted run keeps what it measured; report.html
    and plots/ are added at the end.

    Examples:

      vitbench run suites/lightweight.yaml

      vitbench run suites/lightweight.yaml --only PVTv2-B0 --only ResNet-18 --threads 1

      vitbench run suites/lightweight.yaml --static-only --out /tmp/counts
    """
    from vitbench.cli.console import err, make_progress, print_results
    from vitbench.env import oversubscription_warning
    from vitbench.run.runner import default_out_dir, plan, run_suite
    from vitbench.config.suite import load_suite

    overrides = {k: v for k, v in dict(
        device=device, dtype=dtype, batch_size=batch_size, image_size=_parse_image_size(image_size),
        threads=threads, warmup=warmup, repeat=repeat, min_time_s=min_time, timeout_s=timeout,
        processes=processes,
        flops_convention=flops_convention, max_time_s=max_time, target_ci_pct=target_ci,
        mode=mode, channels_last=channels_last, autocast=autocast,
        compile=_parse_compile(compile_mode)).items() if v is not None}
    if batch_size is not None:
        overrides["batch_size"] = _parse_batch_size(batch_size)
    try:
        from vitbench.config.spec import Settings

        Settings.model_validate(overrides)
    except Exception as exc:  # noqa: BLE001 - pydantic's message, shortened
        first = getattr(exc, "errors", lambda: [{"loc": ("?",), "msg": str(exc)}])()[0]
        field = str(first["loc"][0])
        option = {"target_ci_pct": "target-ci"}.get(field, field.removesuffix("_s").replace("_", "-"))
        raise _fail(f"--{option}: {first['msg'].removeprefix('Value error, ')}")
    try:
        suite = load_suite(suite_path)
        out_dir = out or default_out_dir(suite)
        planned = plan(suite, overrides, only, static_only=static_only)
    except VitbenchError as exc:
        raise _fail(str(exc))
    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _fail(f"--out {out_dir}: cannot create the result folder ({exc.strerror})")
    runnable = [p for p in planned if p.job is not None]
    if runnable and not static_only and runnable[0].job.device == "cpu":
        warning = oversubscription_warning(runnable[0].job.threads)
        if warning:
            err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)

    progress = make_progress()
    task = progress.add_task(suite.name, total=len(planned), detail="")

    def on_event(kind: str, index: int, row, detail: str) -> None:
        if kind == "start":
            progress.update(task, detail=f"{row.name}: starting")
        elif kind == "stage":
            progress.update(task, detail=detail if detail.startswith("writing") else
                            f"{row.name}: {detail}")
        elif kind == "done":
            progress.advance(task)
            progress.update(task, detail=f"{row.name}: {detail}")

    try:
        with progress:
            result = run_suite(suite, out_dir=out_dir, overrides=overrides, only=only,
                               static_only=static_only, in_process=in_process, on_event=on_event,
                               final_formats=("csv", "md", "html", "png", "svg") if plots else ("csv", "md"),
                               command=["vitbench", *sys.argv[1:]])
    except VitbenchError as exc:
        raise _fail(str(exc))
    except KeyboardInterrupt:
        raise _fail(f"interrupted; finished rows are in {out_dir}/results.json", EXIT_INTERRUPTED)
    print_results(result, str(out_dir))
    failed = [r for r in result.results if r.status in ("failed", "timeout")]
    if failed:
        raise typer.Exit(EXIT_ROWS_FAILED)


@app.command()
def validate(
    suite_paths: list[Path] = typer.Argument(..., metavar="SUITE...", help="suite YAML files"),
    check_models: bool = typer.Option(True, "--check-models/--no-check-models",
                                      help="also check every model name exists in its zoo"),
) -> None:
    """Check suite files without measuring anything.

    Reports the first problem of each file as FILE: ENTRY: FIELD: PROBLEM, and unknown model
    names with the closest real ones. Exit code 2 if any file is invalid.

    Example:

      vitbench validate suites/*.yaml
    """
    from vitbench.cli.console import out
    from vitbench.run.runner import check_models as _check_models, plan
    from vitbench.config.suite import load_suite

    bad = 0
    for path in suite_paths:
        try:
            suite = load_suite(path)
            planned = plan(suite)
            if check_models:
                _check_models(planned)
        except VitbenchError as exc:
            bad += 1
            _fail(str(exc))
            continue
        runnable = sum(p.job is not None for p in planned)
        out.print(f"[green]ok[/green] {path}: {len(planned)} rows, {runnable} buildable, "
                  f"{len(planned) - runnable} unavailable", highlight=False)
    if bad:
        raise typer.Exit(EXIT_BAD_INPUT)


@app.command()
def models(
    pattern: str = typer.Argument("*", help="substring or shell pattern, e.g. 'pvt*' or vit_small"),
    zoo: Optional[list[str]] = typer.Option(None, "--zoo", help="timm | torchvision | vitbench (repeatable)"),
) -> None:
    """Search the model zoos for names to put in a suite.

    Examples:

      vitbench models pvt

      vitbench models 'deit_*_384' --zoo timm
    """
    from vitbench.cli.console import out
    from vitbench.build.zoo import list_models

    found = list_models(pattern, zoo)
    total = 0
    for name, names in found.items():
        if not names:
            continue
        total += len(names)
        out.print(f"[bold]{name}[/bold] ({len(names)})")
        for model_name in names:
            out.print(f"  {name}:{model_name}", highlight=False)
    if not total:
        raise _fail(f"no model matches {pattern!r}", 1)


@app.command()
def show(
    results_path: Path = typer.Argument(..., metavar="RESULTS", help="a results.json, or the folder holding it"),
) -> None:
    """Print a saved run's table again (from its canonical results.json).

    Example:

      vitbench show results/lightweight/20261122T010203Z
    """
    from vitbench.cli.console import print_results
    from vitbench.records import RunResult

    path = results_path / "results.json" if results_path.is_dir() else results_path
    try:
        result = RunResult.load(path)
    except VitbenchError as exc:
        raise _fail(str(exc))
    print_results(result, str(path.parent))


def main() -> None:
    """Console-script entry point."""
    app()
