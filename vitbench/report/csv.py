"""The CSV contract: one flat line per row of every run, with stable columns for CI.

CI jobs and spreadsheets parse these column names, so :data:`CSV_COLUMNS` only ever grows at
the end; a column is never renamed, moved or dropped. ``tests/data/report_golden.csv`` pins
the output byte for byte.

A text cell that a spreadsheet would run as a formula (one starting with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return: a row named ``=HYPERLINK(...)``) is written with a leading
``'``, which spreadsheets show as text (:func:`neutralise`). Numbers are never touched: a Δ of
``-2.2`` stays a number. :func:`flat_rows` and :func:`to_frame` keep the text as it is.
"""

from __future__ import annotations

import csv
import io
from typing import Any, Optional

from vitbench.config.spec import REFERENCE_KEYS
from vitbench.records import Latency, ModelResult, PeakMemory, Telemetry
from vitbench.report.table import RunLike, as_report

#: The printed-value keys the CSV had when its columns were fixed. A reference key added to
#: the suite schema later is appended at the end of the CSV, never inserted in the middle.
_PAPER_KEYS_V1: tuple[str, ...] = (
    "params_m", "gflops", "top1", "latency_cpu_ms", "latency_gpu_ms", "throughput_cpu_img_s",
    "throughput_gpu_img_s", "fps", "gpu_memory_mb", "miou")

#: The CSV header, in order. Stable: CI jobs parse these names; only ever append.
CSV_COLUMNS: tuple[str, ...] = (
    "name", "model", "image_size", "batch_size", "device", "dtype", "threads", "status", "error",
    "params_m", "gflops", "flops_convention", "gflops_counter", "gflops_crosscheck",
    "counters_agree", "uncounted_ops", "gap_ops",
    "latency_ms_median", "latency_ms_p90", "latency_ms_p99", "latency_ms_min", "latency_ms_mean",
    "latency_ms_ci_low", "latency_ms_ci_high", "latency_samples", "latency_unstable",
    "first_call_ms", "throughput_img_s", "peak_memory_mb",
    *(f"paper_{key}" for key in _PAPER_KEYS_V1),
    "delta_params_pct", "delta_gflops_pct", "params_within_tolerance", "gflops_within_tolerance",
    "note", "source",
    # appended in report v2:
    "params_matches_printed", "gflops_matches_printed", "column", "run_created_utc",
    # appended with the timing protocol (v3):
    "mode", "channels_last", "compile", "autocast", "calls_per_sample", "stopped_by",
    "latency_ms_iqr", "latency_ms_ci_halfwidth_pct", "peak_memory_reserved_mb",
    "foreign_cpu_pct", "contended", "gpu_power_w", "energy_j_per_img", "gpu_util_pct",
    "gpu_temp_c",
    "minor_faults_per_call", "latency_window_spread",
    *(f"paper_{key}" for key in REFERENCE_KEYS if key not in _PAPER_KEYS_V1),
    # appended with multi-process timing (v4):
    "latency_processes", "latency_process_spread",
    # appended with provenance (v5): concatenated CSVs keep which file and run a line is from
    "schema", "run_id",
    # appended with deployment runtimes: what ran the row; for an exported graph, its output
    # against eager's on the same input and the export (vitbench.measure.runtimes)
    "runtime", "runtime_outputs_match", "runtime_max_abs_error", "runtime_max_rel_error",
    "onnx_exporter", "onnx_opset", "onnx_graph_bytes", "onnx_graph_nodes",
    # appended with deploy-mode counting: as-built | reparameterized | nothing-to-reparameterize
    "reparameterization",
    # appended with reference-relative latency: row latency / the run's reference model's
    "latency_relative", "latency_relative_ci_low", "latency_relative_ci_high",
    "latency_reference_model",
)

#: The value of every line's ``schema`` column: this CSV layout's version.
CSV_SCHEMA = "vitbench.csv/5"

