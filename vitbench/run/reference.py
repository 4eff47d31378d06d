"""Reference-relative latency: each row timed in lockstep with one reference model.

Why: on a shared machine the speed of a process drifts over seconds and differs between
processes, so a row's absolute median moves by 10–15 % from run to run even when nothing
changed. Timed in alternating short blocks with a reference model (row, reference,
reference, row, ...), both see the same machine in every pair of blocks, and their ratio
repeats to a few percent (the block protocol of ``vitbench ab``: :mod:`vitbench.gate.lockstep`).

A row's first process times it alone and counts it (:mod:`vitbench.run.workers`); each
further process is a fresh worker for the row, timed against a live reference worker in
one pass over the suite (:class:`ReferencePass`). A pass has its own reference process(es),
so a reference's own process effect is shared by every row of that pass and averaged over
the passes. Inside a process the blocks go on until the ratio's 95 % CI is within
:data:`TARGET_CI_PCT`, at least :data:`MIN_PAIRS` pairs, at most :data:`MAX_PAIRS` (or
``max_time_s``): adaptive stopping. Each side's block lasts about
:data:`~vitbench.run.lockstep.BLOCK_S`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from vitbench.config.spec import Job, ModelEntry, Suite
from vitbench.records import ModelResult, RelativeLatency
from vitbench.run.lockstep import LockstepWorker, WorkerGone, block_calls, median, side_row

#: the reference when a suite names none: small, conv-only, in every zoo's docs, and a
#: row of several seed tables
DEFAULT_REFERENCE = "timm:resnet18"
#: a suite's ``reference_model: none`` (or ``--reference-model none``) turns it off
NO_REFERENCE = "none"
#: adaptive stopping per process: at least / at most this many block pairs, and stop early
#: once the process's ratio CI half-width is within TARGET_CI_PCT
MIN_PAIRS = 8
MAX_PAIRS = 12
TARGET_CI_PCT = 2.0
#: the reference waits idle while each row's worker starts: a short warm-up again
REWARM_S = 0.1
#: the settings a row and its reference must share (the reference copies the row's)
SHARED_SETTINGS = ("device", "dtype", "threads", "runtime", "compile", "channels_last",
                   "autocast", "cudnn_benchmark", "timeout_s", "max_time_s")


class ReferenceUnavailable(Exception):
    """The reference could not be started or timed; the row is timed alone instead."""


def reference_model_of(suite: Suite, override: Optional[str] = None) -> Optional[str]:
    """The run's reference model name, or None when the suite or the command turned it off."""
    name = override or suite.reference_model or DEFAULT_REFERENCE
    return None if name.strip().lower() == NO_REFERENCE else name


def reference_job(suite: Suite, model: str, overrides: Optional[dict] = None) -> Job:
    """The reference as a job: the suite's defaults (input size, batch) and the command's
    overrides; :func:`for_row` copies each row's device, threads, dtype and runtime onto it."""
    from vitbench.config.suite import resolve_jobs

    entry = ModelEntry(name="reference", model=model)
    job = resolve_jobs(suite, entry, overrides)[0]
    return job.model_copy(update={"count": False, "processes": 1, "max_batch": False,
                                  "static_only": False})


def for_row(reference: Job, row: Job) -> Job:
    """The reference with the row's shared settings: timed on the same device, threads,
    dtype and runtime as the row it divides."""
    return reference.model_copy(update={k: getattr(row, k) for k in SHARED_SETTINGS})


def can_be_relative(job: Job) -> bool:
    """Rows the block protocol can time: one call per sample (latency mode), a fixed batch."""
    return job.mode == "latency" and not job.max_batch and not job.static_only


@dataclass
class LockstepProcess:
    """One fresh worker of a row timed against the pass's reference."""

    row: ModelResult
    log_ratios: list[float]
    reference_samples_ms: list[float]
    block_calls: tuple[int, int]  # (row, reference)
    stopped_by: str


