"""``vitbench compare | baseline | ab | gate-selftest``: the CI regression gate.

Exit codes of compare/ab: 0 pass, 1 regression, 2 inconclusive or not comparable (see
``--on-inconclusive``), 3 tool error (unreadable input, bad option value). The decision
rules live in :mod:`vitbench.gate`, the measuring in :mod:`vitbench.gate.ab`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from vitbench.files import utc_now, utc_stamp
import typer

from vitbench.cli.app import app

EXIT_TOOL_ERROR = 3
_ON_INCONCLUSIVE = ("fail", "pass", "regression")
_METRICS = ("params", "gflops", "latency", "memory")


def _tool_error(message: str) -> typer.Exit:
    from vitbench.cli.app import _fail

    return _fail(message, EXIT_TOOL_ERROR)


def _config(alpha: float, delta_cpu: float, delta_gpu: float, delta_memory: float,
            memory_floor: float, cuda_memory_tol: float, quantile: Optional[float],
            metrics: Optional[str]):
    from vitbench.gate import GateConfig

    chosen = tuple(m.strip() for m in metrics.split(",")) if metrics else _METRICS
    bad = [m for m in chosen if m not in _METRICS]
    if bad:
        raise _tool_error(f"--metrics: unknown metric {bad[0]!r}; known: {', '.join(_METRICS)}")
    if not 0 < alpha < 1:
        raise _tool_error("--alpha: must be between 0 and 1")
    if quantile is not None and not 0 < quantile < 1:
        raise _tool_error("--quantile: must be between 0 and 1")
    return GateConfig(alpha=alpha, delta_latency_cpu=delta_cpu / 100,
                      delta_latency_cuda=delta_gpu / 100, delta_memory_cpu=delta_memory / 100,
                      memory_floor_mb=memory_floor, cuda_memory_tol_mb=cuda_memory_tol,
                      quantile=quantile, metrics=chosen)


def _check_on_inconclusive(value: str) -> str:
    if value not in _ON_INCONCLUSIVE:
        raise _tool_error(f"--on-inconclusive: expected one of {', '.join(_ON_INCONCLUSIVE)}, "
                          f"got {value!r}")
    return value


def _emit(report, out: Optional[Path], markdown: Optional[Path], json_out: Optional[Path],
          on_inconclusive: str) -> int:
    from rich.markdown import Markdown

    from vitbench.cli.console import out as console
    from vitbench.gate import to_markdown, write_report

    text = to_markdown(report, on_inconclusive)
    console.print(Markdown(text))
    if out is not None:
        paths = write_report(report, out, on_inconclusive)
        console.print(f"written: {paths[0]}, {paths[1]}", highlight=False)
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(text, encoding="utf-8")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        data = report.to_dict()
        data["exit_code"] = report.exit_code(on_inconclusive)
        json_out.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return report.exit_code(on_inconclusive)


# Shared options (typer needs them spelled out per command).
_ALPHA = typer.Option(0.01, "--alpha", help="family-wise error for FAIL (Holm over all noisy tests)")
_DCPU = typer.Option(5.0, "--delta-cpu", help="minimum CPU latency effect, %")
_DGPU = typer.Option(2.0, "--delta-gpu", help="minimum GPU latency effect, %")
_DMEM = typer.Option(5.0, "--delta-memory", help="minimum CPU peak-RSS effect, %")
_FLOOR = typer.Option(4.0, "--memory-floor", help="CPU peak-RSS effect must also exceed this, MiB")
_CUDATOL = typer.Option(0.0, "--cuda-memory-tol", help="CUDA peak-allocated tolerance, MiB")
_QUANT = typer.Option(None, "--quantile", help="per-run latency statistic [default: 0.2 CPU, 0.5 GPU]")
_METRICS_OPT = typer.Option(None, "--metrics", help="comma list of params,gflops,latency,memory [all]")
_ONINC = typer.Option("fail", "--on-inconclusive",
                      help="exit for INCONCLUSIVE/NOT_COMPARABLE: fail (2), pass (0), regression (1)")
_MD = typer.Option(None, "--markdown", help="write the Markdown verdict to FILE")
_JSON = typer.Option(None, "--json", help="write the JSON verdict to FILE")


@app.command()
def compare(
    baseline: Path = typer.Argument(..., metavar="BASELINE", help="a baseline file (vitbench baseline) or a results.json"),
    candidate: list[Path] = typer.Argument(..., metavar="CANDIDATE...", help="results.json file(s) (one per run), or a baseline file"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="write verdict.json and verdict.md to DIR"),
    markdown: Optional[Path] = _MD, json_out: Optional[Path] = _JSON,
    alpha: float = _ALPHA, delta_cpu: float = _DCPU, delta_gpu: float = _DGPU,
    delta_memory: float = _DMEM, memory_floor: float = _FLOOR, cuda_memory_tol: float = _CUDATOL,
    quantile: Optional[float] = _QUANT, metrics: Optional[str] = _METRICS_OPT,
    on_inconclusive: str = _ONINC,
) -> None:
    """Gate a candidate against a stored baseline (the weaker mode).

    Params and GFLOPs are compared exactly; latency and CPU peak RSS with a run-level
    Mann–Whitney test whose minimum effect is widened to 3× the between-run spread the
    baseline recorded. Exit 0 pass, 1 regression, 2 inconclusive/not comparable, 3 error.

    Examples:

      vitbench compare results/baselines/ci-smoke.json /tmp/smoke/results.json --metrics params,gflops

      vitbench compare base.json run1/results.json run2/results.json --markdown verdict.md
    """
    from vitbench.errors import VitbenchError
    from vitbench.gate import compare_sides, load_side

    on_inconclusive = _check_on_inconclusive(on_inconclusive)
    config = _config(alpha, delta_cpu, delta_gpu, delta_memory, memory_floor, cuda_memory_tol,
                     quantile, metrics)
    try:
        base = load_side([baseline], "baseline")
        cand = load_side(candidate, "candidate")
        report = compare_sides(base, cand, config, mode="compare")
    except VitbenchError as exc:
        raise _tool_error(str(exc))
    raise typer.Exit(_emit(report, out, markdown, json_out, on_inconclusive))


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

      vitbench baseline results/ci-smoke/*/results.json --out results/baselines/ci-smoke.json
    """
    from vitbench.cli.console import out as console
    from vitbench.errors import VitbenchError
    from vitbench.gate import build_baseline, load_results

    if quantile is not None and not 0 < quantile < 1:
        raise _tool_error("--quantile: must be between 0 and 1")
    try:
        runs = load_results(results_paths)
        doc = build_baseline(runs, [str(p) for p in results_paths],
                             [quantile] if quantile else (),
                             created_utc=utc_now())
    except VitbenchError as exc:
        raise _tool_error(str(exc))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    console.print(f"baseline: {len(doc['models'])} models, {doc['runs']} run(s) → {out}",
                  highlight=False)


