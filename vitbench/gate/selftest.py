"""The gate measured on itself: a fixture model with injected changes of known size.

(1) A real A/A + A/B :func:`~vitbench.gate.ab.run_ab` through ``vitbench:gate_fixture``: row
``aa`` is unchanged, ``lat5/10/20`` re-run 1/2/4 of its 20 blocks (+5/10/20 % latency),
``mem8`` holds an extra 8 MiB tensor, ``linear`` adds an ``nn.Linear(16, 16)`` (+272 params).
(2) The decision rule on many resampled trials built from the *measured* values of rows
whose latency did not change (lockstep: their per-round ratios, shifted by 1+x; runs:
disjoint sets of run-level latencies, the candidate multiplied by 1+x).

Measured on a quiet 2-core VM with 12 lockstep rounds (docs/ci-gate.md, "Self-test"): the
round-to-round robust SD of the unchanged rows was 2.7 %; in 2,000 resampled trials per
shift the A/A false-FAIL rate was 0 % and INCONCLUSIVE 0 %, +10 % and +20 % were caught
100 % of the time, a change at δ = 5 % split 16 % FAIL / 83 % WARN, the ratio error was under
one point and the 95 % CI covered the truth 93–95 % of the time. The previous design (one
summary per fresh run) saw a 14.9 % between-run SD on the same machine and answered
INCONCLUSIVE 99.8 % of the time. Resampled trials reuse real measurements of one campaign,
so they are optimistic: no cross-job drift.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from vitbench.config.spec import ModelEntry, Settings, Suite
from vitbench.files import write_atomic
from vitbench.gate.ab import CALIBRATION_ROW, AbRuns, Progress, load_ab_dir, run_ab
from vitbench.gate.config import GFLOPS, LATENCY, PARAMS, PEAK_MEMORY, GateConfig, GateError
from vitbench.gate.nonparametric import robust_sd
from vitbench.gate.render import write_report
from vitbench.gate.rules import compare_sides
from vitbench.gate.sides import ModelRuns, Side, per_run_latencies, side_from_results
from vitbench.gate.verdict import (CALIBRATION, FAIL, INCONCLUSIVE, LOCKSTEP, NOT_COMPARABLE, RUNS,
                                   GateReport)

SELFTEST_SCHEMA = "vitbench.gate-selftest/1"
SELFTEST_FILE = "selftest.json"

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
#: The metrics each injection must FAIL (an extra Linear adds parameters and MACs).
EXPECTED_FAILS = {"aa": (), "lat5": (LATENCY,), "lat10": (LATENCY,), "lat20": (LATENCY,),
                  "mem8": (PEAK_MEMORY,), "linear": (PARAMS, GFLOPS)}
#: Selftest rows whose latency is unchanged by construction: the A/A pool of lockstep ratios
#: (``linear`` adds a 16×16 Linear, ``mem8`` allocates once; neither changes a forward's time
#: measurably; the calibration probe is timed against itself).
LATENCY_NULL_ROWS = ("aa", "linear", "mem8", CALIBRATION_ROW)
RESAMPLING_NOTE = ("resampled trials reuse real measured values of rows whose latency did not "
                   "change (lockstep: per-round ratios of aa, linear, mem8 and the calibration "
                   "probe; runs: run-level latencies of the unchanged fixture); not independent "
                   "runs, so optimistic: no cross-job drift")


def selftest_suites(rows: Sequence[str], *, repeat: int = 20, threads: int = 1) -> tuple[Suite, Suite]:
    """Suite A: every row is the plain fixture; suite B: the same rows with the injections."""
    unknown = [r for r in rows if r not in INJECTIONS]
    if unknown:
        raise GateError(f"--inject: unknown injection {unknown[0]!r}; known: {', '.join(INJECTIONS)}")
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
        if v.kind == CALIBRATION:
            continue
        entry = by_row.setdefault(v.model, {"verdicts": {}})
        entry["verdicts"][v.metric] = v.verdict
        if v.metric == LATENCY:
            entry["latency_ratio"] = v.ratio
            entry["latency_ci"] = [v.ci_low, v.ci_high]
            if v.model in NOMINAL and v.ratio is not None:
                entry["ratio_error_pp"] = (v.ratio - NOMINAL[v.model]) * 100
    for row, entry in by_row.items():
        targets = EXPECTED_FAILS.get(row, ())
        verdicts = entry["verdicts"]
        entry["false_alarm"] = [m for m, x in verdicts.items() if x == FAIL and m not in targets]
        entry["inconclusive"] = [m for m, x in verdicts.items() if x in (INCONCLUSIVE, NOT_COMPARABLE)]
        if targets:
            entry["detected"] = all(verdicts.get(t) == FAIL for t in targets)
    return by_row


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
    trial draws ``n`` of them (one set) and adds ln(1 + shift). Returns per shift: the FAIL,
    WARN, IMPROVED, INCONCLUSIVE and PASS rates, the median |ρ̂ − (1+shift)| in percentage
    points and the 95 % CI coverage of 1+shift.
    """
    config = config or GateConfig()
    values = np.asarray(values, float)
    if len(values) < (n if paired else 2 * n):
        raise ValueError(f"{len(values)} measured run values cannot give two disjoint sets of {n}")
    trial_config = dataclasses.replace(config, alpha=config.alpha / family, metrics=(LATENCY,))
    q = trial_config.latency_quantile("cpu")
    rng = np.random.default_rng(seed)

    def one_model_side(label: str, latency: dict[float, list[float]], runs: int) -> Side:
        model = ModelRuns(name="fixture", settings={"device": "cpu"}, status=["ok"], latency=latency)
        return Side(label=label, kind="results", runs=runs, models={"fixture": model})

    out: dict[str, Any] = {}
    for shift in shifts:
        counts = {k: 0 for k in ("FAIL", "WARN", "IMPROVED", "INCONCLUSIVE", "PASS", "NOT_COMPARABLE")}
        errors, covered = [], 0
        for _ in range(trials):
            pick = rng.permutation(len(values))
            if paired:
                d = values[pick[:n]] + np.log1p(shift)
                sides = [one_model_side(label, {0.5: [1.0] * n}, n) for label in "AB"]
                report = compare_sides(*sides, trial_config, mode="resampled",
                                       paired={"fixture": d})
            else:
                a, b = values[pick[:n]], values[pick[n:2 * n]] * (1 + shift)
                report = compare_sides(one_model_side("A", {q: list(a)}, n),
                                       one_model_side("B", {q: list(b)}, n), trial_config,
                                       mode="resampled")
            v = next(x for x in report.verdicts if x.metric == LATENCY)
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
            "design": LOCKSTEP if paired else RUNS,
            "between_run_robust_sd": robust_sd(values if paired else np.log(values)),
            "shifts": out}


