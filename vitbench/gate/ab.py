"""In-job A/B measurement for the gate: two suites, interleaved fresh runs, then a verdict.

One *run* of a side is ``runner.run_suite`` over that side's suite (rows in a per-run
shuffled order, each row in its own fresh worker process) plus the calibration probe
(``vitbench:gate_calibration``: a GEMM and a 3×3 conv). Runs alternate A B B A A B … so both
sides see the same machine conditions. If a noisy metric FAILs, only the failing models are
re-measured (``runs`` more interleaved runs per side) and the FAIL must hold on the pooled
runs (:func:`vitbench.gate.confirm`), otherwise it is reported as WARN (unconfirmed).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from vitbench.gate import (CALIBRATION_MODEL, FAIL, GateConfig, GateReport, compare_sides, confirm,
                   side_from_results)
from vitbench.records import RunResult
from vitbench.config.spec import ModelEntry, Suite

CALIBRATION_ROW = "gate-calibration"

#: ``progress(message)`` — one line per run.
Progress = Callable[[str], None]


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
        run_dir = out_dir / f"stage{stage}-{index:02d}-{label}"
        progress(f"stage {stage} run {index + 1}/{len(order)}: side {label} "
                 f"({len(suite.models)} rows incl. calibration)")
        result = run_suite(suite, out_dir=run_dir, overrides=overrides, write_derived=False,
                           command=["vitbench", "ab", f"side {label}", f"run {index}"])
        results[label].append(result)
    return results["A"], results["B"]


def measure_lockstep(suite_a: Suite, suite_b: Suite, rounds: int, out_dir: Path, *,
                     overrides: Optional[dict[str, Any]] = None,
                     only: Optional[Sequence[str]] = None, seed: int = 0, stage: str = "1",
                     static: Optional[dict[str, RunResult]] = None,
                     progress: Progress = lambda m: None,
                     ) -> tuple[list[RunResult], list[RunResult], dict[str, list[float]]]:
    """``rounds`` lockstep rounds: in each, every row present on both sides (and the
    calibration probe, against itself) is timed in a fresh A worker and a fresh B worker in
    alternating blocks (:func:`vitbench.gate.lockstep.measure_pair`). Rows run in a per-round
    shuffled order; which side starts alternates. Each round is saved per side as a
    ``results.json`` (raw samples kept) as soon as it finishes.

    ``static`` (per side, a ``--static-only`` run of the suite) supplies GFLOPs and the rows
    that exist on one side only. Returns the per-side runs and, per row name, one
    ln(B/A) per round.
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
                paired.setdefault(name, []).append(outcome.round_log_ratio)
        for label in "AB":  # rows of one side only: their static row, for the verdict table
            for name, item in planned[label].items():
                if name not in planned["B" if label == "A" else "A"] and static and static.get(label):
                    row = next((r for r in static[label].results if r.name == name), item.row)
                    runs[label].results.append(row)
            runs[label].finished_utc = utc_now()
            runs[label].complete = True
            runs[label].save(out_dir / f"stage{stage}-round{index:02d}-{label}" / "results.json")
            results[label].append(runs[label])
    return results["A"], results["B"], paired


def _add_static(row, static_run: Optional[RunResult]) -> None:
    """Copy the deterministic counts of the static pass onto a lockstep row."""
    if static_run is None or row.status != "ok":
        return
    match = next((r for r in static_run.results if r.name == row.name and r.status == "ok"), None)
    if match is None:
        return
    for key in ("gflops", "gflops_counter", "gflops_crosscheck", "gflops_crosscheck_counter",
                "counters_agree", "uncounted_ops", "gap_ops", "flops_error", "flops_convention"):
        setattr(row, key, getattr(match, key))