#: Columns that hold True/False (blank: not known). pandas reads a column with blanks as
#: ``object``; pass ``dtype=CSV_DTYPES`` (or use :func:`read_csv`) to get nullable booleans.
BOOLEAN_COLUMNS: tuple[str, ...] = (
    "counters_agree", "latency_unstable", "params_within_tolerance", "gflops_within_tolerance",
    "params_matches_printed", "gflops_matches_printed", "channels_last", "autocast", "contended",
    "runtime_outputs_match")
#: ``pandas.read_csv(path, dtype=CSV_DTYPES)``: the booleans as pandas' nullable ``boolean``.
CSV_DTYPES: dict[str, str] = {column: "boolean" for column in BOOLEAN_COLUMNS}


#: What makes a spreadsheet read a text cell as a formula (OWASP's CSV-injection list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula, with a leading ``'``; numbers,
    booleans and other text as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _round(value: Optional[float], digits: int) -> Optional[float]:
    return None if value is None else round(value, digits)


def flat_row(row: ModelResult, column: str = "", run_created_utc: str = "",
             run_id: str = "") -> dict[str, Any]:
    """One result as a flat dict with exactly :data:`CSV_COLUMNS` as keys.

    The column names are the ``vitbench.result/1`` field names, kept for the scripts that
    parse them: ``gflops`` is ``counts.gmacs`` (giga-MACs, the papers' "GFLOPs"),
    ``peak_memory_mb`` and ``peak_memory_reserved_mb`` are ``memory.peak_mib`` and
    ``memory.reserved_mib`` (MiB, as they always were)."""
    counts = row.counts
    timing = row.latency or Latency()
    summary = timing.summary
    memory = row.memory or PeakMemory()
    telemetry = row.telemetry or Telemetry()
    latency = summary.model_dump() if summary else {}
    params_cmp = row.comparisons.get("params_m")
    gflops_cmp = row.comparisons.get("gflops")
    flat: dict[str, Any] = {
        "name": row.name, "model": row.model,
        "image_size": f"{row.image_size[0]}x{row.image_size[1]}",
        "batch_size": row.batch_size, "device": row.device, "dtype": row.dtype,
        "threads": row.threads, "status": row.status, "error": row.error,
        "params_m": _round(row.params_m, 4), "gflops": _round(row.gmacs, 4),
        "flops_convention": row.flops_convention,
        "gflops_counter": counts.counter if counts else None,
        "gflops_crosscheck": _round(counts.crosscheck_gmacs if counts else None, 4),
        "counters_agree": counts.counters_agree if counts else None,
        "uncounted_ops": ";".join(f"{op}:{n}" for op, n in counts.uncounted_ops.items())
        if counts else "",
        "gap_ops": ";".join(counts.gap_ops) if counts else "",
        "latency_ms_median": _round(latency.get("median"), 4),
        "latency_ms_p90": _round(latency.get("p90"), 4),
        "latency_ms_p99": _round(latency.get("p99"), 4),
        "latency_ms_min": _round(latency.get("min"), 4),
        "latency_ms_mean": _round(latency.get("mean"), 4),
        "latency_ms_ci_low": _round(latency.get("ci_low"), 4),
        "latency_ms_ci_high": _round(latency.get("ci_high"), 4),
        "latency_samples": latency.get("n"),
        "latency_unstable": latency.get("unstable"),
        "first_call_ms": _round(timing.first_call_ms, 4),
        "throughput_img_s": _round(timing.throughput_img_s, 3),
        "peak_memory_mb": _round(memory.peak_mib, 1),
        **{f"paper_{key}": row.reference.get(key) for key in REFERENCE_KEYS},
        "delta_params_pct": _round(params_cmp.delta_pct if params_cmp else None, 2),
        "delta_gflops_pct": _round(gflops_cmp.delta_pct if gflops_cmp else None, 2),
        "params_within_tolerance": params_cmp.within_tolerance if params_cmp else None,
        "gflops_within_tolerance": gflops_cmp.within_tolerance if gflops_cmp else None,
        "note": row.note, "source": row.source,
        "params_matches_printed": params_cmp.matches_printed if params_cmp else None,
        "gflops_matches_printed": gflops_cmp.matches_printed if gflops_cmp else None,
        "column": column, "run_created_utc": run_created_utc,
        "mode": row.mode, "channels_last": row.channels_last, "compile": row.compile,
        "autocast": row.autocast, "calls_per_sample": timing.calls_per_sample,
        "stopped_by": timing.stopped_by, "contended": telemetry.contended,
        "gpu_util_pct": telemetry.gpu_util_pct, "gpu_temp_c": telemetry.gpu_temp_c,
        "latency_ms_iqr": _round(latency.get("iqr"), 4),
        "latency_ms_ci_halfwidth_pct": _round(latency.get("ci_halfwidth_pct"), 3),
        "peak_memory_reserved_mb": _round(memory.reserved_mib, 1),
        "foreign_cpu_pct": _round(telemetry.foreign_cpu_pct, 1),
        "gpu_power_w": _round(telemetry.gpu_power_w, 2),
        "energy_j_per_img": _round(telemetry.energy_j_per_img, 5),
        "minor_faults_per_call": _round(timing.minor_faults_per_call, 1),
        "latency_window_spread": _round(latency.get("window_spread"), 3),
        "latency_processes": (latency.get("processes") or 1) if latency else None,
        "latency_process_spread": _round(latency.get("process_spread"), 3),
        "schema": CSV_SCHEMA, "run_id": run_id,
        **_runtime_cells(row),
        "reparameterization": row.reparameterization,
        **({"latency_relative": row.relative.ratio, "latency_relative_ci_low": row.relative.ci_low,
            "latency_relative_ci_high": row.relative.ci_high,
            "latency_reference_model": row.relative.reference} if row.relative else {}),
    }
    return {column_name: flat.get(column_name) for column_name in CSV_COLUMNS}


