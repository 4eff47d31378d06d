"""Histories made from one real run: the run of a tiny suite (a worker process, timed), and
that run again as other runs, re-dated, with its latency samples scaled by known factors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterable, Optional

from vitbench.history.store import History
from vitbench.records import LatencySummary, RunResult
from vitbench.stats import summarize

REPO = Path(__file__).resolve().parents[1]


def run_suite(suite: Path, out: Path, *options: str) -> subprocess.CompletedProcess:
    """``vitbench run SUITE --out OUT`` in its own process, one process per row, no plots;
    the history is left to ``options`` (``VITBENCH_HISTORY`` is off). It must succeed."""
    done = subprocess.run(
        [sys.executable, "-m", "vitbench", "run", str(suite), "--out", str(out), "--no-plots",
         "--processes", "1", *options],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "VITBENCH_HISTORY": "off"})
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def commit_of(index: int) -> str:
    """The made-up commit of the ``index``-th run of a history."""
    return f"{index:02d}" + "c" * 38


def scaled(run: RunResult, index: int, factor: float, *, day: Optional[int] = None,
           threads: Optional[int] = None) -> RunResult:
    """``run`` as another run: its own id, dated 2026-11-``day`` (``index + 1`` by default),
    every latency sample × ``factor``; ``threads`` changes its rows' setting."""
    copy = run.model_copy(deep=True)
    day = index + 1 if day is None else day
    copy.run_id = f"202611{day:02d}T000000Z-{index:06x}"
    copy.created_utc = f"2026-11-{day:02d}T00:00:00+00:00"
    for row in copy.results:
        if threads is not None:
            row.threads = threads
        if row.latency is not None and row.latency.samples_ms:
            samples = [s * factor for s in row.latency.samples_ms]
            row.latency = row.latency.model_copy(update={
                "samples_ms": samples, "summary": LatencySummary.of(summarize(samples))})
    return copy


def append_scaled(db, run: RunResult, factors: Iterable[float], *, folder: Optional[Path] = None,
                  dirty_at: Optional[int] = None, **changes) -> list[RunResult]:
    """``run`` once per factor (:func:`scaled`, a day apart), appended to the history ``db``
    with :func:`commit_of` its index (dirty at ``dirty_at``). With ``folder``, each is also
    saved as ``folder/RUN_ID/results.json`` and appended from there (the dashboard links it)."""
    runs = [scaled(run, i, factor, **changes) for i, factor in enumerate(factors)]
    with History(db) as history:
        for i, each in enumerate(runs):
            source = ""
            if folder is not None:
                source = str(each.save(Path(folder) / each.run_id / "results.json"))
            history.append(each, source=source, commit=commit_of(i), dirty=i == dirty_at)
    return runs