def static_pass(suite_a: Suite, suite_b: Suite, out_dir: Path, *,
                overrides: Optional[dict[str, Any]] = None,
                progress: Progress = lambda m: None) -> dict[str, RunResult]:
    """Params and GFLOPs of both sides, counted once (they are deterministic)."""
    from vitbench.run.runner import run_suite

    static = {}
    for label, suite in (("A", suite_a), ("B", suite_b)):
        progress(f"counting params and GFLOPs of side {label} ({suite.name})")
        static[label] = run_suite(suite, out_dir=out_dir / f"static-{label}", overrides=overrides,
                                  static_only=True, write_derived=False,
                                  command=["vitbench", "ab", f"side {label}", "static"])
    return static


def run_ab(suite_a: Suite, suite_b: Suite, runs_per_side: int, out_dir: str | Path, *,
           overrides: Optional[dict[str, Any]] = None, config: Optional[GateConfig] = None,
           confirm_failures: bool = True, seed: int = 0, design: str = "lockstep",
           progress: Progress = lambda m: None) -> tuple[GateReport, dict[str, Any]]:
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
    if design not in ("lockstep", "runs"):
        raise ValueError(f"design must be 'lockstep' or 'runs', not {design!r}")

    def measure(only=None, stage="1", seed_=seed):
        if design == "runs":
            a, b = measure_interleaved(suite_a, suite_b, runs_per_side, out_dir,
                                       overrides=overrides, only=only, seed=seed_, stage=stage,
                                       progress=progress)
            return a, b, {}
        return measure_lockstep(suite_a, suite_b, runs_per_side, out_dir, overrides=overrides,
                                only=only, seed=seed_, stage=stage, static=static,
                                progress=progress)

    def decide(a, b, paired):
        return compare_sides(side_from_results(a, label_a, quantiles),
                             side_from_results(b, label_b, quantiles), config, mode="ab",
                             paired=paired)

    static = static_pass(suite_a, suite_b, out_dir, overrides=overrides,
                         progress=progress) if design == "lockstep" else None
    runs_a, runs_b, paired = measure()
    report = decide(runs_a, runs_b, paired)
    failing = sorted({v.model for v in report.verdicts if v.verdict == FAIL and v.kind == "noisy"})
    if failing and confirm_failures:
        progress(f"confirming {len(failing)} failing model(s): {', '.join(failing)}")
        more_a, more_b, more_paired = measure(only=failing, stage="2", seed_=seed + 1)
        runs_a, runs_b = runs_a + more_a, runs_b + more_b
        for name, values in more_paired.items():
            paired[name] = paired.get(name, []) + values
        confirm(report, decide(runs_a, runs_b, paired))
    elif failing:
        report.notes.append("noisy FAILs were NOT confirmed by re-measurement (--no-confirm)")
    if design == "lockstep":
        report.notes.append(
            "latency: lockstep design — each round starts a fresh A and a fresh B worker per "
            "model and times them in alternating ~0.1 s blocks (A B B A …); one ln(B/A) per "
            "round; exact one-sided Wilcoxon signed-rank test over rounds, one-sample "
            "Hodges–Lehmann ratio with a Tukey–Walsh CI; the calibration probe is timed "
            "against itself every round as an A/A control")
    if paired:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "paired.json").write_text(json.dumps(paired, indent=1) + "\n", encoding="utf-8")
    report.notes.append(f"runs kept in {out_dir} (raw samples in each results.json"
                        + (", per-round ratios in paired.json)" if paired else ")"))
    return report, {"A": runs_a, "B": runs_b, "paired": paired}


# --------------------------------------------------------------------------------------
# Self-test: the gate measured on a fixture model with injected changes of known size
# --------------------------------------------------------------------------------------

#: Selftest rows: name → (kwargs of the B side's gate_fixture, what should happen).
INJECTIONS: dict[str, tuple[dict[str, Any], str]] = {
    "aa": ({}, "A/A: nothing changed; any FAIL is a false alarm"),
    "lat5": ({"extra_work": 0.05}, "+1 of 20 blocks re-run: about +5 % latency (= δ on CPU)"),
    "lat10": ({"extra_work": 0.10}, "+2 of 20 blocks: about +10 % latency"),
    "lat20": ({"extra_work": 0.20}, "+4 of 20 blocks: about +20 % latency"),
    "mem8": ({"hold_mb": 8.0}, "an extra 8 MiB tensor held: peak memory +8 MiB"),
    "linear": ({"extra_linear": 1}, "an extra nn.Linear(16, 16): params +272"),
}
#: Nominal latency ratio of each latency injection.
NOMINAL = {"lat5": 1.05, "lat10": 1.10, "lat20": 1.20}