def _runtime_cells(row: ModelResult) -> dict[str, Any]:
    deployment = row.deployment
    cells: dict[str, Any] = {"runtime": row.runtime_name}
    if deployment is not None:
        cells.update(
            runtime_outputs_match=deployment.outputs_match,
            runtime_max_abs_error=deployment.max_abs_error,
            runtime_max_rel_error=deployment.max_rel_error,
            onnx_exporter=deployment.exporter, onnx_opset=deployment.opset,
            onnx_graph_bytes=deployment.graph_bytes, onnx_graph_nodes=deployment.graph_nodes)
    return cells


def flat_rows(data: RunLike) -> list[dict[str, Any]]:
    """Long format: every row of every run, run by run, labelled with its table column."""
    report = as_report(data)
    labels = {c.key: c.label for c in report.columns}
    out = []
    for index, run in enumerate(report.runs):
        for row in run.results:
            runtime = () if row.runtime_name == "eager" else (row.runtime_name,)
            label = "" if row.status == "unavailable" else labels.get(
                (index, row.device, row.batch_size, *runtime),
                labels.get((index, row.device, None, *runtime), ""))
            out.append(flat_row(row, label, run.created_utc, run.id))
    return out


def to_csv(data: RunLike) -> str:
    """``results.csv``: a header of :data:`CSV_COLUMNS`, then :func:`flat_rows`; blanks for
    None, formulas in text cells neutralised (:func:`neutralise`)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for flat in flat_rows(data):
        writer.writerow({k: ("" if v is None else neutralise(v)) for k, v in flat.items()})
    return buffer.getvalue()


def to_frame(data: RunLike):
    """The CSV view of runs (a :class:`RunResult`, several, or a merged report) as a pandas
    DataFrame, with :data:`CSV_COLUMNS` in order and the booleans as nullable ``boolean``."""
    import pandas as pd  # ~0.35 s to import: only notebooks ask for a frame

    return pd.DataFrame(flat_rows(data), columns=list(CSV_COLUMNS)).astype(CSV_DTYPES)


def read_csv(path):
    """A ``results.csv`` (or several concatenated) as a DataFrame typed as :func:`to_frame`'s."""
    import pandas as pd

    return pd.read_csv(path, dtype=CSV_DTYPES)
