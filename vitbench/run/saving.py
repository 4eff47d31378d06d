"""Saving a run's ``results.json`` when the disk may refuse it.

What a user wants from a full (or read-only) disk mid-run: no measured row lost, no minutes
spent measuring rows that could not be saved either, and one line that says where the
numbers are. So a failed save is retried (a disk that filled for a moment may have room
again); if it still fails, the run stops measuring, the rows not measured say why, a copy of
the whole run goes to the temp folder (often another file system) when the results folder
cannot take it, and :class:`~vitbench.errors.RunStoppedError` (exit 4) says what is where.
``results.json`` itself is only ever replaced whole (:func:`vitbench.files.write_atomic`),
so the one on disk is always the last complete state that could be saved.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Optional

from vitbench.errors import DiskError, RunStoppedError
from vitbench.files import RESULTS_FILE, new_folder, utc_now, utc_stamp, write_atomic
from vitbench.records import RunResult

#: Pauses (seconds) before each retry of a ``results.json`` that could not be written.
SAVE_RETRY_DELAYS_S = (1.0, 2.0)
#: Row statuses that hold a measurement (or its failure): what a stopped run must not lose.
MEASURED = ("ok", "failed", "timeout")


def measured_rows(run: RunResult) -> int:
    return sum(row.status in MEASURED for row in run.results)


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


class RunSaver:
    """Writes ``run`` to ``path`` and remembers how many measured rows the file on disk
    holds; ``total`` is the number of rows the run means to measure."""

    def __init__(self, run: RunResult, path: Path, total: int):
        self.run, self.path, self.total = run, Path(path), total
        #: measured rows in the ``results.json`` on disk; None until one is written
        self.saved: Optional[int] = None

    def save(self) -> None:
        """Write ``results.json``, retried after :data:`SAVE_RETRY_DELAYS_S`; when every try
        fails, raise :meth:`stop`'s error."""
        error: Optional[DiskError] = None
        for delay in (0.0, *SAVE_RETRY_DELAYS_S):
            time.sleep(delay)
            try:
                self.run.save(self.path)
            except DiskError as exc:
                error = exc
                continue
            self.saved = measured_rows(self.run)
            return
        assert error is not None
        raise self.stopped(error, tries=1 + len(SAVE_RETRY_DELAYS_S))

    def stop(self, error: DiskError) -> RunStoppedError:
        """A write the run needs (not ``results.json``: e.g. a worker's job file) failed:
        mark the rows not measured, save (which may raise), and return the error to raise."""
        self._mark_not_measured(error)
        self.save()
        return self.stopped(error)

    def stopped(self, error: DiskError, tries: int = 0) -> RunStoppedError:
        """The one line of a run that stopped on ``error``, after copying the measured rows
        that ``results.json`` lacks to the temp folder."""
        self._mark_not_measured(error)
        done = measured_rows(self.run)
        parts = [f"{error}" + (f" (tried {tries} times)" if tries > 1 else "")]
        parts.append(f"stopped after {done} of {self.total} rows" if done < self.total
                     else f"all {_rows(self.total)} were measured")
        if done == 0:
            parts.append("nothing was measured")
            return RunStoppedError(error, "; ".join(parts), self.run)
        saved = self.saved or 0
        if self.saved is None:
            parts.append(f"{self.path} was never written")
        else:
            parts.append(f"{self.path} holds {'all' if saved == done else saved} of them")
        if done > saved:
            copy, why = self._copy()
            parts.append(f"all {done} are in {copy}" if copy else
                         f"the other {done - saved} could not be copied ({why}) and "
                         f"{'is' if done - saved == 1 else 'are'} printed above")
        return RunStoppedError(error, "; ".join(parts), self.run)

    def _mark_not_measured(self, error: DiskError) -> None:
        reason = (f"not measured: the run stopped because it could not write {error.path} "
                  f"({error.cause})")
        for row in self.run.results:
            if row.status == "pending":
                row.status, row.error = "interrupted", reason
        self.run.finished_utc = self.run.finished_utc or utc_now()

    def _copy(self) -> tuple[Optional[Path], str]:
        """The run as ``results.json`` in a new folder of the temp folder (``vitbench show``
        reads it), or None and why not."""
        name = f"vitbench-unsaved-{self.run.suite.get('name') or 'run'}-{utc_stamp()}"
        folder: Optional[Path] = None
        try:
            folder = new_folder(Path(tempfile.gettempdir()) / name)
            return write_atomic(folder / RESULTS_FILE, self.run.to_json()), ""
        except DiskError as exc:
            why = f"{exc}"
        except OSError as exc:
            why = f"cannot create a folder in {tempfile.gettempdir()}: {exc.strerror or exc}"
        if folder is not None:
            try:
                folder.rmdir()
            except OSError:
                pass
        return None, why
