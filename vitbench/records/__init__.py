"""Result records: one :class:`ModelResult` per suite row, gathered in a :class:`RunResult`.

``results.json`` (schema ``vitbench.result/2``) is the canonical output: every row with its
raw latency samples, the suite as run, the conventions and the environment. CSV and
Markdown are derived from it (:mod:`vitbench.report`). A row keeps its identity and settings
flat and holds what was measured as typed parts, the objects the measuring stages return
(:mod:`~vitbench.records.parts`); unknown keys are errors at every level. ``vitbench.result/1``
files (flat rows) are still read, through :func:`~vitbench.records.v1.upgrade_v1`.
Pure data; no torch, numpy or scipy at import.
"""

from vitbench.records.runtime import Deployment
from vitbench.records.parts import (Latency, LatencySummary, PeakMemory, StaticCost, Telemetry,
                                    TimedWindow)
from vitbench.records.relative import ReferenceRecord, RelativeLatency
from vitbench.records.row import Comparison, ModelResult, Status, compare
from vitbench.records.run import READABLE_SCHEMAS, SCHEMA, RunResult
from vitbench.records.v1 import SCHEMA_V1, upgrade_v1

__all__ = ["Comparison", "Deployment", "Latency", "LatencySummary", "ModelResult", "PeakMemory",
           "READABLE_SCHEMAS", "ReferenceRecord", "RelativeLatency", "RunResult", "SCHEMA", "SCHEMA_V1", "StaticCost", "Status",
           "Telemetry", "TimedWindow", "compare", "upgrade_v1"]
