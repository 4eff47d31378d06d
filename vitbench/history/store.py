"""Opening the history database and appending runs to it (SQLAlchemy Core, so a SQLite file
and a PostgreSQL URL share every line of code).

A target is a path (``results/history.sqlite``, the default), a SQLAlchemy URL
(``postgresql+psycopg://user@host/db``; ``postgresql://`` is read as psycopg 3) or ``off``.
Appending a run whose ``run_id`` is already there replaces it in one transaction, so
appending or importing twice never duplicates a run.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from vitbench.errors import ResultsError, VitbenchError
from vitbench.files import utc_now
from vitbench.history import schema
from vitbench.history.record import git_state, point_lines, row_line, run_line
from vitbench.records import RunResult

#: Where ``run`` and ``ab`` append when ``--history`` is not given (relative to the
#: working directory, as ``results/SUITE/STAMP`` is).
DEFAULT_HISTORY = "results/history.sqlite"
#: The environment variable ``--history`` falls back to (CI sets a URL once).
HISTORY_ENV = "VITBENCH_HISTORY"
#: The folders ``vitbench ab`` keeps each side's runs in (static-A, stage1-round03-B).
AB_FOLDER = re.compile(r"(static|stage\d+-.+)-[AB]")
#: ``--history`` values that turn the history off.
OFF = ("off", "none", "no", "false", "0")


class HistoryError(VitbenchError):
    """The history database cannot be opened or has another schema version (exit 2)."""


def is_off(target: Optional[str | Path]) -> bool:
    return target is not None and str(target).strip().lower() in OFF


def history_url(target: str | Path) -> str:
    """A SQLAlchemy URL for a path or URL (``postgresql://`` means the psycopg 3 driver)."""
    text = str(target)
    if "://" not in text:
        return f"sqlite:///{Path(text).expanduser().resolve()}"
    if text.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + text.split("://", 1)[1]
    return text


def shown(target: str | Path) -> str:
    """``target`` as it may be printed: a URL's password hidden."""
    text = str(target)
    if "://" not in text:
        return text
    from sqlalchemy.engine import make_url

    try:
        return make_url(history_url(text)).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - unparsable: show the scheme only
        return text.split("://", 1)[0] + "://…"


class History:
    """An open history database: :meth:`append` runs, read them with
    :func:`vitbench.history.series` and :func:`vitbench.history.runs_frame`."""

    def __init__(self, target: str | Path, *, create: bool = True):
        from sqlalchemy import create_engine
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        self.target = str(target)
        url = history_url(target)
        sqlite = url.startswith("sqlite")
        if sqlite:
            path = Path(url.split(":///", 1)[1])
            if not create and not path.is_file():
                raise HistoryError(f"{target}: no history database here (a run appends to "
                                   f"one; or `vitbench history import results/**/results.json`)")
            if create:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise HistoryError(f"{target}: cannot create its folder "
                                       f"({exc.strerror or exc})") from None
        try:
            self.engine = create_engine(
                url, connect_args={"timeout": 60} if sqlite else {"connect_timeout": 10})
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise HistoryError(f"{self.shown}: not a database URL or path this vitbench can "
                               f"open ({_first_line(exc)}); PostgreSQL needs "
                               f"pip install 'vitbench[postgres]'") from None
        self._ready(create)

    @property
    def shown(self) -> str:
        """The target as it may be printed: a URL's password hidden."""
        return shown(self.target)

    def _ready(self, create: bool) -> None:
        """Create the tables in an empty database; refuse another schema version. Two
        processes creating the same new database at once: the loser's error is retried
        once, and then finds the winner's tables."""
        from sqlalchemy.exc import SQLAlchemyError

        for attempt in (1, 2):
            try:
                found = self._meta(create)
                break
            except SQLAlchemyError as exc:
                if attempt == 2 or not create:
                    raise HistoryError(f"{self.shown}: cannot open the history database "
                                       f"({_first_line(exc)})") from None
        if found.get("version") != str(schema.SCHEMA_VERSION):
            raise HistoryError(
                f"{self.shown}: history schema version {found.get('version')!r}, this vitbench "
                f"reads version {schema.SCHEMA_VERSION}: use a new file or the matching vitbench")

    def _meta(self, create: bool) -> dict[str, str]:
        """The ``meta`` table's rows, after creating every table in an empty database."""
        from sqlalchemy import inspect, select

        if not inspect(self.engine).has_table("meta"):
            if not create:
                raise HistoryError(f"{self.shown}: not a vitbench history database "
                                   f"(no meta table)")
            schema.metadata.create_all(self.engine, checkfirst=True)
            with self.engine.begin() as conn:
                if conn.execute(select(schema.meta.c.key)).first() is None:
                    conn.execute(schema.meta.insert(), [
                        {"key": "schema", "value": schema.HISTORY_SCHEMA},
                        {"key": "version", "value": str(schema.SCHEMA_VERSION)},
                        {"key": "created_utc", "value": utc_now()}])
        with self.engine.connect() as conn:
            return dict(conn.execute(select(schema.meta.c.key, schema.meta.c.value)).all())

    def append(self, run: RunResult, *, source: str = "", kind: str = "run", label: str = "",
               commit: Optional[str] = None, dirty: Optional[bool] = None) -> bool:
        """Add ``run`` (all its rows and metrics); replace it if its ``run_id`` is already
        there. True when it was new. A run without a ``run_id`` of its own (an ``ab``
        lockstep round) is stored as its derived id and ``label``: the A and B rounds of one
        suite share time and suite hash, so the derived id alone would merge them."""
        from sqlalchemy import delete, select
        from sqlalchemy.exc import SQLAlchemyError

        if not run.run_id and label:
            run = run.model_copy(update={"run_id": f"{run.id}-{label.replace('/', '-')}"})
        run_id = run.id
        line = run_line(run, source=source, kind=kind, label=label, commit=commit,
                        dirty=dirty, appended_utc=utc_now())
        rows = [row_line(run, i, row) for i, row in enumerate(run.results)]
        points = [p for i, row in enumerate(run.results) for p in point_lines(run, i, row)]
        try:
            with self.engine.begin() as conn:
                existed = conn.execute(select(schema.runs.c.run_id).where(
                    schema.runs.c.run_id == run_id)).first() is not None
                for table in (schema.points, schema.rows, schema.runs):
                    conn.execute(delete(table).where(table.c.run_id == run_id))
                conn.execute(schema.runs.insert(), [line])
                if rows:
                    conn.execute(schema.rows.insert(), rows)
                if points:
                    conn.execute(schema.points.insert(), points)
        except SQLAlchemyError as exc:
            raise HistoryError(f"{self.shown}: cannot append run {run_id} "
                               f"({_first_line(exc)})") from None
        return not existed

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "History":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def open_history(target: "str | Path | History", *, create: bool = True) -> History:
    """``target`` opened (a :class:`History` is returned as it is)."""
    return target if isinstance(target, History) else History(target, create=create)


def append_results(target: str | Path, paths: Iterable[str | Path], *, kind: str = "run",
                   labels: Optional[Iterable[str]] = None) -> list[tuple[str, bool]]:
    """Append the results.json files of one invocation (``run``: one; ``ab``: each side's
    runs), with the git state of the measured code: the repository of each run's suite
    file, else of the working directory. ``[(run_id, new)]``."""
    done = []
    labels = list(labels) if labels is not None else None
    with History(target) as history:
        for i, path in enumerate(paths):
            run = RunResult.load(path)
            suite_file = run.suite.get("path") or run.suite.get("source")
            folder = Path(suite_file).parent if suite_file and Path(suite_file).exists() else None
            commit, dirty = git_state(folder)
            new = history.append(run, source=str(path), kind=kind,
                                 label=labels[i] if labels else "", commit=commit, dirty=dirty)
            done.append((run.id, new))
    return done


def expand(patterns: Iterable[str]) -> list[Path]:
    """Glob patterns (``results/**/results.json``; ``**`` crosses folders) and plain paths,
    sorted and without repeats. A folder means its results.json, or when it has none every
    results.json below it (``results/lightweight``: all its runs)."""
    found: list[Path] = []
    for pattern in patterns:
        matches = glob.glob(os.path.expanduser(pattern), recursive=True)
        for match in sorted(matches) if matches else [pattern]:
            path = Path(match)
            if path.is_dir():
                inside = [path / "results.json"] if (path / "results.json").is_file() else \
                    sorted(path.rglob("results.json"))
            else:
                inside = [path]
            found.extend(p for p in inside if p not in found)
    return found


def import_results(target: str | Path, patterns: Iterable[str],
                   warn: Callable[[str], None] = lambda _: None) -> tuple[int, int, int]:
    """Back-fill: append every readable results.json the patterns name; each unreadable one
    is one ``warn`` line and skipped. ``(new, replaced, skipped)``. No git state is recorded:
    the commit checked out now is not the one those runs measured."""
    new = replaced = skipped = 0
    with History(target) as history:
        for path in expand(patterns):
            try:
                run = RunResult.load(path)
            except ResultsError as exc:
                warn(f"skipped {exc}")
                skipped += 1
                continue
            kind = "ab" if AB_FOLDER.fullmatch(path.parent.name) else "run"
            label = path.parent.name if kind == "ab" else ""
            if history.append(run, source=str(path), kind=kind, label=label):
                new += 1
            else:
                replaced += 1
    return new, replaced, skipped


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return (text.strip().splitlines() or [exc.__class__.__name__])[0][:240]
