"""``vitbench compare | baseline | ab | gate-selftest``: the CI regression gate.

Exit codes (:class:`vitbench.errors.ExitCode`, the one table for every command): 0 pass
(PASS, WARN, IMPROVED), 1 regression, 2 bad input or usage (an unreadable results or
baseline file, a bad option value), 3 INCONCLUSIVE or NOT_COMPARABLE (``--on-inconclusive``
maps it to 0 or 1), 4 internal error. The decision rules live in :mod:`vitbench.gate`, the
measuring in :mod:`vitbench.gate.ab`, the self-test in :mod:`vitbench.gate.selftest`; each
command here parses its options, calls one of them and writes what it returns.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Optional

import typer

from vitbench.cli.app import app, fail
from vitbench.cli.history import append_to_history, history_baseline_side, history_option
from vitbench.cli.signals import interrupted, signals_interrupt
from vitbench.errors import ExitCode, VitbenchError
from vitbench.files import lock_folder, utc_now, utc_stamp
from vitbench.gate.config import METRIC_ALIASES, METRICS, GateConfig
from vitbench.gate.verdict import DESIGNS, ON_INCONCLUSIVE, GateReport

_DEFAULTS = GateConfig()


def _percent(fraction: float) -> float:
    return round(100 * fraction, 9)


#: The options of ``compare`` and ``ab``, declared once: parameter name → (type, option).
GATE_OPTIONS: dict[str, tuple[Any, Any]] = {
    "markdown": (Optional[Path], typer.Option(None, "--markdown", help="write the Markdown verdict to FILE")),
    "json_out": (Optional[Path], typer.Option(None, "--json", help="write the JSON verdict to FILE")),
    "alpha": (float, typer.Option(_DEFAULTS.alpha, "--alpha", help="family-wise error for FAIL (Holm over all noisy tests)")),
    "delta_cpu": (float, typer.Option(_percent(_DEFAULTS.delta_latency_cpu_frac), "--delta-cpu", help="minimum CPU latency effect, %")),
    "delta_gpu": (float, typer.Option(_percent(_DEFAULTS.delta_latency_cuda_frac), "--delta-gpu", help="minimum GPU latency effect, %")),
    "delta_memory": (float, typer.Option(_percent(_DEFAULTS.delta_memory_cpu_frac), "--delta-memory", help="minimum CPU peak-RSS effect, %")),
    "memory_floor": (float, typer.Option(_DEFAULTS.memory_floor_mib, "--memory-floor", help="CPU peak-RSS effect must also exceed this, MiB")),
    "cuda_memory_tol": (float, typer.Option(_DEFAULTS.cuda_memory_tol_mib, "--cuda-memory-tol", help="CUDA peak-allocated tolerance, MiB")),
    "quantile": (Optional[float], typer.Option(None, "--quantile", help="per-run latency statistic [default: 0.2 CPU, 0.5 GPU]")),
    "metrics": (Optional[str], typer.Option(None, "--metrics", help=f"comma list of {','.join(METRICS)} (or latency, memory) [all]")),
    "on_inconclusive": (Literal["fail", "pass", "regression"], typer.Option("fail", "--on-inconclusive", help="exit for INCONCLUSIVE/NOT_COMPARABLE: fail (3), pass (0), regression (1)")),
}


@dataclass(frozen=True)
class GateOptions:
    """The shared options, parsed: the decision rule, the exit policy and the extra files."""

    config: GateConfig
    on_inconclusive: str
    markdown: Optional[Path]
    json_out: Optional[Path]


def _fraction(option: str, value: Optional[float]) -> Optional[float]:
    if value is not None and not 0 < value < 1:
        raise fail(f"{option}: must be between 0 and 1")
    return value


def parse_gate_options(*, alpha: float, delta_cpu: float, delta_gpu: float, delta_memory: float,
                       memory_floor: float, cuda_memory_tol: float, quantile: Optional[float],
                       metrics: Optional[str], on_inconclusive: str, markdown: Optional[Path],
                       json_out: Optional[Path]) -> GateOptions:
    """Check the values (a bad one exits 2) and convert percent to fractions, once."""
    chosen = [m.strip() for m in metrics.split(",")] if metrics else list(METRICS)
    bad = [m for m in chosen if m not in METRICS and m not in METRIC_ALIASES]
    if bad:
        raise fail(f"--metrics: unknown metric {bad[0]!r}; known: {', '.join(METRICS)} "
                   f"(or {', '.join(METRIC_ALIASES)})")
    if on_inconclusive not in ON_INCONCLUSIVE:
        raise fail(f"--on-inconclusive: expected one of {', '.join(ON_INCONCLUSIVE)}, "
                   f"got {on_inconclusive!r}")
    config = GateConfig(
        alpha=_fraction("--alpha", alpha), delta_latency_cpu_frac=delta_cpu / 100,
        delta_latency_cuda_frac=delta_gpu / 100, delta_memory_cpu_frac=delta_memory / 100,
        memory_floor_mib=memory_floor, cuda_memory_tol_mib=cuda_memory_tol,
        quantile=_fraction("--quantile", quantile),
        metrics=tuple(METRIC_ALIASES.get(m, m) for m in chosen))
    return GateOptions(config, on_inconclusive, markdown, json_out)


def with_gate_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command`` the shared gate options: Typer sees them in its signature, and the
    command receives them parsed as one keyword, ``options: GateOptions``."""
    own = [p for p in inspect.signature(command, eval_str=True).parameters.values()
           if p.name != "options"]
    shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                annotation=kind) for name, (kind, option) in GATE_OPTIONS.items()]

    @functools.wraps(command)
    def with_options(**values: Any) -> None:
        parsed = parse_gate_options(**{name: values.pop(name) for name in GATE_OPTIONS})
        return command(**values, options=parsed)

    with_options.__signature__ = inspect.Signature([*own, *shared])  # type: ignore[attr-defined]
    return with_options


