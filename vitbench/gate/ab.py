"""In-job A/B measurement for the gate: two suites, interleaved fresh runs, then a verdict.

One *run* of a side is ``runner.run_suite`` over that side's suite (rows in a per-run
shuffled order, each row in its own fresh worker process) plus the calibration probe
(``vitbench:gate_calibration``: a GEMM and a 3×3 conv). Runs alternate A B B A A B … so both
sides see the same machine conditions. If a noisy metric FAILs, only the failing models are
re-measured (``runs`` more interleaved runs per side) and the FAIL must hold on the pooled
runs (:func:`vitbench.gate.rules.confirm`), otherwise it is reported as WARN (unconfirmed).

This module owns the on-disk layout of an ``ab`` folder, both ways: it writes it
(:func:`run_ab`) and reads it back (:func:`load_ab_dir`, for ``gate-selftest --from``).

* ``static-{A,B}/results.json`` — params and GFLOPs of each side (lockstep design);
* ``stage{S}-round{NN}-{A,B}/results.json`` — lockstep round NN of stage S (1: the
  measurement, 2: the confirmation of failing models), raw samples kept;
* ``stage{S}-{NN}-{A,B}/results.json`` — fresh run NN (``--design runs``);
* ``paired.json`` — per row name, one ln(B/A) per lockstep round (every stage).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from vitbench.config.spec import ModelEntry, Suite
from vitbench.files import RESULTS_FILE, write_atomic
from vitbench.gate.config import CALIBRATION_MODEL, GateConfig, GateError
from vitbench.gate.nonparametric import rounds_needed, runs_needed
from vitbench.gate.rules import compare_sides, confirm
from vitbench.gate.sides import load_results, side_from_results
from vitbench.gate.verdict import DESIGNS, FAIL, LOCKSTEP, NOISY, RUNS, GateReport
from vitbench.records import ModelResult, RunResult

CALIBRATION_ROW = "gate-calibration"

#: ``progress(message)`` — one line per run.
Progress = Callable[[str], None]

PAIRED_FILE = "paired.json"


@dataclass
class AbRuns:
    """What an ``ab`` measurement produced: the runs of each side and, lockstep design, the
    per-round ln(B/A) of every row measured on both sides."""

    runs_a: list[RunResult]
    runs_b: list[RunResult]
    paired: dict[str, list[float]] = field(default_factory=dict)


def run_folder(out_dir: Path, stage: str, index: int, label: str, design: str) -> Path:
    """The folder of one run (``runs``) or one round (``lockstep``) of one side."""
    kind = "round" if design == LOCKSTEP else ""
    return out_dir / f"stage{stage}-{kind}{index:02d}-{label}"


def load_ab_dir(folder: str | Path) -> AbRuns:
    """The stage-1 runs of both sides and the saved lockstep ratios of an ``ab`` (or
    ``gate-selftest``) folder: the measurement as first decided, without confirmation runs."""
    folder = Path(folder)
    paths = {label: sorted(folder.glob(f"stage1-*-{label}/{RESULTS_FILE}")) for label in "AB"}
    if not paths["A"] or not paths["B"]:
        raise GateError(f"{folder}: no stage1-*-A/B/{RESULTS_FILE} runs found")
    runs_a, runs_b = load_results(paths["A"]), load_results(paths["B"])
    saved = folder / PAIRED_FILE
    return AbRuns(runs_a, runs_b, _read_paired(saved) if saved.exists() else {})


def _read_paired(path: Path) -> dict[str, list[float]]:
    """``paired.json``: row name → that row's per-round ln(B/A); a corrupt file is one line."""
    from pydantic import TypeAdapter, ValidationError

    from vitbench.errors import ResultsError
    from vitbench.records.reading import first_problem, read_json

    try:
        return TypeAdapter(dict[str, list[float]]).validate_python(
            read_json(path, "paired-ratios file"))
    except ResultsError as exc:
        raise GateError(str(exc)) from None
    except ValidationError as exc:
        raise GateError(f"{path}: {first_problem(exc)}") from None