def selftest_suites(rows: Sequence[str], *, repeat: int = 20, threads: int = 1) -> tuple[Suite, Suite]:
    """Suite A: every row is the plain fixture; suite B: the same rows with the injections."""
    from vitbench.config.spec import Settings

    unknown = [r for r in rows if r not in INJECTIONS]
    if unknown:
        raise ValueError(f"unknown injection {unknown[0]!r}; known: {', '.join(INJECTIONS)}")
    defaults = Settings(threads=threads, warmup=5, repeat=repeat, min_time_s=0.2,
                        image_size=224, batch_size=1, device="cpu", processes=1)

    def suite(name: str, inject: bool) -> Suite:
        models = [ModelEntry(name=row, model="vitbench:gate_fixture",
                             kwargs=INJECTIONS[row][0] if inject else {},
                             note=INJECTIONS[row][1]) for row in rows]
        return Suite(name=name, title="gate self-test", defaults=defaults, models=models)

    return suite("gate-selftest-A", False), suite("gate-selftest-B", True)


def score_real(report: GateReport) -> dict[str, Any]:
    """What the real A/A + A/B run shows, per injection row."""
    by_row: dict[str, dict[str, Any]] = {}
    for v in report.verdicts:
        if v.kind == "calibration":
            continue
        entry = by_row.setdefault(v.model, {"verdicts": {}})
        entry["verdicts"][v.metric] = v.verdict
        if v.metric == "latency_ms":
            entry["latency_ratio"] = v.ratio
            entry["latency_ci"] = [v.ci_low, v.ci_high]
            if v.model in NOMINAL and v.ratio is not None:
                entry["ratio_error_pp"] = (v.ratio - NOMINAL[v.model]) * 100
    expected = {"aa": (), "lat5": ("latency_ms",), "lat10": ("latency_ms",),
                "lat20": ("latency_ms",), "mem8": ("peak_memory_mb",),
                "linear": ("params", "gflops")}  # an extra Linear adds parameters and MACs
    for row, entry in by_row.items():
        targets = expected.get(row, ())
        verdicts = entry["verdicts"]
        entry["false_alarm"] = [m for m, x in verdicts.items() if x == FAIL and m not in targets]
        entry["inconclusive"] = [m for m, x in verdicts.items() if x in ("INCONCLUSIVE", "NOT_COMPARABLE")]
        if targets:
            entry["detected"] = all(verdicts.get(t) == FAIL for t in targets)
    return by_row


def pooled_base_values(runs_a: Sequence[RunResult], runs_b: Sequence[RunResult],
                       quantile: float) -> list[float]:
    """Run-level latency values of the unchanged fixture: every A row, and the B ``aa`` row."""
    values = []
    for runs, rows in ((runs_a, None), (runs_b, {"aa"})):
        for run in runs:
            for row in run.results:
                if row.model == CALIBRATION_MODEL or row.status != "ok" or not row.latency_samples_ms:
                    continue
                if rows is None or row.name in rows:
                    import numpy as np

                    values.append(float(np.quantile(row.latency_samples_ms, quantile)))
    return values


#: Selftest rows whose latency is unchanged by construction: the A/A pool of lockstep ratios
#: (``linear`` adds a 16×16 Linear, ``mem8`` allocates once; neither changes a forward's time
#: measurably; the calibration probe is timed against itself).
LATENCY_NULL_ROWS = ("aa", "linear", "mem8", CALIBRATION_ROW)