def _written(what: Callable[[], Any]) -> Any:
    """Run a write; a disk vitbench cannot write is its own failure (4), not bad input."""
    try:
        return what()
    except OSError as exc:
        raise fail(f"cannot write {exc.filename or 'the output'}: {exc.strerror or exc}",
                   ExitCode.ERROR) from None


def _emit(report: GateReport, out_dir: Optional[Path], options: GateOptions) -> int:
    """Print the verdict, write the files asked for, return the exit code."""
    from rich.markdown import Markdown

    from vitbench.cli.console import out as console
    from vitbench.gate import to_markdown, write_report, write_verdict_json, write_verdict_markdown

    policy = options.on_inconclusive
    console.print(Markdown(to_markdown(report, policy)))
    if out_dir is not None:
        paths = _written(lambda: write_report(report, out_dir, policy))
        console.print(f"written: {paths[0]}, {paths[1]}", markup=False, highlight=False)
    if options.markdown is not None:
        _written(lambda: write_verdict_markdown(report, options.markdown, policy))
    if options.json_out is not None:
        _written(lambda: write_verdict_json(report, options.json_out, policy))
    return report.exit_code(policy)


@app.command()
@with_gate_options
def compare(
    baseline: Path = typer.Argument(..., metavar="BASELINE", help="a baseline file (vitbench baseline), a results.json, or history:FILTER (the last N comparable runs of the history database; docs/history.md)"),
    candidate: list[Path] = typer.Argument(..., metavar="CANDIDATE...", help="results.json file(s) (one per run), or a baseline file"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="write verdict.json and verdict.md to DIR"),
    history: Optional[str] = history_option("history database that history:FILTER reads [default: $VITBENCH_HISTORY, else results/history.sqlite]"),
    *, options: GateOptions,
) -> None:
    """Gate a candidate against a stored baseline (the weaker mode).

    Params and GFLOPs are compared exactly; latency and CPU peak RSS with a run-level
    Mann–Whitney test whose minimum effect is widened to 3× the between-run spread the
    baseline recorded. Exit 0 pass, 1 regression, 2 bad input, 3 inconclusive/not
    comparable, 4 internal error.

    Examples:

    \b
      vitbench compare results/baselines/ci-smoke.json \\
          /tmp/smoke/results.json --metrics params,gflops
      vitbench compare base.json run1/results.json run2/results.json \\
          --markdown verdict.md
      vitbench compare history:last=10 run1/results.json
    """
    from vitbench.gate import compare_sides, load_side

    try:
        base = (history_baseline_side(history, str(baseline)[len("history:"):], candidate,
                                      options.config.quantile)
                if str(baseline).startswith("history:") else load_side([baseline], "baseline"))
        report = compare_sides(base, load_side(candidate, "candidate"),
                               options.config, mode="compare")
    except VitbenchError as exc:  # an empty history is INCONCLUSIVE (3, --on-inconclusive)
        code = exc.exit_code
        if code == ExitCode.INCONCLUSIVE:
            code = ON_INCONCLUSIVE[options.on_inconclusive]
        raise fail(str(exc), code) from None
    raise typer.Exit(_emit(report, out, options))


