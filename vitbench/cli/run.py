"""``vitbench run``: measure a suite. Its setting options are generated from the suite
settings (:func:`vitbench.config.spec.setting`: default, help and flag declared once)."""

from __future__ import annotations

import contextlib
import inspect
import sys
import time
import typing
from pathlib import Path
from typing import Any, Callable, Literal, Optional

import typer

from vitbench.cli.app import app, fail, parse_image_size
from vitbench.cli.history import append_to_history, history_option
from vitbench.cli.ray_run import (ADDRESS_HELP, EACH_NODE_TYPE_HELP, EXECUTOR_HELP,
                                  each_type_runner, executor_for)
from vitbench.config.spec import Settings
from vitbench.cli.scale import (MAX_RUN_TIME_HELP, REFERENCES_COLUMNS_HELP, REFERENCES_HELP,
                                deadline_hook, parse_duration, with_references)
from vitbench.cli.signals import signals_interrupt
from vitbench.errors import ExitCode, VitbenchError, signal_name_of


def parse_batch_size(value: str) -> Any:
    """``8`` → 8, ``1,8,64`` → [1, 8, 64], ``max`` → "max"."""
    text = value.strip().lower()
    if text == "max":
        return "max"
    try:
        numbers = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        numbers = []
    if not numbers:
        raise typer.BadParameter(f"expected N, N,N,… or max, got {value!r}")
    return numbers[0] if len(numbers) == 1 and "," not in text else numbers


def parse_compile(value: str) -> Any:
    """``off`` → False, else a torch.compile mode."""
    text = value.strip().lower()
    if text in ("off", "false", "no", "none"):
        return False
    if text not in ("default", "reduce-overhead", "max-autotune"):
        raise typer.BadParameter(
            f"expected off, default, reduce-overhead or max-autotune, got {value!r}")
    return text


def parse_runtime(value: str) -> Any:
    """``openvino`` → "openvino", ``eager,onnxruntime`` → ["eager", "onnxruntime"]."""
    from vitbench.config.spec import RUNTIMES

    names = [p.strip().lower() for p in value.split(",") if p.strip()]
    bad = [n for n in names if n not in RUNTIMES]
    if not names or bad:
        raise typer.BadParameter(f"expected one or more of {', '.join(RUNTIMES)} (comma "
                                 f"separated), got {value!r}")
    return names[0] if len(names) == 1 else names


#: Settings whose command-line spelling is text parsed into the setting's value.
PARSERS: dict[str, Callable[[str], Any]] = {
    "image_size": parse_image_size, "batch_size": parse_batch_size, "compile": parse_compile,
    "runtime": parse_runtime}
SHORT_FLAGS = {"batch_size": "-b"}


def _cli_type(name: str, annotation: Any) -> Any:
    if name in PARSERS:
        return str
    inner = [a for a in typing.get_args(annotation) if a is not type(None)]
    for kind in inner:
        if typing.get_origin(kind) is typing.Literal:
            return kind  # choices validate at parse time and complete in the shell
    for kind in (bool, int, float):
        if kind in inner:
            return kind
    return str


def setting_options() -> list[inspect.Parameter]:
    """One keyword option per setting that declares a flag, help and default from the spec."""
    params = []
    for name, field in Settings.model_fields.items():
        extra = field.json_schema_extra or {}
        flag = extra.get("flag")
        if not flag:
            continue
        kind = _cli_type(name, field.annotation)
        shown = extra.get("default_text", extra["builtin"])
        if shown is False:
            shown = "off"
        decls = [f"{flag}/--no-{flag[2:]}" if kind is bool else flag]
        if name in SHORT_FLAGS:
            decls.append(SHORT_FLAGS[name])
        option = typer.Option(None, *decls, help=f"{field.description} [default: {shown}]", show_default=False)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                        annotation=Optional[kind]))
    return params


def _flag_of(field: str) -> str:
    extra = Settings.model_fields[field].json_schema_extra or {} if field in Settings.model_fields else {}
    return extra.get("flag") or f"--{field}"


def settings_overrides(options: dict[str, Any]) -> dict[str, Any]:
    """The settings given on the command line, parsed and validated like a suite's."""
    overrides = {}
    for name, value in options.items():
        if value is None:
            continue
        overrides[name] = PARSERS[name](value) if name in PARSERS else value
    try:
        Settings.model_validate(overrides)
    except Exception as exc:  # noqa: BLE001 - pydantic's message, shortened to one line
        first = getattr(exc, "errors", lambda: [{"loc": ("?",), "msg": str(exc)}])()[0]
        raise fail(f"{_flag_of(str(first['loc'][0]))}: "
                   f"{first['msg'].removeprefix('Value error, ')}") from None
    return overrides


