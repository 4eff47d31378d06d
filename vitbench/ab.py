"""In-job A/B measurement for the gate: two suites, interleaved fresh runs, then a verdict.

One *run* of a side is ``runner.run_suite`` over that side's suite (rows in a per-run
shuffled order, each row in its own fresh worker process) plus the calibration probe
(``vitbench:gate_calibration``: a GEMM and a 3×3 conv). Runs alternate A B B A A B … so both
sides see the same machine conditions. If a noisy metric FAILs, only the failing models are
re-measured (``runs`` more interleaved runs per side) and the FAIL must hold on the pooled
runs (:func:`vitbench.gate.confirm`), otherwise it is reported as WARN (unconfirmed).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from .gate import (CALIBRATION_MODEL, FAIL, GateConfig, GateReport, compare_sides, confirm,
                   side_from_results)
from .records import RunResult
from .spec import ModelEntry, Suite

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
    from .runner import run_suite

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


def run_ab(suite_a: Suite, suite_b: Suite, runs_per_side: int, out_dir: str | Path, *,
           overrides: Optional[dict[str, Any]] = None, config: Optional[GateConfig] = None,
           confirm_failures: bool = True, seed: int = 0,
           progress: Progress = lambda m: None) -> tuple[GateReport, dict[str, list[RunResult]]]:
    """Measure A and B interleaved, decide, confirm noisy failures; return the report and runs."""
    config = config or GateConfig()
    out_dir = Path(out_dir)
    runs_a, runs_b = measure_interleaved(suite_a, suite_b, runs_per_side, out_dir,
                                         overrides=overrides, seed=seed, progress=progress)
    quantiles = sorted({0.2, 0.5} | ({config.quantile} if config.quantile else set()))
    label_a, label_b = f"A ({suite_a.name})", f"B ({suite_b.name})"
    report = compare_sides(side_from_results(runs_a, label_a, quantiles),
                           side_from_results(runs_b, label_b, quantiles), config, mode="ab")
    failing = sorted({v.model for v in report.verdicts if v.verdict == FAIL and v.kind == "noisy"})
    if failing and confirm_failures:
        progress(f"confirming {len(failing)} failing model(s): {', '.join(failing)}")
        more_a, more_b = measure_interleaved(suite_a, suite_b, runs_per_side, out_dir,
                                             overrides=overrides, only=failing, seed=seed + 1,
                                             stage="2", progress=progress)
        runs_a, runs_b = runs_a + more_a, runs_b + more_b
        pooled = compare_sides(side_from_results(runs_a, label_a, quantiles),
                               side_from_results(runs_b, label_b, quantiles), config, mode="ab")
        confirm(report, pooled)
    elif failing:
        report.notes.append("noisy FAILs were NOT confirmed by re-measurement (--no-confirm)")
    report.notes.append(f"runs kept in {out_dir} (raw samples in each results.json)")
    return report, {"A": runs_a, "B": runs_b}


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
    from .spec import Settings

    unknown = [r for r in rows if r not in INJECTIONS]
    if unknown:
        raise ValueError(f"unknown injection {unknown[0]!r}; known: {', '.join(INJECTIONS)}")
    defaults = Settings(threads=threads, warmup=5, repeat=repeat, min_time_s=0.2,
                        image_size=224, batch_size=1, device="cpu")

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
    expected = {"aa": None, "lat5": "latency_ms", "lat10": "latency_ms", "lat20": "latency_ms",
                "mem8": "peak_memory_mb", "linear": "params"}
    for row, entry in by_row.items():
        target = expected.get(row)
        verdicts = entry["verdicts"]
        entry["false_alarm"] = [m for m, x in verdicts.items() if x == FAIL and m != target]
        entry["inconclusive"] = [m for m, x in verdicts.items() if x in ("INCONCLUSIVE", "NOT_COMPARABLE")]
        if target:
            entry["detected"] = verdicts.get(target) == FAIL
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


def resampled_trials(values: Sequence[float], *, n: int, trials: int = 2000,
                     shifts: Sequence[float] = (0.0, 0.05, 0.10, 0.20, -0.10), family: int = 10,
                     config: Optional[GateConfig] = None, seed: int = 0) -> dict[str, Any]:
    """Validate the decision rule on resampled *measured* run-level values.

    Each trial draws two disjoint sets of ``n`` values from ``values`` (real runs of one
    unchanged model), multiplies the candidate set by ``1 + shift``, and decides it with the
    gate's own code. The test is judged as one of ``family`` tests (α/family: Holm's first
    step). Returns per shift: the FAIL, WARN, IMPROVED, INCONCLUSIVE and PASS rates, the median
    |ρ̂ − (1+shift)| in percentage points and the 95 % CI coverage of 1+shift.
    """
    import dataclasses

    import numpy as np

    from .gate import ModelRuns, Side, robust_sd

    config = config or GateConfig()
    values = np.asarray(values, float)
    if len(values) < 2 * n:
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
            "between_run_robust_sd": robust_sd(np.log(values)),
            "shifts": out}