@app.command()
def baseline(
    results_paths: list[Path] = typer.Argument(..., metavar="RESULTS...", help="results.json files (one per run) or their folders"),
    out: Path = typer.Option(..., "--out", "-o", help="baseline file to write, e.g. results/baselines/SUITE.json"),
    quantile: Optional[float] = typer.Option(None, "--quantile", help="also store this per-run quantile (0.2 and 0.5 always are)"),
) -> None:
    """Build a baseline file (vitbench.baseline/1) from K runs of a suite.

    It keeps, per model, the deterministic metrics and one summary per run (latency
    quantiles of each run's samples, peak memory), so `vitbench compare` can judge a
    candidate against the between-run spread of those K runs.

    Example:

    \b
      vitbench baseline results/ci-smoke/*/results.json --out \\
          results/baselines/ci-smoke.json
    """
    from vitbench.cli.console import out as console
    from vitbench.gate import build_baseline, load_results

    quantiles = [q] if (q := _fraction("--quantile", quantile)) else []
    try:
        built = build_baseline(load_results(results_paths), [str(p) for p in results_paths],
                               quantiles, created_utc=utc_now())
    except VitbenchError as exc:
        raise fail(str(exc)) from None
    _written(lambda: built.save(out))
    console.print(f"baseline: {len(built.models)} models, {built.runs} run(s) → {out}",
                  markup=False, highlight=False)


