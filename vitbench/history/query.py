"""Reading the history: :func:`series` (one line per run × row × metric, the shape a trend
or a change-point search wants) and :func:`runs_frame` (one line per run), with the filters
``vitbench history`` offers. Both return pandas DataFrames ordered oldest first.

Filters (each optional, all combined with AND):

* ``suite`` — suite name; ``model`` — a row name or model id (``timm:resnet18``), ``*``
  globs, a list means any of them; ``metric`` — a name of :data:`~vitbench.history.record.METRICS`
  (or a list); ``environment`` — an ``env_key`` prefix or a piece of its label
  (``"EPYC"``, ``"cuda"``), case-insensitive;
* ``since`` / ``until`` — ISO dates or times compared with ``created_utc`` (``until`` a bare
  date includes that day);
* ``commit`` — a commit prefix, or ``A..B``: the runs from the first run of a commit starting
  with A to the last run of one starting with B, in time order (both ends included);
* ``status`` — row statuses kept (default ``ok`` only; None keeps every row);
* ``run_id`` — one run or a list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

from vitbench.history import schema
from vitbench.history.store import History, HistoryError, open_history

if TYPE_CHECKING:
    import pandas as pd

Names = Union[str, Sequence[str], None]


@dataclass
class Filters:
    """What :func:`series` and :func:`runs_frame` keep (module docstring)."""

    suite: Names = None
    model: Names = None
    metric: Names = None
    environment: Optional[str] = None
    since: Optional[str] = None
    until: Optional[str] = None
    commit: Optional[str] = None
    status: Names = ("ok",)
    run_id: Names = None
    exclude_runs: Sequence[str] = field(default_factory=tuple)


def _names(value: Names) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [v for v in value if v]


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_").replace("*", "%")


def _name_clause(columns: Sequence[Any], values: Names) -> Any:
    from sqlalchemy import or_

    clauses = []
    for value in _names(values):
        for column in columns:
            clauses.append(column.like(_like(value), escape="\\") if "*" in value
                           else column == value)
    return or_(*clauses) if clauses else None


def _until(text: str) -> str:
    """A bare date includes its whole day (``2026-12-01`` → before ``2026-12-01T99``)."""
    return text + "T99" if len(text) == 10 else text


def _commit_window(conn: Any, commit: str) -> tuple[Any, ...]:
    """SQL clauses for a commit prefix or an ``A..B`` range (module docstring)."""
    from sqlalchemy import func, select

    r = schema.runs
    if ".." not in commit:
        return (r.c.git_commit.like(_like(commit.strip()) + "%", escape="\\"),)
    first, last = (part.strip() for part in commit.split("..", 1))
    clauses = []
    if first:
        start = conn.execute(select(func.min(r.c.created_utc)).where(
            r.c.git_commit.like(_like(first) + "%", escape="\\"))).scalar()
        if start is None:
            raise HistoryError(f"--commit {commit}: no run of a commit starting with {first}")
        clauses.append(r.c.created_utc >= start)
    if last:
        end = conn.execute(select(func.max(r.c.created_utc)).where(
            r.c.git_commit.like(_like(last) + "%", escape="\\"))).scalar()
        if end is None:
            raise HistoryError(f"--commit {commit}: no run of a commit starting with {last}")
        clauses.append(r.c.created_utc <= end)
    return tuple(clauses)


def where_clauses(conn: Any, f: Filters, *, with_points: bool) -> list[Any]:
    """The SQL conditions of ``f`` over the joined ``runs``/``rows`` (and ``points``) tables."""
    from sqlalchemy import func, or_

    r, w, p = schema.runs, schema.rows, schema.points
    clauses: list[Any] = []
    for clause in (_name_clause([r.c.suite], f.suite), _name_clause([w.c.name, w.c.model], f.model),
                   _name_clause([r.c.run_id], f.run_id),
                   _name_clause([p.c.metric], f.metric) if with_points else None):
        if clause is not None:
            clauses.append(clause)
    if f.status:
        clauses.append(w.c.status.in_(_names(f.status)))
    if f.environment:
        text = f.environment.strip().lower()
        clauses.append(or_(w.c.env_key.like(_like(text) + "%", escape="\\"),
                           func.lower(w.c.env_label).like("%" + _like(text) + "%", escape="\\")))
    if f.since:
        clauses.append(r.c.created_utc >= f.since)
    if f.until:
        clauses.append(r.c.created_utc <= _until(f.until))
    if f.commit:
        clauses.extend(_commit_window(conn, f.commit))
    if f.exclude_runs:
        clauses.append(r.c.run_id.not_in(list(f.exclude_runs)))
    return clauses


def series(db: "str | Path | History", *, suite: Names = None, model: Names = None,
           metric: Names = None, environment: Optional[str] = None, **filters: Any
           ) -> "pd.DataFrame":
    """Every measured point that passes the filters, oldest run first: one line per
    (run, row, metric) with the columns

    ``run_id, created_utc, commit, dirty, suite, suite_sha256, vitbench_version, model``
    (the row's name), ``model_id`` (zoo name), ``row_index, status, device, threads,
    batch_size, image_size, env_key`` (where and how it was measured: only points with equal
    keys belong on one line), ``env_label, flags, metric, unit, value`` (latency: the
    median), ``median, min, max, ci_low, ci_high, n, q20`` (latency's raw-sample summary;
    NaN for the other metrics).

    ``db``: a path, a URL or an open :class:`History`; other keyword filters as
    :class:`Filters` (``since``, ``until``, ``commit``, ``status``, ``run_id``)."""
    import pandas as pd
    from sqlalchemy import select

    f = Filters(suite=suite, model=model, metric=metric, environment=environment, **filters)
    r, w, p = schema.runs, schema.rows, schema.points
    columns = [r.c.run_id, r.c.created_utc, r.c.git_commit.label("commit"),
               r.c.git_dirty.label("dirty"), r.c.suite, r.c.suite_sha256, r.c.vitbench_version,
               w.c.name.label("model"), w.c.model.label("model_id"), w.c.row_index, w.c.status,
               w.c.device, w.c.threads, w.c.batch_size, w.c.image_size, w.c.env_key,
               w.c.env_label, w.c.flags, p.c.metric, p.c.unit, p.c.value, p.c.median, p.c.min,
               p.c.max, p.c.ci_low, p.c.ci_high, p.c.n, p.c.q20]
    history = open_history(db, create=False)
    try:
        with history.engine.connect() as conn:
            query = (select(*columns)
                     .select_from(p.join(w, (p.c.run_id == w.c.run_id)
                                         & (p.c.row_index == w.c.row_index))
                                  .join(r, r.c.run_id == w.c.run_id))
                     .where(*where_clauses(conn, f, with_points=True))
                     .order_by(r.c.created_utc, r.c.run_id, w.c.row_index, p.c.metric))
            frame = pd.DataFrame(conn.execute(query).mappings().all(),
                                 columns=[c.name for c in columns])
    finally:
        if history is not db:
            history.close()
    if not frame.empty:  # nullable types: a missing thread count is <NA>, not 1.0 vs NaN
        frame["dirty"] = frame["dirty"].astype("boolean")
        for column in ("row_index", "threads", "batch_size", "n"):
            frame[column] = frame[column].astype("Int64")
    return frame


def runs_frame(db: "str | Path | History", filters: Optional[Filters] = None
               ) -> "pd.DataFrame":
    """One line per run that has a row passing ``filters`` (metric filters ignored), oldest
    first: ``run_id, created_utc, suite, commit, dirty, kind, rows`` (matching rows),
    ``ok`` (of them, ok), ``environments`` (the distinct env_keys of those that were not
    ``unavailable``), ``vitbench_version,
    torch, source``."""
    import pandas as pd
    from sqlalchemy import select

    f = filters or Filters(status=None)
    r, w = schema.runs, schema.rows
    columns = [r.c.run_id, r.c.created_utc, r.c.suite, r.c.git_commit.label("commit"),
               r.c.git_dirty.label("dirty"), r.c.kind, r.c.vitbench_version, r.c.torch,
               r.c.source, w.c.status, w.c.env_key]
    history = open_history(db, create=False)
    try:
        with history.engine.connect() as conn:
            query = (select(*columns).select_from(w.join(r, r.c.run_id == w.c.run_id))
                     .where(*where_clauses(conn, f, with_points=False))
                     .order_by(r.c.created_utc, r.c.run_id, w.c.row_index))
            lines = conn.execute(query).mappings().all()
    finally:
        if history is not db:
            history.close()
    runs: dict[str, dict[str, Any]] = {}
    for line in lines:
        entry = runs.setdefault(line["run_id"], {
            "run_id": line["run_id"], "created_utc": line["created_utc"],
            "suite": line["suite"], "commit": line["commit"], "dirty": line["dirty"],
            "kind": line["kind"], "rows": 0, "ok": 0, "environments": [],
            "vitbench_version": line["vitbench_version"], "torch": line["torch"],
            "source": line["source"]})
        entry["rows"] += 1
        entry["ok"] += line["status"] == "ok"
        if line["status"] != "unavailable" and line["env_key"] not in entry["environments"]:
            entry["environments"].append(line["env_key"])
    frame = pd.DataFrame(list(runs.values()), columns=[
        "run_id", "created_utc", "suite", "commit", "dirty", "kind", "rows", "ok",
        "environments", "vitbench_version", "torch", "source"])
    frame["environments"] = frame["environments"].map(",".join)
    frame["dirty"] = frame["dirty"].astype("boolean")
    return frame
