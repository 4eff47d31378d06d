"""The history database's tables (SQLAlchemy Core): one code path for SQLite and PostgreSQL.

Four tables, documented in docs/history.md:

* ``meta`` — ``schema`` = :data:`HISTORY_SCHEMA`, ``version`` = :data:`SCHEMA_VERSION`;
* ``runs`` — one line per run (``results.json``): suite and its sha256, times, the measured
  code's git commit and dirty state, versions, the environment as JSON;
* ``rows`` — one line per suite row of a run: settings, status, flags and ``env_key``;
* ``points`` — one line per (run, row, metric): the value and its raw-sample summary.

A database of another version is refused with one line (:class:`HistoryError`), never
migrated silently.
"""

from __future__ import annotations

from sqlalchemy import (BigInteger, Boolean, Column, Float, ForeignKeyConstraint, Integer, MetaData,
                        PrimaryKeyConstraint, String, Table, Text)

#: What the ``meta`` table's ``schema`` row says.
HISTORY_SCHEMA = "vitbench.history/1"
#: Bumped when a table changes; a database of another version is refused.
SCHEMA_VERSION = 1

metadata = MetaData()

meta = Table(
    "meta", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

runs = Table(
    "runs", metadata,
    Column("run_id", Text, primary_key=True),
    Column("suite", Text, index=True),
    Column("suite_sha256", Text),
    Column("suite_path", Text),
    Column("created_utc", Text, index=True),
    Column("finished_utc", Text),
    Column("complete", Boolean),
    Column("kind", Text),  # run | ab
    Column("label", Text),  # ab: the side/stage folder (round01-A, static-B)
    Column("git_commit", Text, index=True),
    Column("git_dirty", Boolean),
    Column("vitbench_version", Text),
    Column("torch", Text),
    Column("python", Text),
    Column("hostname", Text),
    Column("packages", Text),  # JSON: package → version
    Column("environment", Text),  # JSON: results.json's environment, as written
    Column("command", Text),  # JSON list
    Column("overrides", Text),  # JSON
    Column("rows_total", Integer),
    Column("rows_ok", Integer),
    Column("source", Text),  # the results.json it came from
    Column("appended_utc", Text),
)

rows = Table(
    "rows", metadata,
    Column("run_id", Text, nullable=False),
    Column("row_index", Integer, nullable=False),
    Column("name", Text, nullable=False, index=True),
    Column("model", Text),
    Column("status", Text),
    Column("error", Text),
    Column("device", Text),
    Column("dtype", Text),
    Column("threads", Integer),
    Column("batch_size", Integer),
    Column("image_size", Text),  # 224x224
    Column("mode", Text),
    Column("compile", Text),
    Column("channels_last", Boolean),
    Column("autocast", Boolean),
    Column("flops_convention", Text),
    Column("params", BigInteger),  # exact parameter count (points hold params_m)
    Column("gflops_counter", Text),
    Column("memory_method", Text),
    Column("env_key", Text, index=True),
    Column("env_label", Text),
    Column("flags", Text),  # comma list: unstable,contended,counters_disagree,...
    PrimaryKeyConstraint("run_id", "row_index"),
    ForeignKeyConstraint(["run_id"], ["runs.run_id"], ondelete="CASCADE"),
)

points = Table(
    "points", metadata,
    Column("run_id", Text, nullable=False),
    Column("row_index", Integer, nullable=False),
    Column("metric", Text, nullable=False, index=True),
    Column("value", Float),
    Column("unit", Text),
    Column("median", Float),
    Column("min", Float),
    Column("max", Float),
    Column("ci_low", Float),
    Column("ci_high", Float),
    Column("n", Integer),
    Column("q20", Float),  # latency: quantile 0.2 of the raw samples (the gate's CPU statistic)
    PrimaryKeyConstraint("run_id", "row_index", "metric"),
    ForeignKeyConstraint(["run_id", "row_index"], ["rows.run_id", "rows.row_index"],
                         ondelete="CASCADE"),
)