@app.command()
def ab(
    suite_a: Path = typer.Argument(..., metavar="SUITE_A", help="baseline suite YAML"),
    suite_b: Path = typer.Argument(..., metavar="SUITE_B", help="candidate suite YAML (rows matched by name)"),
    runs: int = typer.Option(12, "--runs", "-n", min=2, help="rounds (lockstep) or fresh runs per side"),
    design: str = typer.Option("lockstep", "--design", help="lockstep: A and B workers timed in alternating blocks, paired per round (robust to a drifting machine); runs: whole-suite fresh runs per side, A B B A"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="folder for the runs and the verdict [default: results/ab/UTC-STAMP]"),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads (1 recommended on small shared machines)"),
    repeat: Optional[int] = typer.Option(None, "--repeat", min=1, help="timed iterations per model per run"),
    confirm: bool = typer.Option(True, "--confirm/--no-confirm", help="re-measure failing models before a noisy FAIL counts"),
    seed: int = typer.Option(0, "--seed", help="seed of the per-run row order"),
    markdown: Optional[Path] = _MD, json_out: Optional[Path] = _JSON,
    alpha: float = _ALPHA, delta_cpu: float = _DCPU, delta_gpu: float = _DGPU,
    delta_memory: float = _DMEM, memory_floor: float = _FLOOR, cuda_memory_tol: float = _CUDATOL,
    quantile: Optional[float] = _QUANT, metrics: Optional[str] = _METRICS_OPT,
    on_inconclusive: str = _ONINC,
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

      vitbench ab suites/main.yaml suites/pr.yaml --runs 12 --threads 1 --markdown verdict.md
    """
    from vitbench.gate.ab import run_ab
    from vitbench.cli.console import err
    from vitbench.errors import VitbenchError
    from vitbench.gate import rounds_needed, runs_needed
    from vitbench.config.suite import load_suite

    on_inconclusive = _check_on_inconclusive(on_inconclusive)
    config = _config(alpha, delta_cpu, delta_gpu, delta_memory, memory_floor, cuda_memory_tol,
                     quantile, metrics)
    overrides = {k: v for k, v in dict(threads=threads, repeat=repeat).items() if v is not None}
    try:
        a, b = load_suite(suite_a), load_suite(suite_b)
    except VitbenchError as exc:
        raise _tool_error(str(exc))
    if design not in ("lockstep", "runs"):
        raise _tool_error(f"--design: 'lockstep' or 'runs', not {design!r}")
    tests = 2 * len({m.name for m in a.models} | {m.name for m in b.models})
    need = runs_needed(tests, alpha) if design == "runs" else rounds_needed(tests, alpha)
    if runs < need:
        err.print(f"[yellow]warning:[/yellow] {runs} runs per side cannot reach significance for "
                  f"~{tests} noisy tests at α={alpha:g}; noisy metrics will be "
                  f"INCONCLUSIVE. Use --runs {need} or more.", highlight=False)
    stamp = utc_stamp()
    out_dir = out or Path("results") / "ab" / stamp
    try:
        report, _ = run_ab(a, b, runs, out_dir, overrides=overrides, config=config,
                           confirm_failures=confirm, seed=seed, design=design,
                           progress=lambda m: err.print(m, highlight=False))
    except VitbenchError as exc:
        raise _tool_error(str(exc))
    raise typer.Exit(_emit(report, out_dir, markdown, json_out, on_inconclusive))


@app.command("gate-selftest")
def gate_selftest(
    runs: int = typer.Option(12, "--runs", "-n", min=2, help="real lockstep rounds (or runs per side with --design runs)"),
    design: str = typer.Option("lockstep", "--design", help="lockstep or runs (as `vitbench ab`)"),
    inject: str = typer.Option("aa,lat10,lat20,mem8,linear", "--inject",
                               help="rows: aa,lat5,lat10,lat20,mem8,linear"),
    from_dir: Optional[Path] = typer.Option(None, "--from", help="re-analyse a previous selftest/ab folder instead of measuring"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="folder for runs and selftest.json [default: results/gate-selftest/UTC-STAMP]"),
    repeat: int = typer.Option(20, "--repeat", min=5, help="timed iterations per model per run"),
    trials: int = typer.Option(2000, "--trials", min=10, help="resampled trials per injected shift"),
    n: int = typer.Option(12, "--n", min=2, help="runs per side in the resampled trials (capped by the pool)"),
    family: int = typer.Option(10, "--family", min=1, help="noisy tests per invocation simulated by the resampling (Holm's first step α/M)"),
    alpha: float = _ALPHA, quantile: Optional[float] = _QUANT,
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
    from vitbench.gate.ab import (pooled_base_values, pooled_paired_values, resampled_trials, run_ab,
                      score_real, selftest_suites)
    from vitbench.cli.console import err, out as console
    from vitbench.errors import VitbenchError
    from vitbench.gate import GateConfig, compare_sides, side_from_results, load_results, write_report

    config = GateConfig(alpha=alpha, quantile=quantile)
    stamp = utc_stamp()
    out_dir = out or Path("results") / "gate-selftest" / stamp
    rows = [r.strip() for r in inject.split(",") if r.strip()]
    try:
        if from_dir is not None:
            paths_a = sorted(from_dir.glob("stage1-*-A/results.json"))
            paths_b = sorted(from_dir.glob("stage1-*-B/results.json"))
            if not paths_a or not paths_b:
                raise _tool_error(f"{from_dir}: no stage1-*-A/B/results.json runs found")
            runs_a, runs_b = load_results(paths_a), load_results(paths_b)
            saved = from_dir / "paired.json"
            paired = json.loads(saved.read_text(encoding="utf-8")) if saved.is_file() else {}
            report = compare_sides(side_from_results(runs_a, "A"), side_from_results(runs_b, "B"),
                                   config, mode="ab", paired=paired)
        else:
            suite_a, suite_b = selftest_suites(rows, repeat=repeat)
            report, measured = run_ab(suite_a, suite_b, runs, out_dir, config=config,
                                      confirm_failures=False, design=design,
                                      progress=lambda m: err.print(m, highlight=False))
            runs_a, runs_b, paired = measured["A"], measured["B"], measured["paired"]
    except ValueError as exc:
        raise _tool_error(str(exc))
    except VitbenchError as exc:
        raise _tool_error(str(exc))
    real = score_real(report)
    if paired:
        pool = pooled_paired_values(paired)
        n_sim = min(n, len(pool))
    else:
        pool = pooled_base_values(runs_a, runs_b, config.latency_quantile("cpu"))
        n_sim = min(n, len(pool) // 2)
    resampled = (resampled_trials(pool, n=n_sim, trials=trials, family=family, config=config,
                                  paired=bool(paired)) if n_sim >= 2 else None)
    result = {"schema": "vitbench.gate-selftest/1", "runs_per_side": len(runs_a),
              "real": real, "resampled": resampled,
              "resampling_note": ("resampled trials reuse real measured values of rows whose "
                                  "latency did not change (lockstep: per-round ratios of aa, "
                                  "linear, mem8 and the calibration probe; runs: run-level "
                                  "latencies of the unchanged fixture); not independent runs, "
                                  "so optimistic: no cross-job drift")}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_report(report, out_dir)
    (out_dir / "selftest.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")

    console.print(f"[bold]Real A/A + A/B[/bold] ({len(runs_a)} runs per side; verdicts in {out_dir}/verdict.md)")
    for row, entry in real.items():
        verdicts = ", ".join(f"{m}={v}" for m, v in entry["verdicts"].items())
        extra = ""
        if entry.get("latency_ratio"):
            extra = f"; latency ratio {entry['latency_ratio']:.3f}"
            if "ratio_error_pp" in entry:
                extra += f" (nominal error {entry['ratio_error_pp']:+.1f} pp)"
        status = ("detected" if entry.get("detected") else "MISSED") if "detected" in entry else \
            ("false alarm: " + ",".join(entry["false_alarm"]) if entry["false_alarm"] else "no false alarm")
        console.print(f"  {row}: {status}; {verdicts}{extra}", highlight=False)
    if resampled:
        what = (f"{n_sim} lockstep rounds per trial drawn from {resampled['pool']} measured "
                f"round ratios, round-to-round robust SD" if paired else
                f"{resampled['pool']} run values, {n_sim} vs {n_sim} per trial, between-run robust SD")
        console.print(f"[bold]Resampled trials[/bold] ({what} "
                      f"{resampled['between_run_robust_sd']:.1%}; α={alpha:g}/{family})")
        for key, s in resampled["shifts"].items():
            console.print(
                f"  shift {key}: FAIL {s['fail_rate']:.1%}  WARN {s['warn_rate']:.1%}  "
                f"INCONCLUSIVE {s['inconclusive_rate']:.1%}  IMPROVED {s['improved_rate']:.1%}  "
                f"PASS {s['pass_rate']:.1%}  |ρ̂−true| median {s['median_abs_ratio_error_pp']:.2f} pp  "
                f"CI coverage {s['ci_coverage']:.0%}", highlight=False)
    else:
        console.print("resampled trials skipped: fewer than 4 measured run values", highlight=False)
    console.print(f"written: {out_dir}/selftest.json", highlight=False)
