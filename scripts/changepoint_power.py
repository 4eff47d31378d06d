#!/usr/bin/env python3
"""How well `vitbench trend --changes` finds a step, on simulated histories.

Each history is RUNS runs of one latency series: run i's value is the median of PROCESSES
draws of a process-level noise ratio (the spread between fresh worker processes, as vitbench
pools them into one run), times 1 + STEP from run STEP_AT on. The noise ratios are
resampled from real measurements: every ``process_medians_ms`` of the results.json files
given (each divided by its row's median; rows timed with ≥2 processes on the CPU), or, with
--cv, a log-normal of that coefficient of variation plus --outlier-rate runs slowed by
--outlier-size (the research notes' quiet-machine condition).

It prints (and with --json writes) the share of stepped histories with a change point at
STEP_AT ± 1, and the share of step-free histories with any change point, each with a Wilson
95 % interval. Example (the figures in docs/trend.md):

    .venv/bin/python scripts/changepoint_power.py --results '/work/history-runs/*/results.json'
    .venv/bin/python scripts/changepoint_power.py --cv 0.02 --outlier-rate 0.1 --outlier-size 0.55
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vitbench.history.changes import ALPHA, MIN_SIZE, find_splits  # noqa: E402


def process_ratios(patterns: list[str]) -> np.ndarray:
    """Every process median of every CPU row timed with ≥ 2 processes, over its row's median."""
    ratios: list[float] = []
    for pattern in patterns:
        for path in sorted(glob.glob(pattern, recursive=True)):
            try:
                document = json.loads(Path(path).read_text(encoding="utf-8"))
            except (OSError, ValueError, RecursionError):
                continue
            for row in document.get("results") or [] if isinstance(document, dict) else []:
                if not isinstance(row, dict) or row.get("device") != "cpu":
                    continue
                summary = ((row.get("latency") or {}).get("summary") or {})
                medians = summary.get("process_medians_ms") or []
                if len(medians) >= 2:
                    middle = float(np.median(medians))
                    ratios += [m / middle for m in medians]
    return np.asarray(ratios)


def run_to_run_ratios(patterns: list[str]) -> np.ndarray:
    """Each run's median latency over the median of that row's runs (rows in ≥ 3 runs)."""
    by_row: dict[str, list[float]] = {}
    for pattern in patterns:
        for path in sorted(glob.glob(pattern, recursive=True)):
            try:
                document = json.loads(Path(path).read_text(encoding="utf-8"))
            except (OSError, ValueError, RecursionError):
                continue
            for row in document.get("results") or [] if isinstance(document, dict) else []:
                summary = ((row.get("latency") or {}).get("summary") or {})
                if row.get("status") == "ok" and summary.get("median"):
                    by_row.setdefault(row["name"], []).append(float(summary["median"]))
    ratios = [v / float(np.median(vs)) for vs in by_row.values() if len(vs) >= 3 for v in vs]
    return np.asarray(ratios)


def wilson(hits: int, n: int) -> tuple[float, float]:
    """The Wilson 95 % interval of a proportion."""
    z, p = 1.96, hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", action="append", default=[],
                        help="results.json glob(s) whose process medians give the noise")
    parser.add_argument("--noise", choices=("process", "run"), default="process",
                        help="process: spread between worker processes, pooled PROCESSES to a "
                             "run; run: spread between the runs' medians of each row")
    parser.add_argument("--cv", type=float, help="log-normal noise of this CV instead")
    parser.add_argument("--outlier-rate", type=float, default=0.0)
    parser.add_argument("--outlier-size", type=float, default=0.5)
    parser.add_argument("--processes", type=int, default=3, help="processes pooled per run")
    parser.add_argument("--histories", type=int, default=200)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--step", type=float, default=0.10)
    parser.add_argument("--step-at", type=int, default=20)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    if args.cv is not None:
        source = f"log-normal CV {args.cv:.1%}, {args.outlier_rate:.0%} outlier processes " \
                 f"+{args.outlier_size:.0%}"
        sigma = math.sqrt(math.log(1 + args.cv ** 2))

        def draw(shape: tuple[int, ...]) -> np.ndarray:
            noise = rng.lognormal(0.0, sigma, shape)
            return noise * np.where(rng.random(shape) < args.outlier_rate,
                                    1 + args.outlier_size, 1.0)
    else:
        pool = (process_ratios if args.noise == "process" else run_to_run_ratios)(args.results)
        if len(pool) < 10:
            parser.error(f"{len(pool)} noise ratios from --results {args.results}; need ≥ 10")
        source = f"{len(pool)} {args.noise} ratios resampled from {', '.join(args.results)}"

        def draw(shape: tuple[int, ...]) -> np.ndarray:
            return rng.choice(pool, size=shape, replace=True)

    per_run = args.processes if args.noise == "process" or args.cv is not None else 1
    log_noise = np.log(draw((100_000, per_run))).mean(axis=1)  # for the reported spread only
    step = np.where(np.arange(args.runs) >= args.step_at, 1 + args.step, 1.0)
    started = time.perf_counter()
    hits = false_alarms = 0
    located: list[int] = []
    for _ in range(args.histories):
        stepped = np.median(draw((args.runs, per_run)), axis=1) * step
        splits = find_splits(stepped)
        near = [s.index for s in splits if abs(s.index - args.step_at) <= 1]
        hits += bool(near)
        located += [s.index for s in splits]
        flat = np.median(draw((args.runs, per_run)), axis=1)
        false_alarms += bool(find_splits(flat))
    figures = {
        "noise": source, "processes_per_run": per_run,
        "run_noise_sd_log": round(float(np.std(log_noise)), 4),
        "run_noise_robust_cv": round(float(1.4826 * np.median(
            np.abs(log_noise - np.median(log_noise)))), 4),
        "histories": args.histories, "runs": args.runs, "step": args.step,
        "step_at": args.step_at, "alpha": ALPHA, "min_size": MIN_SIZE,
        "detected_at_step_pm1": hits / args.histories,
        "detected_ci95": [round(v, 4) for v in wilson(hits, args.histories)],
        "false_alarm": false_alarms / args.histories,
        "false_alarm_ci95": [round(v, 4) for v in wilson(false_alarms, args.histories)],
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(figures, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