class ReferencePass:
    """The reference worker(s) of one pass over the suite: one per distinct set of shared
    settings, started when a row first needs it, closed with the pass."""

    def __init__(self, reference: Job, tmp: Path, label: str = "ref"):
        self.reference, self.tmp, self.label = reference, tmp, label
        self.sides: dict[tuple, LockstepWorker] = {}
        self.failed: dict[tuple, str] = {}
        self.samples_ms: list[float] = []
        self.rows = 0
        self._count = 0

    def __enter__(self) -> "ReferencePass":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for side in self.sides.values():
            side.close()
        self.sides.clear()

    def _reference_for(self, job: Job) -> LockstepWorker:
        ref_job = for_row(self.reference, job)
        key = tuple(getattr(ref_job, k) for k in SHARED_SETTINGS)
        if key in self.failed:
            raise ReferenceUnavailable(self.failed[key])
        side = self.sides.get(key)
        if side is not None and side.proc.poll() is None:
            return side
        try:
            side = self._start(ref_job, f"{self.label}-{len(self.sides) + 1}")
            side.warm()
        except WorkerGone as exc:
            self.failed[key] = f"reference {ref_job.model}: {exc}"
            raise ReferenceUnavailable(self.failed[key]) from None
        self.sides[key] = side
        return side

    def _start(self, job: Job, label: str) -> LockstepWorker:
        side = LockstepWorker(job, self.tmp, label)
        try:
            side.wait_ready()
        except WorkerGone:
            side.close()
            raise
        return side

    def time_row(self, job: Job, on_stage: Callable[[str], None] = lambda s: None
                 ) -> LockstepProcess:
        """Time ``job`` in a fresh worker against the reference, in alternating blocks.

        Raises :class:`ReferenceUnavailable` when the reference cannot run (the caller times
        the row alone); a row worker that fails gives a failed row, never an exception.
        """
        ref = self._reference_for(job)
        ref.deadline = time.monotonic() + max(ref.job.timeout_s, job.timeout_s)  # per row
        self._count += 1
        row_job = job.model_copy(update={"count": False, "processes": 1})
        try:
            row = self._start(row_job, f"row-{self._count}")
        except WorkerGone as exc:
            status = "timeout" if "timed out" in str(exc) else "failed"
            return LockstepProcess(ModelResult.for_job(job, status=status, error=str(exc)[:800]),
                                   [], [], (0, 0), "failed")
        try:
            return self._blocks(row, ref, on_stage)
        except WorkerGone as exc:
            if ref.proc.poll() is not None:  # the reference died: not the row's fault
                self.sides = {k: s for k, s in self.sides.items() if s is not ref}
                raise ReferenceUnavailable(f"reference {ref.job.model}: {exc}") from None
            status = "timeout" if "timed out" in str(exc) else "failed"
            return LockstepProcess(ModelResult.for_job(job, status=status, error=str(exc)[:800]),
                                   [], [], (0, 0), "failed")
        finally:
            row.close()

    def _blocks(self, row: LockstepWorker, ref: LockstepWorker,
                on_stage: Callable[[str], None]) -> LockstepProcess:
        job = row.job
        row_warm = row.warm()
        ref_warm = ref.warm(2, REWARM_S)
        row.calls, ref.calls = block_calls(row_warm[0]), block_calls(ref_warm[0])
        ref_before = len(ref.samples_ms)
        log_ratios: list[float] = []
        started, stopped_by = time.monotonic(), "max-pairs"
        on_stage("time vs reference")
        while len(log_ratios) < MAX_PAIRS:
            order = (ref, row) if len(log_ratios) % 2 == 0 else (row, ref)
            block = {id(side): side.block() for side in order}
            log_ratios.append(math.log(median(block[id(row)]) / median(block[id(ref)])))
            if len(log_ratios) >= MIN_PAIRS:
                halfwidth = ratio_ci_halfwidth_pct(log_ratios)
                if halfwidth is not None and halfwidth <= TARGET_CI_PCT:
                    stopped_by = "ci-target"
                    break
            if time.monotonic() - started > job.max_time_s:
                stopped_by = "max-time"
                break
        finish = row.finish()
        ref_samples = ref.samples_ms[ref_before:]
        self.samples_ms.extend(ref_samples)
        self.rows += 1
        result = side_row(job, row.ready, finish, row.samples_ms, warmup_calls=row_warm[1],
                          lockstep={"reference": ref.job.model, "block_calls": row.calls,
                                    "reference_block_calls": ref.calls,
                                    "block_pairs": len(log_ratios), "stopped_by": stopped_by})
        return LockstepProcess(result, log_ratios, ref_samples, (row.calls, ref.calls),
                               stopped_by)


def ratio_ci_halfwidth_pct(log_ratios: list[float]) -> Optional[float]:
    """Half-width of the median ratio's 95 % CI, in percent of the ratio (None: < 6 pairs)."""
    from vitbench.stats import median_ci

    if len(log_ratios) < 6:
        return None
    low, high = median_ci(sorted(log_ratios))
    return 50 * (math.exp(high) - math.exp(low)) / math.exp(median(log_ratios))


def relative_latency(reference: str, processes: list[LockstepProcess]) -> Optional[RelativeLatency]:
    """The row's ratio to the reference over all its lockstep processes (None: none timed).

    The process is the unit that repeats (a fresh pair of workers, its own memory layout),
    so the ratio comes from the processes' own median ratios: their median when there are
    three or more (one process in an odd mood, measured up to 20 % off its siblings, does not
    move it), their geometric mean with two; a median over pooled pairs would jump between
    two processes that disagree. The CI is the order-statistic interval of the median over
    every block pair, widened to take in each process's ratio: pairs inside one process are
    not independent, so the pooled interval alone would claim too much."""
    from vitbench.stats import median_ci

    timed = [p for p in processes if p.log_ratios]
    if not timed:
        return None
    pooled = sorted(x for p in timed for x in p.log_ratios)
    per_process = [median(p.log_ratios) for p in timed]
    centre = (median(per_process) if len(per_process) >= 3
              else sum(per_process) / len(per_process))
    low, high = median_ci(pooled)
    low, high = min(low, *per_process), max(high, *per_process)
    return RelativeLatency(
        reference=reference, ratio=round(math.exp(centre), 6), ci_low=round(math.exp(low), 6),
        ci_high=round(math.exp(high), 6), block_pairs=len(pooled),
        block_calls=[p.block_calls[0] for p in timed],
        process_ratios=[round(math.exp(m), 6) for m in per_process],
        stopped_by=[p.stopped_by for p in timed])
