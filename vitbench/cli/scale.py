"""Runs of many rows: ``--references`` for the command line, ``--max-run-time``, and the
tally (rows done/failed/left, time left) the progress display shows."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Optional

from vitbench.errors import VitbenchError

REFERENCES_HELP = ("printed params/GFLOPs for every row from a results CSV: timm's "
                   "results/benchmark-infer-*.csv columns (model, param_count, infer_gmacs, "
                   "infer_img_size) or any CSV with --references-columns; a row takes its "
                   "model's line at its own input size; values the suite printed win")
REFERENCES_COLUMNS_HELP = ("the CSV's column names as KEY=COLUMN pairs, comma-separated, "
                           "KEY one of model, params_m, gflops, image_size; e.g. "
                           "model=name,gflops=gmacs [default: timm's]")
MAX_RUN_TIME_HELP = ("stop starting rows once the run has taken this long (90s, 45m, 2h, "
                     "1h30m): rows under way finish, rows not started become interrupted "
                     "with the reason, exit 1 (not --max-time: one row's timing)")
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(h|m|min|s)?", re.IGNORECASE)
_UNIT_S = {"h": 3600.0, "m": 60.0, "min": 60.0, "s": 1.0, None: 1.0}


def parse_duration(text: str) -> float:
    """``90`` or ``90s`` → 90.0, ``45m`` → 2700.0, ``1h30m`` → 5400.0 (seconds, > 0);
    anything else is a one-line :class:`VitbenchError` about ``--max-run-time``."""
    spelled = text.strip().replace(" ", "")
    total, at = 0.0, 0
    while at < len(spelled):
        match = _DURATION.match(spelled, at)
        if not match or (match.group(2) is None and match.end() != len(spelled)):
            raise VitbenchError(f"--max-run-time: expected a duration such as 90s, 45m, 2h "
                                f"or 1h30m, got {text!r}")
        total += float(match.group(1)) * _UNIT_S[(match.group(2) or "").lower() or None]
        at = match.end()
    if total <= 0:
        raise VitbenchError(f"--max-run-time: expected a duration above zero, got {text!r}")
    return total


def human_duration(seconds: float) -> str:
    """``42 s``, ``7 min``, ``3.2 h``: how long, to the precision an estimate deserves."""
    if seconds < 90:
        return f"{max(seconds, 0):.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Deadline:
    """The runner's ``should_stop`` for ``--max-run-time``: once ``limit_s`` has passed since
    ``started`` (``time.monotonic()``), the reason every row not started yet carries;
    ``fired`` keeps it, so the command can say the limit cut the run short."""

    def __init__(self, limit_s: float, text: str, started: float) -> None:
        self.limit_s, self.text, self.started = limit_s, text, started
        self.fired: Optional[str] = None

    def __call__(self) -> Optional[str]:
        if time.monotonic() - self.started >= self.limit_s:
            self.fired = f"not started: the run's --max-run-time {self.text} had passed"
        return self.fired


def deadline_hook(limit_s: Optional[float], text: Optional[str],
                  started: float) -> Optional[Deadline]:
    """A :class:`Deadline`, or None without ``--max-run-time``."""
    return None if limit_s is None else Deadline(limit_s, text or f"{limit_s:g}s", started)


def with_references(suite, path: Optional[Path], columns: Optional[str],
                    overrides: dict[str, Any]):
    """``(suite, summary line)`` with the CSV's params/GFLOPs filled in, or ``(suite, None)``
    without ``--references``; a bad CSV or mapping raises a one-line VitbenchError."""
    from vitbench.config.references import ReferenceTable, apply_references, parse_columns

    if path is None:
        if columns:
            raise VitbenchError("--references-columns needs --references PATH.csv")
        return suite, None
    table = ReferenceTable.load(path, parse_columns(columns))
    suite, applied = apply_references(suite, table, overrides)
    return suite, applied.summary()


class RunTally:
    """Rows done, failed and left, and an estimate of the time left: the mean time of the
    rows measured so far times the rows still to measure (unavailable rows cost nothing),
    plus the timing processes of the later passes still to run (``extra``), each costed at
    the mean of those already run, or at :data:`LATER_PROCESS_SHARE` of a row before any."""

    #: a later-pass timing process costs about this share of a row's first (measured on the
    #: lightweight suite: 4 s against 5.5 s)
    LATER_PROCESS_SHARE = 0.75

    def __init__(self, rows: int, measured: Optional[int] = None, extra: int = 0) -> None:
        self.rows, self.measured = rows, rows if measured is None else measured
        self.extra, self.extra_durations, self.processes_timed = extra, [], 0
        self.last_event: Optional[float] = None
        self.done = self.failed = 0
        self.durations: list[float] = []
        self.started: dict[int, float] = {}

    def start(self, index: int) -> None:
        self.started[index] = time.perf_counter()

    def finish(self, index: int, status: str) -> Optional[float]:
        """Count a finished row; its seconds if it was measured here."""
        self.done += 1
        self.failed += status in ("failed", "timeout")
        began = self.started.pop(index, None)
        if began is None:
            return None
        self.durations.append(time.perf_counter() - began)
        self.last_event = time.perf_counter()
        return self.durations[-1]

    def process_done(self) -> None:
        """A later pass timed one more process of a row (its time: since the last event)."""
        now = time.perf_counter()
        if self.last_event is not None:
            self.extra_durations.append(now - self.last_event)
        self.last_event = now
        self.processes_timed += 1

    def text(self) -> str:
        left = self.rows - self.done
        parts = [f"{self.done} done"] + ([f"{self.failed} failed"] if self.failed else [])
        parts.append(f"{left} left")
        processes_left = max(0, self.extra - self.processes_timed)
        if self.extra and not left:
            parts.append(f"{processes_left} timing process{'es' if processes_left != 1 else ''} left")
        to_measure = max(0, self.measured - len(self.durations))
        if self.durations and (left and to_measure or processes_left):
            mean = sum(self.durations) / len(self.durations)
            later = (sum(self.extra_durations) / len(self.extra_durations) if self.extra_durations
                     else mean * self.LATER_PROCESS_SHARE)
            seconds = mean * to_measure + later * processes_left
            parts.append(f"about {human_duration(seconds)} to go")
        return ", ".join(parts)
