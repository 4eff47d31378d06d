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

import importlib
from typing import Any

#: public name → the module that defines it
_API = {
    **dict.fromkeys(("HISTORY_SCHEMA", "SCHEMA_VERSION"), "vitbench.history.schema"),
    **dict.fromkeys(("METRICS", "env_key", "env_label", "git_state"), "vitbench.history.record"),
    **dict.fromkeys(("DEFAULT_HISTORY", "HISTORY_ENV", "History", "HistoryError",
                     "append_results", "expand", "history_url", "import_results", "is_off",
                     "open_history"), "vitbench.history.store"),
    **dict.fromkeys(("Filters", "runs_frame", "series"), "vitbench.history.query"),
    **dict.fromkeys(("DEFAULT_LAST", "HistoryFilter", "NoComparableHistory",
                     "baseline_document"), "vitbench.history.baseline"),
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vitbench.history' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
