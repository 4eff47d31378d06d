"""Lockstep A/B timing: two live workers, one per side, timed in alternating short blocks.

Why: on a shared VM the machine's speed changes over seconds (measured here: the same
fixture at 7.3 ms in one process and 10 ms in the next, and 37 → 47 ms inside one timed
loop), so one summary per fresh run varies by 8–15 % between runs and a run-level test
cannot resolve a 10 % change. When the two sides are timed in blocks of ~0.1 s that
alternate A B B A …, each block pair sees the same machine, and the per-round ratio
ln(B/A) varied by ~2.5 % round to round on the same machine (measured, A/A).

A *round* is one fresh pair of worker processes per model (the process is still the unit
of replication: a new interpreter, allocator and memory layout each round). Inside a
round, every adjacent (A, B) block pair gives one ratio; the round's statistic is their
median. The gate then tests the rounds' ratios (:func:`vitbench.gate.evidence.lockstep`).

Worker protocol (``python -m vitbench.measure.lockstep_worker JOB.json``; one JSON object per line on the
protocol pipe, everything the model prints goes to stderr):

* worker → ``{"event": "stage", "stage": "import"}`` then ``"build"`` around the import of a
  ``python:`` module (a worker that dies in between died importing it);
* worker → ``{"event": "ready", ...}`` once the model is built, moved and called once;
* ``{"cmd": "warm", "calls": N, "seconds": S}`` → untimed calls, at least N and S seconds;
* ``{"cmd": "time", "calls": K}`` → ``{"event": "time", "samples_ms": [...]}``, one
  synchronised sample per call (latency mode);
* ``{"cmd": "finish"}`` → peak memory and environment, then the worker exits.

A worker never outlives this process: it gets ``VITBENCH_PARENT_PID`` and the stdin pipe, and
dies with its parent as a measure worker does (:mod:`vitbench.measure.lockstep_worker`); an
interrupt here (Ctrl-C, or SIGTERM/SIGHUP turned into one by the CLI) kills both workers'
process groups on the way out, and their ``vitbench-*`` temp folder is removed on every
path, or by the next run's sweep after a SIGKILL (:func:`vitbench.run.workers.owned_temp_dir`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

from vitbench.config.spec import Job
from vitbench.records import ModelResult
from vitbench.run.lockstep import LockstepWorker, WorkerGone, block_calls, median, side_row

#: At least this many adjacent block pairs per round.
MIN_BLOCK_PAIRS = 20


@dataclass
class PairOutcome:
    """One lockstep round of one model: a row per side and the block-pair ratios."""

    rows: dict[str, ModelResult]
    log_ratios: list[float] = field(default_factory=list)  # ln(median B block / median A block)
    block_calls: int = 0

    @property
    def round_log_ratio(self) -> Optional[float]:
        """The round's statistic: the median of its block-pair log ratios."""
        if not self.log_ratios:
            return None
        ordered = sorted(self.log_ratios)
        mid = len(ordered) // 2
        return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def measure_pair(jobs: dict[str, Job], *, first: str = "A") -> PairOutcome:
    """Time ``jobs['A']`` and ``jobs['B']`` in lockstep blocks (A B B A …, starting with
    ``first``); a side whose worker fails becomes a failed row and the other is timed alone.

    Warm-up per side: at least max(job.warmup, 10) calls and max(job.warmup_s, 0.5) s. Blocks
    of ``calls`` calls (~0.1 s on the slower side) until each side has ``repeat`` samples and
    ``min_time_s`` of timed time and there are at least 20 block pairs, or ``max_time_s``.
    """
    import math

    from vitbench.run.workers import owned_temp_dir, sweep_temp_dirs

    labels = [label for label in ("A", "B") if label in jobs]
    rows = {label: ModelResult.for_job(jobs[label]) for label in labels}
    outcome = PairOutcome(rows=rows)
    finish: dict[str, dict] = {}
    warm: dict[str, tuple[float, int]] = {}
    sweep_temp_dirs()
    with owned_temp_dir() as tmp:
        workers: dict[str, LockstepWorker] = {}
        alive: list[str] = []

        def guarded(label: str, command):
            """``command(worker)``; a worker gone becomes its side's failed row (None)."""
            try:
                return command(workers[label])
            except WorkerGone as exc:
                status = "timeout" if "timed out" in str(exc) else "failed"
                rows[label].status, rows[label].error = status, str(exc)[:800]
                workers[label].kill()
                if label in alive:
                    alive.remove(label)
                return None

        try:
            for label in labels:  # both start together: imports are not timed
                workers[label] = LockstepWorker(jobs[label], tmp, label)
            for label in labels:
                alive.append(label)
                guarded(label, LockstepWorker.wait_ready)
            for label in list(alive):
                reply = guarded(label, LockstepWorker.warm)
                if reply:
                    warm[label] = reply
            if alive:
                calls = block_calls(max(warm[label][0] for label in alive))
                outcome.block_calls = calls
                for label in alive:
                    workers[label].calls = calls
                order = [first, *[x for x in labels if x != first]]
                started = time.monotonic()
                pair = 0
                while alive:
                    sequence = order if pair % 2 == 0 else order[::-1]
                    block = {}
                    for label in sequence:
                        if label in alive:
                            samples = guarded(label, LockstepWorker.block)
                            if samples:
                                block[label] = samples
                    if len(block) == 2:
                        outcome.log_ratios.append(
                            math.log(median(block["B"]) / median(block["A"])))
                    pair += 1
                    done = all(len(workers[x].samples_ms) >= jobs[x].repeat
                               and sum(workers[x].samples_ms) / 1000 >= jobs[x].min_time_s
                               for x in alive)
                    if (done and pair >= MIN_BLOCK_PAIRS) or \
                            time.monotonic() - started > max(jobs[x].max_time_s for x in labels):
                        break
            for label in list(alive):
                reply = guarded(label, LockstepWorker.finish)
                if reply:
                    finish[label] = reply
        finally:
            for worker in workers.values():
                worker.close()

    for label in labels:
        if label in finish:
            rows[label] = side_row(
                jobs[label], workers[label].ready, finish[label], workers[label].samples_ms,
                warmup_calls=warm[label][1],
                lockstep={"block_calls": outcome.block_calls,
                          "block_pairs": len(outcome.log_ratios), "first": first})
    return outcome