@app.command()
@with_gate_options
def ab(
    suite_a: Path = typer.Argument(..., metavar="SUITE_A", help="baseline suite YAML"),
    suite_b: Path = typer.Argument(..., metavar="SUITE_B", help="candidate suite YAML (rows matched by name)"),
    runs: int = typer.Option(12, "--runs", "-n", min=2, help="rounds (lockstep) or fresh runs per side"),
    design: Literal["lockstep", "runs"] = typer.Option("lockstep", "--design", help="lockstep: A and B workers timed in alternating blocks, paired per round (robust to a drifting machine); runs: whole-suite fresh runs per side, A B B A"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="folder for the runs and the verdict [default: results/ab/UTC-STAMP]"),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads (1 recommended on small shared machines)"),
    repeat: Optional[int] = typer.Option(None, "--repeat", min=1, help="timed iterations per model per run"),
    confirm: bool = typer.Option(True, "--confirm/--no-confirm", help="re-measure failing models before a noisy FAIL counts"),
    seed: int = typer.Option(0, "--seed", help="seed of the per-run row order"),
    runtime_a: Optional[str] = typer.Option(None, "--runtime-a", help="run every row of side A on this runtime (eager, compile, onnxruntime, openvino, tensorrt) [default: the suite's]"),
    runtime_b: Optional[str] = typer.Option(None, "--runtime-b", help="run every row of side B on this runtime: the same suite on two runtimes gives B's speed-up over A per row"),
    history: Optional[str] = history_option("history database each side's runs are appended to: a SQLite path, a postgresql+psycopg:// URL, or off [default: $VITBENCH_HISTORY, else results/history.sqlite]"),
    *, options: GateOptions,
) -> None:
    """Measure two suites side by side and gate B against A.

    The strong mode. Params/GFLOPs are counted once per side. Then, in each of --runs
    rounds, every model gets a fresh A worker and a fresh B worker that are timed in
    alternating ~0.1 s blocks (A B B A …), so both see the same machine second by second;
    the round gives one ratio B/A, and the rounds are tested with an exact Wilcoxon
    signed-rank test. A calibration probe (GEMM + 3×3 conv) is timed against itself every
    round as an A/A control. A noisy FAIL is confirmed by re-measuring only the failing
    models. `--design runs` uses whole fresh suite runs per side instead. Exit codes as
    `vitbench compare`.

    Example:

    \b
      vitbench ab suites/main.yaml suites/pr.yaml --runs 12 --threads 1 \\
          --markdown verdict.md
      vitbench ab suites/lightweight.yaml suites/lightweight.yaml \\
          --runtime-a eager --runtime-b openvino --runs 12 --threads 1
    """
    from rich.markup import escape

    from vitbench.cli.console import err
    from vitbench.config.suite import load_suite
    from vitbench.gate.ab import run_ab, too_few_runs_warning

    if design not in DESIGNS:
        raise fail(f"--design: 'lockstep' or 'runs', not {design!r}")
    overrides = {k: v for k, v in dict(threads=threads, repeat=repeat).items() if v is not None}
    out_dir = out or Path("results") / "ab" / utc_stamp()
    try:
        a, b = load_suite(suite_a), load_suite(suite_b)
        a, b = _on_runtimes(a, runtime_a, b, runtime_b, overrides)
        warning = too_few_runs_warning(a, b, runs, options.config.alpha, design)
        if warning:
            err.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)
        # the folder is ours until the verdict is written; SIGTERM/SIGHUP stop as Ctrl-C does
        with lock_folder(out_dir), signals_interrupt():
            report, _ = run_ab(a, b, runs, out_dir, overrides=overrides, config=options.config,
                               confirm_failures=confirm, seed=seed, design=design,
                               progress=lambda m: err.print(m, markup=False, highlight=False))
            made = sorted(out_dir.glob("**/results.json"))
            append_to_history(history, made, kind="ab",
                              labels=[str(p.parent.relative_to(out_dir)) for p in made])
            code = _emit(report, out_dir, options)
    except VitbenchError as exc:  # a DiskError keeps its exit code 4
        raise fail(str(exc), exc.exit_code) from None
    except KeyboardInterrupt as exc:  # the workers are killed; finished rounds are on disk
        raise interrupted(exc, kept_rounds(out_dir)) from None
    raise typer.Exit(code)


def _on_runtimes(a, runtime_a: Optional[str], b, runtime_b: Optional[str],
                 overrides: dict[str, Any]) -> tuple:
    """The sides on their ``--runtime-a``/``--runtime-b``, checked before anything runs."""
    from vitbench.config.plan import plan, with_runtime
    from vitbench.config.spec import RUNTIMES
    from vitbench.measure.runtimes import check_runtimes

    for flag, value in (("--runtime-a", runtime_a), ("--runtime-b", runtime_b)):
        if value is not None and value not in RUNTIMES:
            raise fail(f"{flag}: expected one of {', '.join(RUNTIMES)}, got {value!r}")
    a, b = with_runtime(a, runtime_a), with_runtime(b, runtime_b)
    for side in (a, b):
        planned = plan(side, overrides)
        if len({(p.row.name, p.row.batch_size) for p in planned}) != len(planned):
            raise fail(f"suite {side.name}: a row runs on several runtimes; ab compares one "
                       "runtime per side: give --runtime-a and --runtime-b")
        check_runtimes((p.row.name, p.job) for p in planned if p.job is not None)
    return a, b


