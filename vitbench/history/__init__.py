"""The results history: every run's rows in a database (SQLite by default, PostgreSQL by
URL), read back as pandas DataFrames (docs/history.md).

* :mod:`~vitbench.history.schema` — the tables and their version;
* :mod:`~vitbench.history.record` — a run as table lines, ``env_key``, git state;
* :mod:`~vitbench.history.store` — :class:`History` (open, append), import of old runs;
* :mod:`~vitbench.history.query` — :func:`series` and :func:`runs_frame`, the reading API;
* :mod:`~vitbench.history.baseline` — the last N comparable runs as a gate baseline.

Reading, in one line each::

    vitbench.history.series("results/history.sqlite", suite="lightweight", metric="latency_ms")
    pandas.read_sql_table("points", "sqlite:///results/history.sqlite")

Names are imported on first use: ``import vitbench.history`` loads no SQLAlchemy.
"""

from __future__ import annotations

import lazy_loader

#: module → the public names it defines
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "schema": ["HISTORY_SCHEMA", "SCHEMA_VERSION"],
    "record": ["METRICS", "env_key", "env_label", "git_state"],
    "store": ["DEFAULT_HISTORY", "HISTORY_ENV", "History", "HistoryError", "append_results",
              "expand", "history_url", "import_results", "is_off", "open_history"],
    "query": ["Filters", "runs_frame", "series"],
    "baseline": ["DEFAULT_LAST", "HistoryFilter", "NoComparableHistory", "baseline_document"],
})