def too_few_runs_warning(suite_a: Suite, suite_b: Suite, runs: int, alpha: float,
                         design: str) -> Optional[str]:
    """A warning when ``runs`` can never reach significance for the suites' noisy tests
    (two per model on CPU: latency and peak RSS)."""
    tests = 2 * len({m.name for m in suite_a.models} | {m.name for m in suite_b.models})
    need = runs_needed(tests, alpha) if design == RUNS else rounds_needed(tests, alpha)
    if runs >= need:
        return None
    return (f"{runs} runs per side cannot reach significance for ~{tests} noisy tests at "
            f"α={alpha:g}; noisy metrics will be INCONCLUSIVE. Use --runs {need} or more.")


def interleaved_order(runs_per_side: int) -> list[str]:
    """A B B A A B B A …: 2·n labels, balanced within every pair of pairs."""
    order = []
    for pair in range(runs_per_side):
        order.extend(("A", "B") if pair % 2 == 0 else ("B", "A"))
    return order


def with_calibration(suite: Suite, *, shuffle_seed: Optional[int] = None,
                     only: Optional[Sequence[str]] = None) -> Suite:
    """The suite (optionally only some rows, in a shuffled order) plus the calibration row."""
    models = [m for m in suite.models if m.model != CALIBRATION_MODEL]
    if only is not None:
        wanted = {n.casefold() for n in only}
        models = [m for m in models if m.name.casefold() in wanted]
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(models)
    calib = ModelEntry(name=CALIBRATION_ROW, model=CALIBRATION_MODEL, image_size=32,
                       note="gate calibration probe: fp32 GEMM 256² + 3×3 conv 32→32 at 56²")
    return suite.model_copy(update={"models": [*models, calib]})


def measure_interleaved(suite_a: Suite, suite_b: Suite, runs_per_side: int, out_dir: Path, *,
                        overrides: Optional[dict[str, Any]] = None,
                        only: Optional[Sequence[str]] = None, seed: int = 0, stage: str = "1",
                        progress: Progress = lambda m: None) -> tuple[list[RunResult], list[RunResult]]:
    """Run both suites ``runs_per_side`` times each, interleaved; keep every run on disk."""
    from vitbench.run.runner import run_suite

    results: dict[str, list[RunResult]] = {"A": [], "B": []}
    suites = {"A": suite_a, "B": suite_b}
    order = interleaved_order(runs_per_side)
    for index, label in enumerate(order):
        suite = with_calibration(suites[label], shuffle_seed=seed * 1000 + index, only=only)
        run_dir = run_folder(out_dir, stage, index, label, RUNS)
        progress(f"stage {stage} run {index + 1}/{len(order)}: side {label} "
                 f"({len(suite.models)} rows incl. calibration)")
        result = run_suite(suite, out_dir=run_dir, overrides=overrides,
                           command=["vitbench", "ab", f"side {label}", f"run {index}"])
        results[label].append(result)
    return results["A"], results["B"]