def kept_rounds(out_dir: Path) -> str:
    """What an interrupted ``ab`` left in ``out_dir``, for its one line: its complete
    lockstep rounds (or fresh runs), else the static counts, else nothing."""
    import json

    def complete(path: Path) -> bool:
        try:
            return json.loads(path.read_text(encoding="utf-8")).get("complete") is True
        except (OSError, ValueError, AttributeError):
            return False

    done = {p.parent.name.rsplit("-", 1)[0]
            for p in out_dir.glob("stage*-*-[AB]/results.json") if complete(p)}
    if done:
        kind = "round" if any("round" in name for name in done) else "run"
        return f"{len(done)} finished {kind}(s) kept in {out_dir}"
    if any(out_dir.glob("static-[AB]/results.json")):
        return f"no round finished; the params and GFLOPs counted are in {out_dir}"
    return "nothing was measured"


@app.command("gate-selftest")
def gate_selftest(
    runs: int = typer.Option(12, "--runs", "-n", min=2, help="real lockstep rounds (or runs per side with --design runs)"),
    design: Literal["lockstep", "runs"] = typer.Option("lockstep", "--design", help="lockstep or runs (as `vitbench ab`)"),
    inject: str = typer.Option("aa,lat10,lat20,mem8,linear", "--inject", help="rows: aa,lat5,lat10,lat20,mem8,linear"),
    from_dir: Optional[Path] = typer.Option(None, "--from", help="re-analyse a previous selftest/ab folder instead of measuring"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="folder for runs and selftest.json [default: results/gate-selftest/UTC-STAMP]"),
    repeat: int = typer.Option(20, "--repeat", min=5, help="timed iterations per model per run"),
    trials: int = typer.Option(2000, "--trials", min=10, help="resampled trials per injected shift"),
    n: int = typer.Option(12, "--n", min=2, help="runs per side in the resampled trials (capped by the pool)"),
    family: int = typer.Option(10, "--family", min=1, help="noisy tests per invocation simulated by the resampling (Holm's first step α/M)"),
    alpha: float = GATE_OPTIONS["alpha"][1], quantile: Optional[float] = GATE_OPTIONS["quantile"][1],
) -> None:
    """Measure the gate's own false-alarm rate, inconclusive rate and power.

    (1) A real A/A + A/B `ab` run through the fixture model vitbench:gate_fixture:
    row `aa` is unchanged, `lat5/10/20` add calibrated extra work (+5/10/20 % latency),
    `mem8` holds an extra 8 MiB tensor, `linear` adds an nn.Linear. (2) The decision rule
    on many resampled trials built from the *measured* values of rows whose latency did
    not change (lockstep: their per-round ratios, shifted by 1+x; runs: disjoint sets of
    run-level latencies, the candidate multiplied by 1+x).

    Example (about 15 minutes on a quiet 2-core machine):

      vitbench gate-selftest --runs 12 --inject aa,lat10,lat20,mem8,linear
    """
    from vitbench.cli.console import err, out as console
    from vitbench.gate.selftest import run_selftest, summary_lines

    if design not in DESIGNS:
        raise fail(f"--design: 'lockstep' or 'runs', not {design!r}")
    config = GateConfig(alpha=_fraction("--alpha", alpha), quantile=_fraction("--quantile", quantile))
    out_dir = out or Path("results") / "gate-selftest" / utc_stamp()
    rows = [r.strip() for r in inject.split(",") if r.strip()]
    try:
        with signals_interrupt():  # SIGTERM/SIGHUP stop it as Ctrl-C does
            result = _written(lambda: run_selftest(
                rows, out_dir, runs=runs, design=design, from_dir=from_dir, repeat=repeat,
                trials=trials, n=n, family=family, config=config,
                progress=lambda m: err.print(m, markup=False, highlight=False)))
    except VitbenchError as exc:  # a DiskError keeps its exit code 4
        raise fail(str(exc), exc.exit_code) from None
    except KeyboardInterrupt as exc:  # the workers are killed; finished rounds are on disk
        raise interrupted(exc, kept_rounds(out_dir)) from None
    for line in summary_lines(result):
        console.print(line, highlight=False)