@dataclass
class SelftestResult:
    """A self-test: the real A/A + A/B verdicts, the resampled rates, where they were written."""

    report: GateReport
    measured: AbRuns
    real: dict[str, Any]
    resampled: Optional[dict[str, Any]]
    trial_size: int  # lockstep rounds (or runs per side) in each resampled trial
    out_dir: Path

    def document(self) -> dict[str, Any]:
        """The content of ``selftest.json``."""
        return {"schema": SELFTEST_SCHEMA, "runs_per_side": len(self.measured.runs_a),
                "real": self.real, "resampled": self.resampled,
                "resampling_note": RESAMPLING_NOTE}


def run_selftest(rows: Sequence[str], out_dir: str | Path, *, runs: int = 12,
                 design: str = LOCKSTEP, from_dir: Optional[str | Path] = None,
                 repeat: int = 20, trials: int = 2000, n: int = 12, family: int = 10,
                 config: Optional[GateConfig] = None,
                 progress: Progress = lambda m: None) -> SelftestResult:
    """Measure the injected rows (or re-analyse the ``ab`` folder ``from_dir``), score the
    real verdicts, run the resampled trials, and write ``verdict.*`` and ``selftest.json``
    to ``out_dir``."""
    config = config or GateConfig()
    out_dir = Path(out_dir)
    if from_dir is not None:
        measured = load_ab_dir(from_dir)
        report = compare_sides(side_from_results(measured.runs_a, "A"),
                               side_from_results(measured.runs_b, "B"), config, mode="ab",
                               paired=measured.paired)
    else:
        suite_a, suite_b = selftest_suites(rows, repeat=repeat)
        report, measured = run_ab(suite_a, suite_b, runs, out_dir, config=config,
                                  confirm_failures=False, design=design, progress=progress)
    if measured.paired:
        pool = pooled_paired_values(measured.paired)
        trial_size = min(n, len(pool))
    else:
        q = config.latency_quantile("cpu")
        pool = per_run_latencies(measured.runs_a, q) + \
            per_run_latencies(measured.runs_b, q, names={"aa"})
        trial_size = min(n, len(pool) // 2)
    resampled = (resampled_trials(pool, n=trial_size, trials=trials, family=family,
                                  config=config, paired=bool(measured.paired))
                 if trial_size >= 2 else None)
    result = SelftestResult(report, measured, score_real(report), resampled, trial_size, out_dir)
    write_report(report, out_dir)
    write_atomic(out_dir / SELFTEST_FILE, json.dumps(result.document(), indent=1) + "\n")
    return result


def summary_lines(result: SelftestResult) -> list[str]:
    """The self-test for the terminal (Rich markup), one line per row and per shift; paths and
    row names escaped (they are text, never markup)."""
    from rich.markup import escape

    runs = len(result.measured.runs_a)
    lines = [f"[bold]Real A/A + A/B[/bold] ({runs} runs per side; verdicts in "
             f"{escape(str(result.out_dir))}/verdict.md)"]
    for row, entry in result.real.items():
        verdicts = ", ".join(f"{m}={v}" for m, v in entry["verdicts"].items())
        extra = ""
        if entry.get("latency_ratio"):
            extra = f"; latency ratio {entry['latency_ratio']:.3f}"
            if "ratio_error_pp" in entry:
                extra += f" (nominal error {entry['ratio_error_pp']:+.1f} pp)"
        if "detected" in entry:
            status = "detected" if entry["detected"] else "MISSED"
        else:
            status = ("false alarm: " + ",".join(entry["false_alarm"]) if entry["false_alarm"]
                      else "no false alarm")
        lines.append(f"  {escape(str(row))}: {status}; {verdicts}{extra}")
    resampled = result.resampled
    if resampled:
        size = result.trial_size
        what = (f"{size} lockstep rounds per trial drawn from {resampled['pool']} measured "
                f"round ratios, round-to-round robust SD" if result.measured.paired else
                f"{resampled['pool']} run values, {size} vs {size} per trial, between-run "
                f"robust SD")
        lines.append(f"[bold]Resampled trials[/bold] ({what} "
                     f"{resampled['between_run_robust_sd']:.1%}; "
                     f"α={result.report.config.alpha:g}/{resampled['family']})")
        for key, s in resampled["shifts"].items():
            lines.append(
                f"  shift {key}: FAIL {s['fail_rate']:.1%}  WARN {s['warn_rate']:.1%}  "
                f"INCONCLUSIVE {s['inconclusive_rate']:.1%}  IMPROVED {s['improved_rate']:.1%}  "
                f"PASS {s['pass_rate']:.1%}  |ρ̂−true| median {s['median_abs_ratio_error_pp']:.2f} pp  "
                f"CI coverage {s['ci_coverage']:.0%}")
    else:
        lines.append("resampled trials skipped: fewer than 4 measured run values")
    lines.append(f"written: {escape(str(result.out_dir))}/{SELFTEST_FILE}")
    return lines
