"""A row's extra timing processes, spread over the run in passes.

Pass 1 (the runner's loop) measures every row once: build, time, peak memory, count. Pass
``p`` = 2, 3, ... then times every row that asked for ``processes >= p`` once more, in a
fresh worker: against the pass's live reference worker in lockstep when the run has one
(:mod:`vitbench.run.reference`), alone otherwise. Why passes: a machine's speed drifts over
minutes, and a row whose three processes ran back to back got all three in one mood; spread
over the run, the drift is shared by every row. After each process the row is pooled again
(:func:`vitbench.measure.job.pool_processes`) and saved, so an interrupted run keeps every
finished sample; the row says how many of its processes ran
(``environment["timing_processes"]``).
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Optional

from vitbench.config.plan import PlannedRow
from vitbench.config.spec import Job
from vitbench.records import LatencySummary, ModelResult, ReferenceRecord, RunResult
from vitbench.run.reference import (LockstepProcess, ReferencePass, ReferenceUnavailable,
                                    can_be_relative, relative_latency)
from vitbench.run.workers import owned_temp_dir, run_worker, sweep_temp_dirs

#: ``notify(kind, index, row, detail)`` as in :mod:`vitbench.run.runner`
Notify = Callable[[str, int, ModelResult, str], None]


def timing_processes(row: ModelResult) -> Optional[dict]:
    """``{"planned": P, "done": k}`` for a timed row (None: not timed)."""
    return row.environment.get("timing_processes")


def _needs_more(row: ModelResult) -> bool:
    """Timed once in pass 1, more processes planned (a row kept by a resume has them all)."""
    done = timing_processes(row)
    return done is not None and done["done"] == 1 < done["planned"]


def mark_first_process(row: ModelResult, job: Job) -> None:
    """After pass 1: the row's first process is done, ``job.processes`` planned."""
    if row.status == "ok" and row.latency is not None and row.latency.samples_ms:
        row.environment["timing_processes"] = {"planned": job.processes, "done": 1}


class LaterPasses:
    """Passes 2..P over ``planned`` rows whose first process is in ``run.results``."""

    def __init__(self, planned: list[PlannedRow], run: RunResult, *, reference: Optional[Job],
                 save: Callable[[], None], notify: Notify,
                 merge: Callable[[ModelResult, ModelResult], ModelResult],
                 should_stop: Callable[[], Optional[str]] = lambda: None,
                 skip: frozenset[int] = frozenset()):
        self.planned, self.run, self.reference = planned, run, reference
        self.save, self.notify, self.merge, self.should_stop = save, notify, merge, should_stop
        self.firsts = {i: run.results[i] for i, p in enumerate(planned)
                       if p.job is not None and i not in skip
                       and _needs_more(run.results[i])}
        self.others: dict[int, list[ModelResult]] = {i: [] for i in self.firsts}
        self.lockstep: dict[int, list[LockstepProcess]] = {i: [] for i in self.firsts}
        self.reference_samples: list[float] = []
        self.reference_errors: list[str] = []
        self.reference_processes = 0
        self.reference_rows = 0
        self.seconds: dict[str, float] = {}

    @property
    def passes(self) -> int:
        return max((self.planned[i].job.processes for i in self.firsts), default=1)

    def run_all(self) -> Optional[str]:
        """Every later pass; returns the stop reason when ``should_stop`` ended them early."""
        for number in range(2, self.passes + 1):
            started = time.monotonic()
            try:
                stop = self.one_pass(number)
            finally:
                self.seconds[f"pass {number}"] = round(time.monotonic() - started, 3)
                self.run.reference = self.reference_record()
            if stop:
                return stop
        return None

    def one_pass(self, number: int) -> Optional[str]:
        rows = [i for i in self.firsts if self.planned[i].job.processes >= number]
        if not rows:
            return None
        sweep_temp_dirs()
        with contextlib.ExitStack() as stack:
            reference = None
            if self.reference is not None:
                tmp = stack.enter_context(owned_temp_dir())
                reference = stack.enter_context(ReferencePass(self.reference, tmp, f"ref{number}"))
            for index in rows:
                stop = self.should_stop()
                if stop:
                    return stop
                self.time_once(index, number, reference)
            if reference is not None:
                self.reference_samples.extend(reference.samples_ms)
                self.reference_errors.extend(e for e in reference.failed.values()
                                             if e not in self.reference_errors)
                self.reference_processes += len(reference.sides) or bool(reference.samples_ms)
                self.reference_rows += reference.rows
        return None

    def time_once(self, index: int, number: int, reference: Optional[ReferencePass]) -> None:
        job = self.planned[index].job
        row = self.run.results[index]
        total = job.processes
        stage = (lambda s, i=index, r=row: self.notify("stage", i, r, f"{s} ({number}/{total})"))
        timing_only = job.model_copy(update={"count": False, "processes": 1})
        measured: Optional[ModelResult] = None
        if reference is not None and can_be_relative(job):
            try:
                process = reference.time_row(job, stage)
                self.lockstep[index].append(process)
                measured = process.row
            except ReferenceUnavailable as exc:
                if str(exc) not in self.reference_errors:
                    self.reference_errors.append(str(exc))
        if measured is None:
            stage("time")
            measured = run_worker(timing_only, stage)
        self.others[index].append(measured)
        self.run.results[index] = self.pooled(index)
        self.save()
        self.notify("process", index, self.run.results[index],
                    f"{measured.status} ({number}/{total})")

    def pooled(self, index: int) -> ModelResult:
        from vitbench.measure.job import pool_processes

        first = self.firsts[index]
        row = self.merge(self.planned[index].row, pool_processes(first, self.others[index]))
        if self.reference is not None:
            row.relative = relative_latency(self.reference.model, self.lockstep[index])
        done = 1 + len(self.others[index])
        row.environment["timing_processes"] = {"planned": self.planned[index].job.processes,
                                               "done": done}
        return row

    def reference_record(self) -> Optional[ReferenceRecord]:
        if self.reference is None:
            return None
        from vitbench.stats import summarize

        job = self.reference
        return ReferenceRecord(
            model=job.model, image_size=job.image_size, batch_size=job.batch_size,
            device=job.device, dtype=job.dtype, threads=job.threads,
            latency=(LatencySummary.of(summarize(self.reference_samples))
                     if self.reference_samples else None),
            processes=self.reference_processes, rows=self.reference_rows,
            error="; ".join(self.reference_errors) or None)


def note_unfinished(run: RunResult, reason: str) -> None:
    """Rows timed in fewer processes than planned (an interrupted run) say so."""
    for row in run.results:
        done = timing_processes(row)
        if row.status == "ok" and done and done["done"] < done["planned"]:
            warning = (f"timed in {done['done']} of {done['planned']} processes: {reason}; "
                       "the samples of the finished processes are kept")
            if warning not in row.warnings:
                row.warnings.append(warning)
