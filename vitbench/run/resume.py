"""Resuming a run (``vitbench run SUITE --resume DIR``): the rows an interrupted run finished
are kept as they are, the rest measured again, and the run written back into ``DIR``.

A resumed run must be the run it continues: the same suite text and suite as read, the same
command-line settings, the same rows selected (``--only``) and the same ``--static-only`` /
``--in-process`` choice; anything else is one line naming what differs (exit 2). The kept
rows were measured in the original environment, so the run keeps that ``environment`` and
appends to its ``resumed`` list when, with what command, and what in the environment
changed. A row counts as done only when :func:`is_final` says so.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any, Optional

from vitbench.config.plan import PlannedRow
from vitbench.config.spec import Settings
from vitbench.errors import OutputFolderError, VitbenchError
from vitbench.files import FolderLock, cause_of, utc_now
from vitbench.records import ModelResult, RunResult
from vitbench.run.passes import timing_processes

#: Statuses a row keeps when its run is resumed: measured (or its failure), or never runnable.
FINAL = ("ok", "failed", "timeout", "unavailable")
#: ``environment`` keys that change on every run and say nothing about where it ran
_VOLATILE = ("load_average_1m_before", "load_average_1m_after", "warnings", "run_options",
             "resumed")


class ResumeError(VitbenchError):
    """``--resume DIR`` cannot continue the run there (exit 2): the line says why."""


def is_final(row: ModelResult) -> bool:
    """True when ``row`` needs no more measuring: every pass it needs is done. A row
    ``pending`` or ``interrupted`` (a killed or stopped run), or ``ok`` but timed in fewer
    processes than planned (a run stopped between passes), is measured again, whole."""
    if row.status not in FINAL:
        return False
    processes = timing_processes(row)
    return processes is None or processes.get("done", 0) >= processes.get("planned", 1)


def run_options(*, static_only: bool, in_process: bool) -> dict[str, bool]:
    """The choices outside the suite and its settings that a resume must repeat, recorded in
    every run's ``environment["run_options"]``."""
    return {"static_only": static_only, "in_process": in_process}


def claim_for_resume(folder: str | Path) -> tuple[FolderLock, RunResult]:
    """Lock ``folder`` against another run (:class:`~vitbench.files.FolderLock`, as ``--out``
    does, but its run is the point, not a refusal), then read its ``results.json``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ResumeError(f"--resume {folder}: no such folder: give the folder of the run "
                          f"to finish")
    try:
        lock = FolderLock(folder, "--resume")
    except OSError as exc:
        raise OutputFolderError(f"--resume {folder}: cannot write in this folder "
                                f"({cause_of(exc)})") from None
    try:
        return lock, RunResult.load(folder)
    except BaseException:
        lock.release()
        raise


def _plain(value: Any) -> Any:
    """``value`` as JSON reads it back (tuples as lists), so a loaded run compares equal."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _set(value: Any) -> Any:
    """``value`` less the keys set to None, at every depth: a setting a newer vitbench added
    (None unless given) does not make the same suite differ."""
    if isinstance(value, dict):
        return {k: _set(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_set(v) for v in value]
    return value


def _setting(name: str) -> str:
    field = Settings.model_fields.get(name)
    extra = (field.json_schema_extra if field is not None else None) or {}
    return extra.get("flag") or name


def _row_key(row: ModelResult) -> tuple[str, Any]:
    """A row as a suite plans it: its name and the batch size asked for."""
    return row.name, (row.batch_size_search or {}).get("requested") or row.batch_size


def _names(keys: list[tuple[str, Any]]) -> str:
    names = list(dict.fromkeys(name for name, _ in keys))
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _difference(previous: RunResult, fingerprint: dict[str, Any], overrides: dict[str, Any],
                planned: list[PlannedRow], options: dict[str, bool]) -> Optional[str]:
    """What differs between the run on disk and the one this command would start, or None."""
    suite = previous.suite
    if not suite.get("sha256"):
        return "its results.json records no suite hash (written by an older vitbench)"
    if suite.get("sha256") != fingerprint["sha256"]:
        return f"the suite changed since it ran (content hash {fingerprint['sha256'][:12]} " \
               f"here, {str(suite['sha256'])[:12]} in the run)"
    if suite.get("name") != fingerprint["name"] or \
            _set(_plain(suite.get("as_run"))) != _set(_plain(fingerprint["as_run"])):
        return "the suite as read differs from the suite as it ran (another vitbench version?)"
    old, new = _plain(previous.overrides), _plain(overrides)
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            here = json.dumps(new[name]) if name in new else "not given"
            there = json.dumps(old[name]) if name in old else "not given"
            return f"{_setting(name)} is {here} here but was {there} in the run"
    recorded = previous.environment.get("run_options")
    if not isinstance(recorded, dict):
        return "its results.json does not record --static-only/--in-process (older vitbench)"
    for name, value in options.items():
        if bool(recorded.get(name)) != value:
            flag = "--" + name.replace("_", "-")
            return f"{flag} is {'given' if value else 'not given'} here but " \
                   f"{'was' if recorded.get(name) else 'was not'} in the run"
    old_rows = [_row_key(r) for r in previous.results]
    new_rows = [_row_key(p.row) for p in planned]
    if old_rows != new_rows:
        extra = [r for r in new_rows if r not in old_rows]
        missing = [r for r in old_rows if r not in new_rows]
        what = (f"selects {_names(extra)} that the run did not" if extra else
                f"leaves out {_names(missing)} that the run measured" if missing else
                "orders the rows differently")
        return f"the rows differ: this command {what} (--only)"
    return None


def check_resume(previous: RunResult, folder: str | Path, *, fingerprint: dict[str, Any],
                 overrides: dict[str, Any], planned: list[PlannedRow], static_only: bool,
                 in_process: bool) -> None:
    """Refuse (:class:`ResumeError`, one line) to resume ``previous`` with other settings.

    ``fingerprint`` is :func:`vitbench.run.runner.suite_fingerprint` of the suite given now,
    ``planned`` its rows as this command selects them."""
    options = run_options(static_only=static_only, in_process=in_process)
    why = _difference(previous, fingerprint, overrides, planned, options)
    if why is None:
        return
    started = shlex.join(previous.command) if previous.command else "its original command"
    raise ResumeError(f"--resume {folder}: cannot continue that run: {why}; resume with the "
                      f"settings it started with ({started}) or start a new run")


def nothing_to_resume(previous: RunResult) -> bool:
    """The run finished: complete, and every row final."""
    return previous.complete and all(is_final(row) for row in previous.results)


def resumed_run(fresh: RunResult, previous: RunResult) -> RunResult:
    """``previous`` continued: its final rows kept, the others as ``fresh`` planned them (to
    measure again); its identity and environment kept, with this resume recorded."""
    rows = [old if is_final(old) else new for old, new in zip(previous.results, fresh.results)]
    changed = {key: value for key, value in fresh.environment.items()
               if key not in _VOLATILE and previous.environment.get(key) != value}
    record = {"utc": utc_now(), "command": fresh.command, "environment_changed": changed,
              "kept_rows": sum(is_final(row) for row in previous.results)}
    environment = {**previous.environment,
                   "resumed": [*previous.environment.get("resumed", []), record]}
    return previous.model_copy(deep=True, update={
        "results": [row.model_copy(deep=True) for row in rows], "environment": environment,
        "complete": False, "finished_utc": None})