def measure_lockstep(suite_a: Suite, suite_b: Suite, rounds: int, out_dir: Path, *,
                     overrides: Optional[dict[str, Any]] = None,
                     only: Optional[Sequence[str]] = None, seed: int = 0, stage: str = "1",
                     static: Optional[dict[str, RunResult]] = None,
                     progress: Progress = lambda m: None,
                     saved_ratios: Optional[dict[str, list[float]]] = None,
                     ) -> tuple[list[RunResult], list[RunResult], dict[str, list[float]]]:
    """``rounds`` lockstep rounds: in each, every row present on both sides (and the
    calibration probe, against itself) is timed in a fresh A worker and a fresh B worker in
    alternating blocks (:func:`vitbench.gate.lockstep.measure_pair`). Rows run in a per-round
    shuffled order; which side starts alternates. Each round is saved per side as a
    ``results.json`` (raw samples kept) as soon as it finishes.

    ``static`` (per side, a ``--static-only`` run of the suite) supplies GFLOPs and the rows
    that exist on one side only. Returns the per-side runs and, per row name, one
    ln(B/A) per round.

    ``saved_ratios`` (every stage's saved rounds so far) gets each round's ratios once the
    round is saved, and is written to ``paired.json`` then: the file on disk always matches
    the rounds on disk, so an interrupted ``ab`` keeps both.
    """
    from vitbench.env import environment
    from vitbench.gate.lockstep import measure_pair
    from vitbench.records import SCHEMA
    from vitbench.files import utc_now
    from vitbench.run.runner import merge_planned, plan, suite_fingerprint

    suites = {"A": suite_a, "B": suite_b}
    results: dict[str, list[RunResult]] = {"A": [], "B": []}
    paired: dict[str, list[float]] = {}
    env = None
    for index in range(rounds):
        planned = {label: {p.row.name: p for p in plan(with_calibration(
            suites[label], shuffle_seed=seed * 1000 + index, only=only), overrides)}
            for label in "AB"}
        names = [n for n in planned["A"] if n in planned["B"]]
        if env is None:
            env = environment(with_gpu=any(p.job is not None and p.job.device == "cuda"
                                           for side in planned.values() for p in side.values()))
        runs = {label: RunResult(schema=SCHEMA, suite=suite_fingerprint(suites[label]),
                                 created_utc=utc_now(), overrides=dict(overrides or {}),
                                 command=["vitbench", "ab", f"side {label}", f"round {index}"],
                                 environment=env, results=[])
                for label in "AB"}
        first = "A" if index % 2 == 0 else "B"
        ratios: dict[str, float] = {}
        for position, name in enumerate(names):
            jobs = {label: planned[label][name].job for label in "AB"}
            if any(job is None for job in jobs.values()):
                for label in "AB":
                    runs[label].results.append(planned[label][name].row)
                continue
            progress(f"stage {stage} round {index + 1}/{rounds}: {name} "
                     f"({position + 1}/{len(names)}, A and B in lockstep)")
            outcome = measure_pair(jobs, first=first)
            for label in "AB":
                row = outcome.rows[label]
                _add_static(row, (static or {}).get(label))
                runs[label].results.append(merge_planned(planned[label][name].row, row))
            if outcome.round_log_ratio is not None:
                ratios[name] = outcome.round_log_ratio
        for label in "AB":  # rows of one side only: their static row, for the verdict table
            for name, item in planned[label].items():
                if name not in planned["B" if label == "A" else "A"] and static and static.get(label):
                    row = next((r for r in static[label].results if r.name == name), item.row)
                    runs[label].results.append(row)
            runs[label].finished_utc = utc_now()
            runs[label].complete = True
            runs[label].save(run_folder(out_dir, stage, index, label, LOCKSTEP) / RESULTS_FILE)
            results[label].append(runs[label])
        for name, ratio in ratios.items():
            paired.setdefault(name, []).append(ratio)
            if saved_ratios is not None:
                saved_ratios.setdefault(name, []).append(ratio)
        if saved_ratios:
            write_atomic(out_dir / PAIRED_FILE, json.dumps(saved_ratios, indent=1) + "\n")
    return results["A"], results["B"], paired


def _add_static(row: ModelResult, static_run: Optional[RunResult]) -> None:
    """Put the deterministic counts of the static pass on a lockstep row (which counted only
    its parameters, and keeps them)."""
    if static_run is None or row.status != "ok":
        return
    match = next((r for r in static_run.results if r.name == row.name and r.status == "ok"), None)
    if match is None:
        return
    if match.counts is not None:
        params = row.counts.params if row.counts is not None else match.counts.params
        row.counts = match.counts.model_copy(update={"params": params})
    row.flops_convention = match.flops_convention


def static_pass(suite_a: Suite, suite_b: Suite, out_dir: Path, *,
                overrides: Optional[dict[str, Any]] = None,
                progress: Progress = lambda m: None) -> dict[str, RunResult]:
    """Params and GFLOPs of both sides, counted once (they are deterministic)."""
    from vitbench.run.runner import run_suite

    static = {}
    for label, suite in (("A", suite_a), ("B", suite_b)):
        progress(f"counting params and GFLOPs of side {label} ({suite.name})")
        static[label] = run_suite(suite, out_dir=out_dir / f"static-{label}", overrides=overrides,
                                  static_only=True,
                                  command=["vitbench", "ab", f"side {label}", "static"])
    return static


