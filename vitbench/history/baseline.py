"""The history as a gate baseline (``vitbench compare --baseline history:<filter>``): the last
N runs comparable with the candidate, as a ``vitbench.baseline/1`` document, so the gate
judges the candidate against the spread those runs measured, exactly as it judges a stored
baseline file.

A history run is comparable when it measured a row of the candidate (same row name) with the
candidate's ``env_key`` (same machine model, software and timing settings); it has to be a
``vitbench run`` (``ab`` rounds are left out: their B side is someone's candidate), of the
candidate's suite unless the filter names another, and not one of the candidate runs; when
the candidate was timed, only timed runs count (a static-only run has no latency to compare).

The filter: comma-separated ``key=value`` pairs; a bare word is a suite name. Keys:
``suite``, ``model`` (row names, ``|``-separated), ``env`` (an env_key prefix or label
piece), ``since``, ``until``, ``commit`` (prefix or ``A..B``), ``last`` (N, default
:data:`DEFAULT_LAST`), ``kind`` (``run``, ``ab`` or ``any``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from vitbench.errors import ExitCode
from vitbench.history import schema
from vitbench.history.query import Filters, where_clauses
from vitbench.history.record import env_key
from vitbench.history.store import History, HistoryError, open_history
from vitbench.records import RunResult

#: Runs a history baseline uses when the filter does not say ``last=N``.
DEFAULT_LAST = 10
#: The gate's calibration probe (vitbench.gate.config.CALIBRATION_MODEL): never a baseline row.
_CALIBRATION_MODEL = "vitbench:gate_calibration"
#: Environment fields a baseline keeps (those the gate compares, and what names the run).
_ENV_KEPT = ("cpu", "cpu_count_usable", "python", "torch", "gpu", "cuda", "cudnn", "vitbench",
             "timm", "fvcore", "hostname")
_KEYS = ("suite", "model", "env", "since", "until", "commit", "last", "kind")


class NoComparableHistory(HistoryError):
    """The history holds no run comparable with the candidate: the gate cannot decide (3)."""

    exit_code = ExitCode.INCONCLUSIVE


@dataclass
class HistoryFilter:
    """A parsed ``history:<filter>`` (module docstring)."""

    text: str = ""
    suite: Optional[str] = None
    models: list[str] = field(default_factory=list)
    env: Optional[str] = None
    since: Optional[str] = None
    until: Optional[str] = None
    commit: Optional[str] = None
    last: int = DEFAULT_LAST
    kind: str = "run"

    @classmethod
    def parse(cls, text: str) -> "HistoryFilter":
        """``lightweight,last=20,since=2026-11-01``; a bad key or value is a one-line error."""
        spec = cls(text=text)
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            key, _, value = part.partition("=") if "=" in part else ("suite", "", part)
            key, value = key.strip().lower(), value.strip()
            if key not in _KEYS or not value:
                raise HistoryError(f"history:{text}: {part!r} is not KEY=VALUE with a key of "
                                   f"{', '.join(_KEYS)} (or a bare suite name)")
            if key == "last":
                if not value.isdigit() or int(value) < 2:
                    raise HistoryError(f"history:{text}: last={value} must be a number ≥ 2")
                spec.last = int(value)
            elif key == "kind":
                if value not in ("run", "ab", "any"):
                    raise HistoryError(f"history:{text}: kind={value} must be run, ab or any")
                spec.kind = value
            elif key == "model":
                spec.models = [m for m in value.split("|") if m]
            else:
                setattr(spec, key, value)
        return spec


def _candidate_keys(runs: Sequence[RunResult]) -> dict[str, set[str]]:
    """Row name → the env_keys the candidate measured it with."""
    keys: dict[str, set[str]] = {}
    for run in runs:
        for row in run.results:
            if row.status != "unavailable" and row.model != _CALIBRATION_MODEL:
                keys.setdefault(row.name, set()).add(env_key(run.environment, row))
    return keys


def baseline_document(db: "str | Path | History", candidate: Sequence[RunResult],
                      spec: "HistoryFilter | str" = "", *, created_utc: str = ""
                      ) -> dict[str, Any]:
    """The last N comparable history runs (module docstring) as a ``vitbench.baseline/1``
    document; ``sources`` lists the history and the run ids used, oldest first. Raises
    :class:`NoComparableHistory` when there is none."""
    from sqlalchemy import select

    spec = spec if isinstance(spec, HistoryFilter) else HistoryFilter.parse(spec)
    wanted = _candidate_keys(candidate)
    if spec.models:
        wanted = {name: keys for name, keys in wanted.items() if name in spec.models}
    suite = spec.suite or next((r.suite.get("name") for r in candidate if r.suite.get("name")),
                               None)
    filters = Filters(suite=suite, model=list(wanted) or ["\0"], environment=spec.env,
                      since=spec.since, until=spec.until, commit=spec.commit, status=("ok",),
                      exclude_runs=[r.id for r in candidate])
    r, w, p = schema.runs, schema.rows, schema.points
    history = open_history(db, create=False)
    try:
        with history.engine.connect() as conn:
            clauses = where_clauses(conn, filters, with_points=False)
            if spec.kind != "any":
                clauses.append(r.c.kind == spec.kind)
            lines = [dict(line) for line in conn.execute(
                select(r.c.run_id, r.c.created_utc, r.c.environment, r.c.suite,
                       r.c.suite_sha256, w.c.row_index, w.c.name, w.c.model, w.c.env_key,
                       w.c.device, w.c.dtype, w.c.threads, w.c.batch_size, w.c.image_size,
                       w.c.params, w.c.gflops_counter, w.c.flops_convention,
                       w.c.memory_method)
                .select_from(w.join(r, r.c.run_id == w.c.run_id)).where(*clauses)
                .order_by(r.c.created_utc, r.c.run_id, w.c.row_index)).mappings()]
            lines = [x for x in lines if x["env_key"] in wanted.get(x["name"], ())]
            if any(row.latency_summary for run in candidate for row in run.results):
                timed = set(conn.execute(select(p.c.run_id).distinct().where(
                    p.c.metric == "latency_ms",
                    p.c.run_id.in_({x["run_id"] for x in lines}))).scalars())
                lines = [x for x in lines if x["run_id"] in timed]
            used = list(dict.fromkeys(x["run_id"] for x in lines))[-spec.last:]
            lines = [x for x in lines if x["run_id"] in used]
            values: dict[tuple[str, int], dict[str, Any]] = {}
            if used:
                for point in conn.execute(select(p).where(
                        p.c.run_id.in_(used),
                        p.c.metric.in_(("gflops", "latency_ms", "peak_memory_mib")))).mappings():
                    values.setdefault((point["run_id"], point["row_index"]), {})[
                        point["metric"]] = point
    finally:
        if history is not db:
            history.close()
    if not used:
        where = f"suite {suite}" if suite else "any suite"
        raise NoComparableHistory(
            f"history:{spec.text}: no run in {history.shown} is comparable with the candidate "
            f"({where}, same rows on the same machine model, software and settings; "
            f"{len(wanted)} row(s) looked for): nothing to compare against yet")
    return _document(spec, history.shown, used, lines, values, created_utc)


def _document(spec: HistoryFilter, shown: str, used: list[str], lines: list[dict[str, Any]],
              values: dict[tuple[str, int], dict[str, Any]], created_utc: str) -> dict[str, Any]:
    models: dict[str, dict[str, Any]] = {}
    for x in lines:  # oldest first: the deterministic counts end as the latest run's
        entry = models.setdefault(x["name"], {"status": [], "latency_ms": {"q0.2": [], "q0.5": []},
                                              "peak_memory_mb": []})
        entry.update(model=x["model"] or "", device=x["device"], dtype=x["dtype"],
                     batch_size=x["batch_size"], threads=x["threads"],
                     image_size=[int(v) for v in (x["image_size"] or "0x0").split("x")],
                     flops_convention=x["flops_convention"])
        entry["status"].append("ok")
        point = values.get((x["run_id"], x["row_index"]), {})
        if x["params"] is not None:
            entry["params"] = int(x["params"])
        if "gflops" in point:
            entry.update(gflops=point["gflops"]["value"], gflops_counter=x["gflops_counter"])
        latency = point.get("latency_ms")
        if latency is not None and latency["q20"] is not None:
            entry["latency_ms"]["q0.2"].append(latency["q20"])
            entry["latency_ms"]["q0.5"].append(latency["median"])
        if "peak_memory_mib" in point:
            entry["peak_memory_mb"].append(point["peak_memory_mib"]["value"])
            entry["memory_method"] = x["memory_method"]
    for entry in models.values():
        if not entry["latency_ms"]["q0.2"]:
            del entry["latency_ms"]
        if not entry["peak_memory_mb"]:
            del entry["peak_memory_mb"]
    latest = lines[-1]
    environment = json.loads(latest["environment"] or "{}")
    return {
        "schema": "vitbench.baseline/1", "created_utc": created_utc, "runs": len(used),
        "suite": {"name": latest["suite"], "sha256": latest["suite_sha256"]},
        "sources": [f"history:{spec.text} in {shown}", *used],
        "environment": {k: environment[k] for k in _ENV_KEPT if environment.get(k) is not None},
        "quantiles": [0.2, 0.5], "models": models,
        "note": (f"the last {len(used)} comparable run(s) of the history (of at most "
                 f"{spec.last}), per-run summaries: latency_ms[q0.2] the 0.2 quantile of each "
                 f"run's samples, q0.5 its median; peak_memory_mb one value per run"),
    }