def models_suite(models: list[str], overrides: dict[str, Any]):
    """The suite of ``--model`` names: each at its zoo's default input size unless
    ``--image-size`` says otherwise."""
    from vitbench.build.patterns import expand_patterns
    from vitbench.build.zoo import default_image_size
    from vitbench.config.adhoc import qualified, suite_for_models

    models = expand_patterns(models)  # 'timm:vit_*' → every matching name, sorted
    sizes = {} if "image_size" in overrides else {
        m: size for m in map(qualified, models) if (size := default_image_size(m))}
    return suite_for_models(models, image_sizes=sizes)


def save_suite_file(suite, overrides: dict[str, Any], path: Path) -> None:
    """Write the suite as it ran: command-line settings folded into its defaults and into
    every row that set them itself (overrides win over rows, as they did in the run)."""
    from vitbench.config.adhoc import suite_yaml
    from vitbench.files import write_atomic

    defaults = suite.defaults.model_copy(update=overrides)
    rows = [entry.model_copy(update={k: v for k, v in overrides.items()
                                     if getattr(entry, k, None) is not None})
            for entry in suite.models]
    write_atomic(path, suite_yaml(suite.model_copy(update={"defaults": defaults, "models": rows})))


def resume_folder(folder: Path, out: Optional[Path], force: bool, suite, overrides, planned,
                  static_only: bool, in_process: bool):
    """``--resume DIR``: (DIR, its lock, the run to continue) once the settings are checked,
    or (DIR, None, that run) after saying so when it is finished."""
    from vitbench.cli.console import err
    from vitbench.run.resume import check_resume, claim_for_resume, nothing_to_resume
    from vitbench.run.runner import suite_fingerprint

    if force or (out is not None and Path(out).resolve() != Path(folder).resolve()):
        raise fail(f"--resume {folder} writes into {folder}: leave out "
                   f"{'--force' if force else '--out'}")
    lock, previous = claim_for_resume(folder)
    try:
        check_resume(previous, folder, fingerprint=suite_fingerprint(suite), overrides=overrides,
                     planned=planned, static_only=static_only, in_process=in_process)
    except BaseException:
        lock.release()
        raise
    if nothing_to_resume(previous):
        lock.release()
        err.print(f"nothing to resume: every row of {folder / 'results.json'} is finished "
                  f"({len(previous.results)} rows)", highlight=False, markup=False,
                  soft_wrap=True)
        return folder, None, previous
    return folder, lock, previous