def output_checks(runs: dict[str, list[RunResult]]) -> list[str]:
    """One note per row and side whose output a deployment runtime checked against eager's
    (with the export), from the side's first run that has it (every round exports the same
    graph)."""
    notes = []
    for label, side_runs in runs.items():
        seen: set[str] = set()
        for run in side_runs:
            for row in run.results:
                if row.deployment is not None and row.deployment.checked and row.name not in seen:
                    seen.add(row.name)
                    notes.append(f"output check, side {label}: {row.name} · "
                                 f"{row.deployment.check_line()}")
    return notes


def run_ab(suite_a: Suite, suite_b: Suite, runs_per_side: int, out_dir: str | Path, *,
           overrides: Optional[dict[str, Any]] = None, config: Optional[GateConfig] = None,
           confirm_failures: bool = True, seed: int = 0, design: str = LOCKSTEP,
           progress: Progress = lambda m: None) -> tuple[GateReport, AbRuns]:
    """Measure A and B, decide, confirm noisy failures; return the report and the runs.

    ``design="lockstep"`` (default): params/GFLOPs counted once per side, then
    ``runs_per_side`` lockstep rounds (:func:`measure_lockstep`); latency is decided on the
    paired per-round ratios, memory on the per-round values. ``design="runs"``: whole-suite
    fresh runs per side, interleaved A B B A (:func:`measure_interleaved`), every metric
    decided on run-level values.
    """
    config = config or GateConfig()
    out_dir = Path(out_dir)
    quantiles = sorted({0.2, 0.5} | ({config.quantile} if config.quantile else set()))
    label_a, label_b = f"A ({suite_a.name})", f"B ({suite_b.name})"
    if design not in DESIGNS:
        raise GateError(f"--design: 'lockstep' or 'runs', not {design!r}")
    saved_ratios: dict[str, list[float]] = {}  # paired.json as the rounds are saved

    def measure(only=None, stage="1", seed_=seed):
        if design == RUNS:
            a, b = measure_interleaved(suite_a, suite_b, runs_per_side, out_dir,
                                       overrides=overrides, only=only, seed=seed_, stage=stage,
                                       progress=progress)
            return a, b, {}
        return measure_lockstep(suite_a, suite_b, runs_per_side, out_dir, overrides=overrides,
                                only=only, seed=seed_, stage=stage, static=static,
                                progress=progress, saved_ratios=saved_ratios)

    def decide(a, b, paired):
        return compare_sides(side_from_results(a, label_a, quantiles),
                             side_from_results(b, label_b, quantiles), config, mode="ab",
                             paired=paired)

    static = static_pass(suite_a, suite_b, out_dir, overrides=overrides,
                         progress=progress) if design == LOCKSTEP else None
    runs_a, runs_b, paired = measure()
    report = decide(runs_a, runs_b, paired)
    failing = sorted({v.model for v in report.verdicts if v.verdict == FAIL and v.kind == NOISY})
    if failing and confirm_failures:
        progress(f"confirming {len(failing)} failing model(s): {', '.join(failing)}")
        more_a, more_b, more_paired = measure(only=failing, stage="2", seed_=seed + 1)
        runs_a, runs_b = runs_a + more_a, runs_b + more_b
        for name, values in more_paired.items():
            paired[name] = paired.get(name, []) + values
        confirm(report, decide(runs_a, runs_b, paired))
    elif failing:
        report.notes.append("noisy FAILs were NOT confirmed by re-measurement (--no-confirm)")
    if design == LOCKSTEP:
        report.notes.append(
            "latency: lockstep design — each round starts a fresh A and a fresh B worker per "
            "model and times them in alternating ~0.1 s blocks (A B B A …); one ln(B/A) per "
            "round; exact one-sided Wilcoxon signed-rank test over rounds, one-sample "
            "Hodges–Lehmann ratio with a Tukey–Walsh CI; the calibration probe is timed "
            "against itself every round as an A/A control")
    report.notes.extend(output_checks({"A": runs_a, "B": runs_b}))
    if paired:
        write_atomic(out_dir / PAIRED_FILE, json.dumps(paired, indent=1) + "\n")
    report.notes.append(f"runs kept in {out_dir} (raw samples in each {RESULTS_FILE}"
                        + (f", per-round ratios in {PAIRED_FILE})" if paired else ")"))
    return report, AbRuns(runs_a, runs_b, paired)
