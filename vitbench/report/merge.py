"""Merge runs of one suite into one table: rows matched by name, one column group per setting.

A CPU run and a GPU run of ``suites/lightweight.yaml`` become one table with a CPU and a GPU
latency column, as the papers print them. A column is one *setting* — device, batch size,
dtype, threads, input size — and is labelled by its device plus whatever differs between the
columns (``CPU b1``, ``CPU b4``). Params and GFLOPs do not depend on the setting: they are
taken from the first run that measured them. Pure data: no torch, no plotting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from vitbench.config.spec import RUNTIMES
from vitbench.errors import ResultsError
from vitbench.files import results_file
from vitbench.records import ModelResult, RunResult


#: Columns of one device and batch in this order: eager first, as the speed-ups divide by it.
RUNTIME_ORDER = {name: index for index, name in enumerate(RUNTIMES)}


@dataclass
class Column:
    """One setting (device, batch, dtype, threads, input size) of one run."""

    key: tuple
    run_index: int
    device: str
    batch_size: int
    dtype: str
    threads: Optional[int]
    image_size: Optional[tuple] = None
    label: str = ""
    #: what ran the rows (eager, compile, onnxruntime, openvino, tensorrt): a column each
    runtime: str = "eager"

    @property
    def device_label(self) -> str:
        return {"cuda": "GPU", "cpu": "CPU", "mps": "MPS"}.get(self.device, self.device.upper())


@dataclass
class MergedRow:
    """One suite row: its static values (params, GFLOPs, printed) and one result per column."""

    name: str
    static: ModelResult
    cells: dict[tuple, ModelResult] = field(default_factory=dict)

    def cell(self, column: Column) -> Optional[ModelResult]:
        return self.cells.get(column.key)

    @property
    def results(self) -> list[ModelResult]:
        return list(self.cells.values())


@dataclass
class MergedReport:
    """Everything a report renders: the runs, their columns and the merged rows."""

    runs: list[RunResult]
    columns: list[Column]
    rows: list[MergedRow]
    sources: list[str] = field(default_factory=list)

    @property
    def suite(self) -> dict[str, Any]:
        return self.runs[0].suite

    @property
    def title(self) -> str:
        return self.suite.get("title") or self.suite.get("name") or "vitbench results"


def _column_key(run_index: int, row: ModelResult, sweep: bool) -> tuple:
    # One column per run and device: rows of one run that set their own batch or input size
    # stay in the run's column (the table says so in the row), as a paper's table would. A
    # run with a batch sweep (one row per name and batch size) gets a column per batch size,
    # and one that ran rows on several runtimes a column per runtime.
    return column_key(run_index, row, sweep)


def column_key(run_index: int, row: ModelResult, sweep: bool) -> tuple:
    """The key of the column ``row`` of run ``run_index`` lands in (eager keys have no
    runtime part, as before runtimes existed)."""
    runtime = () if row.runtime_name == "eager" else (row.runtime_name,)
    return (run_index, row.device, row.batch_size if sweep else None, *runtime)


def _is_sweep(run: RunResult) -> bool:
    names = [(r.name, r.runtime_name) for r in run.results if r.status != "unavailable"]
    return len(names) != len(set(names))


def _mode(values: list) -> Any:
    counts: dict = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return max(counts, key=lambda v: (counts[v], -values.index(v))) if counts else None


def _fill_column(column: Column, cells: list[ModelResult]) -> None:
    column.batch_size = _mode([c.batch_size for c in cells])
    column.dtype = _mode([c.dtype for c in cells])
    column.threads = _mode([c.threads for c in cells]) if column.device == "cpu" else None
    column.image_size = _mode([tuple(c.image_size) for c in cells])


def _label_columns(columns: list[Column]) -> None:
    """Device, plus batch/dtype/threads only where the columns differ in them."""
    def differs(attr: str) -> bool:
        return len({getattr(c, attr) for c in columns}) > 1

    cpu_threads = {c.threads for c in columns if c.device == "cpu"}

    for column in columns:
        parts = [column.device_label]
        if differs("runtime"):
            parts.append(column.runtime)
        if differs("batch_size"):
            parts.append(f"b{column.batch_size}")
        if differs("dtype"):
            parts.append({"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}.get(
                column.dtype, column.dtype))
        if len(cpu_threads) > 1 and column.threads:
            parts.append(f"{column.threads}t")
        if differs("image_size") and column.image_size:
            height, width = column.image_size
            parts.append(f"{height}px" if height == width else f"{height}×{width}")
        column.label = " ".join(parts)
    seen: dict[str, int] = {}
    for column in columns:
        seen[column.label] = seen.get(column.label, 0) + 1
    if any(n > 1 for n in seen.values()):  # same settings twice: tell the runs apart
        for column in columns:
            if seen[column.label] > 1:
                column.label += f" (run {column.run_index + 1})"


def _has_static(row: ModelResult) -> bool:
    return row.params_m is not None or row.gmacs is not None


def merge_runs(runs: Sequence[RunResult], sources: Sequence[str | Path] = ()) -> MergedReport:
    """Merge ``runs`` of one suite; rows in the suite's order, then rows only later runs have."""
    runs = list(runs)
    if not runs:
        raise ResultsError("no results to report")
    names = {r.suite.get("name") for r in runs}
    if len(names) > 1:
        listed = ", ".join(f"{s or f'run {i + 1}'}: suite {r.suite.get('name')!r}"
                           for i, (r, s) in enumerate(zip(runs, list(sources) or [None] * len(runs))))
        raise ResultsError(f"cannot merge runs of different suites ({listed}); "
                           "report each suite on its own")
    columns: dict[tuple, Column] = {}
    rows: dict[str, MergedRow] = {}
    for index, run in enumerate(runs):
        sweep = _is_sweep(run)
        for result in run.results:
            merged = rows.get(result.name)
            if merged is None:
                merged = rows[result.name] = MergedRow(name=result.name, static=result)
            elif not _has_static(merged.static) and _has_static(result):
                merged.static = result
            if result.status == "unavailable" or _static_only(result):
                continue  # nothing timed: no latency column for it
            key = _column_key(index, result, sweep)
            if key not in columns:
                columns[key] = Column(key=key, run_index=index, device=result.device,
                                      batch_size=result.batch_size, dtype=result.dtype,
                                      threads=result.threads, runtime=result.runtime_name)
            merged.cells[key] = result
    for column in columns.values():
        _fill_column(column, [r.cells[column.key] for r in rows.values() if column.key in r.cells])
    # CPU columns first, as the papers print them; then by batch size.
    ordered_columns = sorted(columns.values(), key=lambda c: (
        {"cpu": 0}.get(c.device, 1), c.batch_size, c.dtype, c.threads or 0, c.image_size or (),
        RUNTIME_ORDER.get(c.runtime, len(RUNTIME_ORDER)), c.run_index))
    _label_columns(ordered_columns)
    for column in ordered_columns:  # runs of `run --each-node-type`: a column per machine type
        node_type = runs[column.run_index].environment.get("node_type")
        if node_type:
            column.label = f"{column.device_label} · {node_type}"
    # The suite's row order, whichever run (an --only subset, say) came first.
    order: dict[str, int] = {}
    for run in runs:
        for entry in (run.suite.get("as_run") or {}).get("models") or []:
            if isinstance(entry, dict) and entry.get("name") not in order:
                order[entry.get("name")] = len(order)
    seen = list(rows)
    merged_rows = sorted(rows.values(), key=lambda r: (order.get(r.name, len(order)),
                                                       seen.index(r.name)))
    return MergedReport(runs=runs, columns=ordered_columns, rows=merged_rows,
                        sources=[str(s) for s in sources])


def _static_only(row: ModelResult) -> bool:
    """A row that was counted but never timed (``--static-only``)."""
    return row.status == "ok" and row.latency_summary is None


def failure(row: MergedRow) -> Optional[ModelResult]:
    """The first failed/unavailable result of a row, if every result of it failed."""
    results = [row.static, *row.results]
    if any(r.status == "ok" for r in results):
        return None
    return results[0]


def load_runs(paths: Sequence[str | Path]) -> tuple[list[RunResult], list[Path]]:
    """Load ``results.json`` files (a folder means its results.json: :func:`results_file`);
    returns the runs and the files read. A missing or unreadable file is a ResultsError
    (:meth:`RunResult.load`: one line naming the file and what is wrong)."""
    runs = [RunResult.load(path) for path in paths]
    return runs, [results_file(path) for path in paths]
