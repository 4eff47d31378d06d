"""A suite's rows as they will run: each selected entry resolved into jobs, with the empty
(pending or unavailable) row each job will fill. Pure data; no torch, no processes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from vitbench.config.spec import Job, ModelEntry, Suite
from vitbench.config.suite import resolve_jobs, select_entries
from vitbench.records import ModelResult


@dataclass
class PlannedRow:
    """One row of a run: its suite entry, the job that measures it, and its row so far."""

    entry: ModelEntry
    job: Optional[Job]  # None: the row is unavailable and will not run
    row: ModelResult


def plan(suite: Suite, overrides: Optional[dict[str, Any]] = None, only=None, *,
         static_only: bool = False) -> list[PlannedRow]:
    """Resolve every selected entry into jobs and empty (pending/unavailable) rows.

    An entry with a batch-size sweep (``batch_size: [1, 8, 64]``) gives one row per batch
    size, in the listed order; rows are then keyed by ``(name, batch_size)``. With
    ``--static-only`` a sweep collapses to its first batch size (counts are per image).
    ``batch_size: max`` gives one row whose ``batch_size`` is 0 until the search finds it.
    """
    planned = []
    for entry in select_entries(suite, only):
        jobs = resolve_jobs(suite, entry, overrides, static_only=static_only)
        if static_only:
            jobs = jobs[:1]
        for job in jobs:
            ref = entry.reference
            row = ModelResult.for_job(
                job, model=entry.model or "", note=entry.note, source=entry.source,
                reference=ref.values(), printed_decimals=dict(ref.printed_decimals))
            if job.max_batch:
                row.batch_size_search = {"requested": "max"}
            if entry.unavailable:
                row.status, row.error = "unavailable", entry.unavailable
                planned.append(PlannedRow(entry, None, row))
                break  # one row says it; a sweep of unavailable rows says nothing more
            planned.append(PlannedRow(entry, job, row))
    return planned


def with_runtime(suite: Suite, runtime: Optional[str]) -> Suite:
    """The suite with every row run on ``runtime`` (``vitbench ab --runtime-a/--runtime-b``:
    one suite on two runtimes, rows matched by name); unchanged when ``runtime`` is None."""
    if runtime is None:
        return suite
    # The rows only: rows ab adds itself (the calibration probe, the A/A control) keep the
    # built-in eager on both sides, so they still measure the machine, not the runtimes.
    defaults = suite.defaults.model_copy(update={"runtime": None})
    models = [entry.model_copy(update={"runtime": runtime}) for entry in suite.models]
    return suite.model_copy(update={"defaults": defaults, "models": models})