def run(
    suite_path: Optional[Path] = typer.Argument(None, metavar="SUITE", help="suite YAML, e.g. suites/lightweight.yaml (or use --model)"),
    model: Optional[list[str]] = typer.Option(None, "--model", "-m", metavar="NAME", help="measure this model without a suite file: zoo:name, a bare name meaning timm, or a pattern such as 'timm:vit_*' (every match) (repeatable); each at its zoo's default input size unless --image-size"),
    save_suite: Optional[Path] = typer.Option(None, "--save-suite", help="also write what ran as a suite YAML (command-line settings folded in), to re-run or commit"),
    references: Optional[Path] = typer.Option(None, "--references", metavar="CSV", help=REFERENCES_HELP),
    references_columns: Optional[str] = typer.Option(None, "--references-columns", metavar="MAP", help=REFERENCES_COLUMNS_HELP),
    max_run_time: Optional[str] = typer.Option(None, "--max-run-time", metavar="DURATION", help=MAX_RUN_TIME_HELP),
    json_output: bool = typer.Option(False, "--json", help="print the run as one JSON document (the results.json schema) on stdout instead of the table"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no table and no progress; errors and warnings only (the exit code says how it went)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="result folder [default: results/SUITE/UTC-STAMP]"),
    only: Optional[list[str]] = typer.Option(None, "--only", metavar="ROW", help="measure only this row (repeatable)"),
    static_only: bool = typer.Option(False, "--static-only", help="params and GFLOPs only; no timing"),
    in_process: bool = typer.Option(False, "--in-process", help="no worker processes (debugging; no timeout)"),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="also write plots/ and report.html at the end"),
    force: bool = typer.Option(False, "--force", help="--out may hold a previous run: replace it (its results, reports and plots are removed first)"),
    executor: Literal["local", "ray"] = typer.Option("local", "--executor", help=EXECUTOR_HELP),
    address: Optional[str] = typer.Option(None, "--address", metavar="ADDRESS", help=ADDRESS_HELP),
    each_node_type: bool = typer.Option(False, "--each-node-type", help=EACH_NODE_TYPE_HELP),
    resume: Optional[Path] = typer.Option(None, "--resume", metavar="DIR", help="finish the interrupted run in DIR: its finished rows are kept, the rest measured, DIR updated; give the suite and settings it started with"),
    history: Optional[str] = history_option(),
    reference_model: Optional[str] = typer.Option(None, "--reference-model", metavar="NAME", help="time each row's extra processes against this model in alternating blocks, for a relative latency that repeats on a drifting machine ('none': off) [default: the suite's reference_model, else timm:resnet18]"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="after the table, where the time went: start-up, build, warm-up, timing, counting, each pass, reports"),
    **settings: Any,
) -> None:
    """Measure every model of a suite (or the --model names) and print it next to the
    paper's numbers.

    Each model is built with random weights in its own worker process, counted (params,
    GFLOPs with attention), then timed on the chosen device after warm-up. Results land in
    results/SUITE/UTC-STAMP/ as results.json (canonical), results.csv and results.md,
    rewritten after every model so an interrupted run keeps what it measured; report.html
    and plots/ are added at the end. Exit 0: every row measured (rows the suite marks
    unavailable are expected); 1: some rows failed, or were not started before
    --max-run-time passed (finished rows kept); 2: bad input, or an --out that holds
    another run (without --force) or is in use by one; 4: a file could not be written (a
    full disk: the run stops, and the line says where every measured row is); 130, 143,
    129: stopped by Ctrl-C, SIGTERM, SIGHUP (finished rows kept, the rest marked interrupted).
    --resume DIR finishes such a run (or one killed outright) with the same suite and
    settings: finished rows kept, the rest measured, DIR updated; other settings exit 2.

    Examples:

    \b
      vitbench run suites/lightweight.yaml
      vitbench run suites/lightweight.yaml --only PVTv2-B0 --only ResNet-18 \\
          --threads 1
      vitbench run suites/lightweight.yaml --static-only --out /tmp/counts \\
          --force
      vitbench run --model timm:pvt_v2_b0 --model resnet18 --save-suite \\
          mine.yaml
      vitbench run --model timm:resnet18 --static-only --json > resnet18.json
      vitbench run --model 'timm:vit_*' --model 'timm:pvt_v2_*' --static-only \\
          --references benchmark-infer-amp-nchw-pt240-cu124-rtx4090.csv \\
          --max-run-time 2h
      vitbench run suites/lightweight.yaml --resume results/lightweight/STAMP
    """
    from rich.markup import escape

    from vitbench.cli.console import err, print_results, suite_progress
    from vitbench.config.suite import load_suite
    from vitbench.env import oversubscription_warning
    from vitbench.errors import RunStoppedError
    from vitbench.files import cause_of, claim_run_folder
    from vitbench.report import report_sink
    from vitbench.measure.runtimes import check_runtimes
    from vitbench.run.runner import (check_devices, default_out_dir, plan, reference_for,
                                     run_suite)

    started = time.monotonic()  # --max-run-time counts from here
    overrides = settings_overrides(settings)
    measure_on = executor_for(executor, address, each_node_type, in_process)  # None: here
    if (suite_path is None) == (not model):
        raise fail("give a SUITE file or --model NAME (one or more), not both" if model
                   else "missing SUITE: give a suite file, or --model NAME to measure one model")
    try:
        suite = load_suite(suite_path) if suite_path is not None else models_suite(model, overrides)
        suite, references_line = with_references(suite, references, references_columns, overrides)
        time_limit = parse_duration(max_run_time) if max_run_time is not None else None
        deadline = deadline_hook(time_limit, max_run_time, started)
        planned = plan(suite, overrides, only, static_only=static_only)
        check_devices(planned)  # before the result folder exists or any model is built
        check_runtimes((p.row.name, p.job) for p in planned if p.job is not None)
        if not (static_only or in_process):  # an unknown reference: exit 2, no folder made
            reference_for(suite, planned, overrides, reference_model)
        previous = None
        if resume is not None:
            out_dir, lock, previous = resume_folder(resume, out, force, suite, overrides, planned,
                                                    static_only, in_process)
            if lock is None:  # nothing left to measure
                if json_output:
                    typer.echo(previous.to_json())
                return
        else:
            out_dir = Path(out) if out is not None else default_out_dir(suite)
            lock = claim_run_folder(out_dir, replace=force)  # released when the run ends
    except VitbenchError as exc:
        raise fail(str(exc), exc.exit_code) from None
    except OSError as exc:  # the default results/SUITE/STAMP cannot be created
        raise fail(f"cannot create the result folder {exc.filename} ({cause_of(exc)}): "
                   f"choose one with --out") from None
    runnable = [p.job for p in planned if p.job is not None]
    if runnable and not static_only and runnable[0].device == "cpu":
        warning = oversubscription_warning(runnable[0].threads)
        if warning:
            err.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False,
                      soft_wrap=True)

    if save_suite is not None:
        try:
            save_suite_file(suite, overrides, save_suite)
        except VitbenchError as exc:
            lock.release()
            raise fail(str(exc), exc.exit_code) from None
    if references_line and not quiet:
        err.print(references_line, highlight=False, markup=False, soft_wrap=True)
    later = 0 if static_only or in_process or measure_on is not None else sum(  # later passes
        p.job.processes - 1 for p in planned if p.job is not None)
    progress, on_event = suite_progress(suite.name, len(planned),
                                        measured=sum(p.job is not None for p in planned),
                                        extra=later)
    if quiet or json_output:  # the log lines would be noise around a JSON document too
        progress, on_event = contextlib.nullcontext(), None
    final = ("csv", "md", "html", "png", "svg") if plots else ("csv", "md")
    try:
        with signals_interrupt(), progress:
            runner = each_type_runner(address, final) if each_node_type else run_suite
            result = runner(suite, out_dir=out_dir, overrides=overrides, only=only,
                               static_only=static_only, in_process=in_process,
                               on_event=on_event, sink=report_sink(out_dir, final),
                               executor=measure_on,
                               command=["vitbench", *sys.argv[1:]], resume=previous,
                               **({"reference_model": reference_model} if reference_model else {}),
                               **({"should_stop": deadline} if deadline else {}))
    except RunStoppedError as exc:  # the disk refused results.json: show what was measured
        print_results(exc.run)
        raise fail(str(exc), exc.exit_code) from None
    except VitbenchError as exc:
        raise fail(str(exc), exc.exit_code) from None
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (signals_interrupt)
        saved = out_dir / "results.json"
        where = f"finished rows are in {saved}" if saved.is_file() else "nothing was measured"
        raise fail(f"interrupted by {signal_name_of(exc)}; {where}",
                   getattr(exc, "exit_code", ExitCode.INTERRUPTED)) from None
    finally:
        lock.release()  # every write is done (also released if this process dies)
    if json_output:
        typer.echo(result.to_json())
    elif not quiet:
        print_results(result, str(out_dir))
    for warning in result.environment.get("warnings", []):
        if warning.startswith("reports: "):  # a report or plot the disk refused at the end
            err.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False,
                      soft_wrap=True)
    if verbose and not json_output:
        print_time_breakdown(result, time.monotonic() - started)
    append_to_history(history, [out_dir / "results.json"], quiet=quiet or json_output)
    not_started = sum(r.status == "interrupted" for r in result.results)
    if deadline is not None and deadline.fired:  # one line; exit 1 if rows were not started
        what = (f"{not_started} rows not started (marked interrupted)" if not_started else
                "the later timing passes stopped (rows say in how many processes they were timed)")
        err.print(f"--max-run-time {max_run_time} passed: {what}; finished rows are in "
                  f"{out_dir / 'results.json'} (the same command with --resume {out_dir} "
                  f"measures the rest)", highlight=False, markup=False, soft_wrap=True)
    if any(r.status in ("failed", "timeout", "interrupted") for r in result.results):
        raise typer.Exit(ExitCode.FAILED)


def print_time_breakdown(result, wall_s: float) -> None:
    """``--verbose``: where the run's time went (``environment["time_breakdown_s"]``)."""
    from vitbench.cli.console import err

    breakdown = result.environment.get("time_breakdown_s") or {}
    err.print(f"time: {wall_s:.1f} s in all", highlight=False, markup=False)
    for name, seconds in breakdown.items():
        share = f" ({100 * seconds / wall_s:.0f} %)" if wall_s > 0 else ""
        err.print(f"  {name}: {seconds:.1f} s{share}", highlight=False, markup=False)


run.__signature__ = inspect.Signature([
    *(p for p in inspect.signature(run, eval_str=True).parameters.values()
      if p.kind != p.VAR_KEYWORD),
    *setting_options()])
app.command()(run)