def pooled_paired_values(paired: dict[str, Sequence[float]]) -> list[float]:
    """Measured per-round ln(B/A) of every row whose latency did not change."""
    return [float(x) for row in LATENCY_NULL_ROWS for x in paired.get(row, [])]


def resampled_trials(values: Sequence[float], *, n: int, trials: int = 2000,
                     shifts: Sequence[float] = (0.0, 0.05, 0.10, 0.20, -0.10), family: int = 10,
                     config: Optional[GateConfig] = None, seed: int = 0,
                     paired: bool = False) -> dict[str, Any]:
    """Validate the decision rule on resampled *measured* run-level values.

    Each trial draws two disjoint sets of ``n`` values from ``values`` (real runs of one
    unchanged model), multiplies the candidate set by ``1 + shift``, and decides it with the
    gate's own code. The test is judged as one of ``family`` tests (α/family: Holm's first
    step). With ``paired`` the values are lockstep log ratios ln(B/A) of unchanged rows: a
    trial draws ``n`` of them (one set) and adds ln(1 + shift). Returns per shift: the FAIL, WARN, IMPROVED, INCONCLUSIVE and PASS rates, the median
    |ρ̂ − (1+shift)| in percentage points and the 95 % CI coverage of 1+shift.
    """
    import dataclasses

    import numpy as np

    from vitbench.gate import ModelRuns, Side, robust_sd

    config = config or GateConfig()
    values = np.asarray(values, float)
    if len(values) < (n if paired else 2 * n):
        raise ValueError(f"{len(values)} measured run values cannot give two disjoint sets of {n}")
    cfg = dataclasses.replace(config, alpha=config.alpha / family, metrics=("latency",))
    q = cfg.latency_quantile("cpu")
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for shift in shifts:
        counts = {k: 0 for k in ("FAIL", "WARN", "IMPROVED", "INCONCLUSIVE", "PASS", "NOT_COMPARABLE")}
        errors, covered = [], 0
        for _ in range(trials):
            pick = rng.permutation(len(values))
            if paired:
                d = values[pick[:n]] + np.log1p(shift)
                sides = [Side(label=label, kind="results", runs=n, models={"fixture": ModelRuns(
                    name="fixture", settings={"device": "cpu"}, status=["ok"],
                    latency={0.5: [1.0] * n})}) for label in "AB"]
                report = compare_sides(sides[0], sides[1], cfg, mode="resampled",
                                       paired={"fixture": d})
                v = next(x for x in report.verdicts if x.metric == "latency_ms")
                counts[v.verdict] += 1
                errors.append(abs(v.ratio - (1 + shift)) * 100)
                if v.ci_low is not None and v.ci_low <= 1 + shift <= v.ci_high:
                    covered += 1
                continue
            a, b = values[pick[:n]], values[pick[n:2 * n]] * (1 + shift)
            sides = []
            for label, vals in (("A", a), ("B", b)):
                m = ModelRuns(name="fixture", settings={"device": "cpu"}, status=["ok"],
                              latency={q: list(vals)})
                sides.append(Side(label=label, kind="results", runs=n, models={"fixture": m}))
            report = compare_sides(sides[0], sides[1], cfg, mode="resampled")
            v = next(x for x in report.verdicts if x.metric == "latency_ms")
            counts[v.verdict] += 1
            if v.ratio is not None:
                errors.append(abs(v.ratio - (1 + shift)) * 100)
            if v.ci_low is not None and v.ci_low <= 1 + shift <= v.ci_high:
                covered += 1
        out[f"{shift:+.0%}"] = {
            "shift": shift, "trials": trials,
            **{f"{k.lower()}_rate": c / trials for k, c in counts.items()},
            "median_abs_ratio_error_pp": float(np.median(errors)) if errors else None,
            "ci_coverage": covered / trials,
        }
    return {"n_per_side": n, "family": family, "alpha": config.alpha, "pool": len(values),
            "design": "lockstep" if paired else "runs",
            "between_run_robust_sd": robust_sd(values if paired else np.log(values)),
            "shifts": out}
