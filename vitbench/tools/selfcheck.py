"""A benchmark of the harness itself: does vitbench's number agree with simpler ways to time
the same model, and how much does it move from one fresh process to the next?

Two measurements, per model (random weights, batch 1, fixed threads):

1. **Agreement, in one process.** The same built model and input are timed in ``rounds``
   interleaved rounds (each round runs every method once, in a rotating order), by
   * ``vitbench`` — :func:`vitbench.measure.timing.time_calls` (first call apart, warm-up, stop rules),
     median;
   * ``bare loop`` — ``time.perf_counter`` around each call in a plain Python loop after the
     same warm-up, median;
   * ``timm method`` — the method of timm's ``benchmark.py`` (reproduced, not imported):
     10 warm-up steps, then the mean step time over 40 timed steps;
   * ``torch Timer`` — ``torch.utils.benchmark.Timer(..., num_threads=threads)
     .blocked_autorange(min_run_time)``, median.
   The ratio vitbench / reference is taken within each round and the median over rounds is
   reported (1.00 = no overhead or bias). Interleaving matters on a shared VM: its speed
   drifts by 10–30 % over tens of seconds with no visible contention, so methods timed one
   after the other mostly measure the drift.
2. **Run-to-run spread.** ``invocations`` fresh worker processes (exactly what ``vitbench run``
   starts) time the model again; the spread is max/min of their medians.

Each timing also records the CPU other processes used meanwhile (``foreign_cpu_pct``), since
on a shared machine contention, not the harness, usually decides the spread.

A ``python:`` model is searched after the installed packages in ``python_path``
(``--python-path``) and ``PYTHONPATH``, never the working directory, in this process and in
the workers alike (:mod:`vitbench.build.inprocess`).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from vitbench.config.spec import Job

DEFAULT_MODELS = ("timm:resnet18", "timm:deit_tiny_patch16_224", "timm:pvt_v2_b0")

#: timm benchmark.py's defaults (--num-warm-iter, --num-bench-iter).
TIMM_WARMUP, TIMM_STEPS = 10, 40


@dataclass
class Check:
    model: str
    threads: int
    image_size: int
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    invocations: list[dict[str, Any]] = field(default_factory=list)
    error: Optional[str] = None

    def median(self, method: str) -> Optional[float]:
        return self.methods.get(method, {}).get("ms")

    def _log_ratios(self, reference: str) -> list[float]:
        ours = self.methods.get("vitbench", {}).get("rounds_ms") or []
        theirs = self.methods.get(reference, {}).get("rounds_ms") or []
        return [math.log(a / b) for a, b in zip(ours, theirs) if a and b]

    def ratio(self, reference: str) -> Optional[float]:
        """vitbench / reference from the per-round ratios (each pair timed in the same
        round): exp of the Hodges–Lehmann estimate of their logs."""
        from vitbench.gate import hodges_lehmann_paired

        logs = self._log_ratios(reference)
        return math.exp(hodges_lehmann_paired(logs)) if logs else None

    def ratio_ci(self, reference: str, level: float = 0.95) -> Optional[list[float]]:
        """Distribution-free CI of that ratio (Tukey: Walsh averages of the round logs)."""
        from vitbench.gate import walsh_ci

        logs = self._log_ratios(reference)
        if len(logs) < 2:
            return None
        low, high = walsh_ci(logs, level)
        return [math.exp(low), math.exp(high)] if math.isfinite(low) else None

    @property
    def invocation_medians(self) -> list[float]:
        return [i["median_ms"] for i in self.invocations if i.get("median_ms")]

    @property
    def spread(self) -> Optional[float]:
        values = self.invocation_medians
        return max(values) / min(values) if len(values) >= 2 else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "threads": self.threads, "image_size": self.image_size,
            "error": self.error, "methods": self.methods,
            "ratio_vs_bare_loop": self.ratio("bare loop"),
            "ratio_vs_timm_method": self.ratio("timm method"),
            "ratio_vs_torch_timer": self.ratio("torch Timer"),
            "ratio_ci95_vs_bare_loop": self.ratio_ci("bare loop"),
            "ratio_ci95_vs_timm_method": self.ratio_ci("timm method"),
            "ratio_ci95_vs_torch_timer": self.ratio_ci("torch Timer"),
            "invocations": self.invocations,
            "invocation_medians_ms": self.invocation_medians,
            "spread_max_over_min": self.spread,
        }


def _measured(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    from vitbench.env import ContentionMeter

    with ContentionMeter() as meter:
        result = fn()
    result["foreign_cpu_pct"] = meter.foreign_pct
    result["wall_s"] = meter.result.get("wall_s")
    return result


def selfcheck_job(model: str, *, threads: int, image_size: int,
                  python_path: Sequence[str] = (), **timing: Any) -> Job:
    """The job selfcheck times: ``model`` on the CPU at batch 1, timing only (no FLOP count);
    ``timing`` sets protocol fields (``warmup``, ``repeat``, ...). Every other setting is the
    built-in default, resolved as a suite's row is; ``python_path`` replaces the folder of a
    suite (there is none: not the working directory)."""
    from vitbench.build.inprocess import command_line_path

    from vitbench.config.spec import ModelEntry, Suite
    from vitbench.config.suite import resolve_jobs

    entry = ModelEntry(name=model, model=model, image_size=image_size, batch_size=1,
                       device="cpu", threads=threads, processes=1, **timing)
    job = resolve_jobs(Suite(name="selfcheck", models=[entry]), entry)[0]
    return job.model_copy(update={"count": False, "python_path": command_line_path(python_path)})


def agreement(model: str, *, threads: int = 1, image_size: int = 224, warmup: int = 10,
              min_time_s: float = 1.5, repeat: int = 30, rounds: int = 5,
              python_path: Sequence[str] = ()) -> Check:
    """Time one model four ways in this process, in interleaved rounds (module docstring).

    ``min_time_s`` and ``repeat`` are per method per round.
    """
    from vitbench.measure.session import DeviceSession

    check = Check(model=model, threads=threads, image_size=image_size)
    job = selfcheck_job(model, threads=threads, image_size=image_size, python_path=python_path)
    with DeviceSession(job) as session:
        _agree(check, session, warmup=warmup, min_time_s=min_time_s, repeat=repeat,
               rounds=rounds, python_path=job.python_path)
    return check


def _agree(check: Check, session, *, warmup: int, min_time_s: float, repeat: int,
           rounds: int, python_path: Sequence[str]) -> None:
    import torch
    import torch.utils.benchmark as tbench

    from vitbench.build import zoo
    from vitbench.build.inprocess import PYTHON_PATH_HINT, use_in_process
    from vitbench.measure.timing import Protocol, time_calls
    from vitbench.stats import summarize

    size = (check.image_size, check.image_size)
    try:
        use_in_process(check.model, python_path, PYTHON_PATH_HINT)
        torch.manual_seed(0)
        module = zoo.build_model(check.model, {}, size)
        inputs = zoo.example_inputs(module, 1, size)
    except Exception as exc:  # noqa: BLE001 - reported on the check, the others go on
        check.error = f"{exc.__class__.__name__}: {exc}"
        return

    def forward():
        return module(*inputs)

    warm = {"calls": warmup}  # full warm-up in the first round; the model stays warm after

    def ours() -> dict[str, Any]:
        timing = time_calls(forward, Protocol(warmup=warm["calls"], repeat=repeat,
                                              min_time_s=min_time_s),
                            sync=session.sync, timer=session.timer)
        summary = summarize(timing.samples_ms)
        return {"ms": summary.median, "n": summary.n, "statistic": "median",
                "ci_halfwidth_pct": round(summary.ci_halfwidth_pct, 2)}

    def bare() -> dict[str, Any]:
        for _ in range(warm["calls"]):
            forward()
        samples, spent = [], 0.0
        while len(samples) < repeat or spent < min_time_s:
            start = time.perf_counter()
            forward()
            elapsed = time.perf_counter() - start
            samples.append(elapsed * 1000)
            spent += elapsed
        return {"ms": statistics.median(samples), "n": len(samples), "statistic": "median"}

    def timm_method() -> dict[str, Any]:
        for _ in range(TIMM_WARMUP):
            forward()
        total = 0.0
        for _ in range(TIMM_STEPS):
            start = time.perf_counter()
            forward()
            total += time.perf_counter() - start
        return {"ms": total / TIMM_STEPS * 1000, "n": TIMM_STEPS, "statistic": "mean"}

    def torch_timer() -> dict[str, Any]:
        timer = tbench.Timer(stmt="forward()", globals={"forward": forward},
                             num_threads=check.threads)
        measurement = timer.blocked_autorange(min_run_time=min_time_s)
        return {"ms": measurement.median * 1000, "n": len(measurement.times),
                "statistic": "median of blocks", "block_calls": measurement.number_per_run}

    methods = [("vitbench", ours), ("bare loop", bare), ("timm method", timm_method),
               ("torch Timer", torch_timer)]
    per_round: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in methods}
    with torch.inference_mode():
        for round_index in range(rounds):
            shift = round_index % len(methods)
            for name, method in methods[shift:] + methods[:shift]:
                try:
                    per_round[name].append(_measured(method))
                except Exception as exc:  # noqa: BLE001
                    per_round[name].append({"error": f"{exc.__class__.__name__}: {exc}"})
            warm["calls"] = 2
    for name, results in per_round.items():
        values = [r["ms"] for r in results if "ms" in r]
        errors = [r["error"] for r in results if "error" in r]
        if not values:
            check.methods[name] = {"error": errors[0] if errors else "no result"}
            continue
        check.methods[name] = {
            "ms": statistics.median(values), "rounds_ms": values,
            "statistic": f"median over {len(values)} rounds of the round's "
                         f"{results[0].get('statistic', 'value')}",
            "n_per_round": [r.get("n") for r in results if "ms" in r],
            "foreign_cpu_pct": max(r.get("foreign_cpu_pct") or 0 for r in results),
            **({"errors": errors} if errors else {}),
        }


def invocations(check: Check, count: int, *, warmup: int = 10, min_time_s: float = 1.5,
                repeat: int = 30, timeout_s: float = 300, python_path: Sequence[str] = ()) -> None:
    """Time ``check.model`` in ``count`` fresh worker processes; fills ``check.invocations``."""
    from vitbench.run.workers import run_worker

    job = selfcheck_job(check.model, threads=check.threads, image_size=check.image_size,
                        warmup=warmup, repeat=repeat, min_time_s=min_time_s, timeout_s=timeout_s,
                        python_path=python_path)
    for index in range(count):
        started = time.perf_counter()
        row = run_worker(job)
        entry: dict[str, Any] = {"invocation": index + 1, "status": row.status,
                                 "wall_s": round(time.perf_counter() - started, 2)}
        if row.status == "ok":
            summary, telemetry = row.latency.summary, row.telemetry
            entry.update(median_ms=summary.median, n=summary.n,
                         ci_halfwidth_pct=summary.ci_halfwidth_pct,
                         foreign_cpu_pct=telemetry.foreign_cpu_pct, contended=telemetry.contended)
        else:
            entry["error"] = row.error
        check.invocations.append(entry)


def run_selfcheck(models=DEFAULT_MODELS, *, threads: int = 1, image_size: int = 224,
                  invocation_count: int = 3, min_time_s: float = 3.0, rounds: int = 20,
                  python_path: Sequence[str] = (),
                  on_progress: Callable[[str], None] = lambda message: None) -> dict[str, Any]:
    """Agreement for every model, then the fresh-process spread; a JSON-ready report."""
    from vitbench.env import environment

    started = time.perf_counter()
    env = environment(with_gpu=False)
    checks = []
    for model in models:
        on_progress(f"{model}: timing four ways in this process")
        checks.append(agreement(model, threads=threads, image_size=image_size,
                                min_time_s=min_time_s / rounds, repeat=max(5, 30 // rounds),
                                rounds=rounds, python_path=python_path))
    for check in checks:
        if check.error or invocation_count < 1:
            continue
        on_progress(f"{check.model}: {invocation_count} fresh worker processes")
        invocations(check, invocation_count, min_time_s=min_time_s, python_path=python_path)
    from vitbench.env import load_average

    env["load_average_1m_after"] = load_average()
    return {
        "schema": "vitbench.selfcheck/1",
        "settings": {"threads": threads, "image_size": image_size, "batch_size": 1,
                     "min_time_s": min_time_s, "rounds": rounds,
                     "invocations": invocation_count,
                     "timm_method": f"{TIMM_WARMUP} warm-up steps, mean of {TIMM_STEPS}"},
        "environment": env,
        "checks": [c.to_dict() for c in checks],
        "wall_s": round(time.perf_counter() - started, 1),
    }
