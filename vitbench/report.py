"""Derived reports: CSV (a stable interface for CI) and Markdown (a paper-style table).

Both are rendered from a :class:`~vitbench.records.RunResult`, never from each other. The
CSV columns are documented in ``results/README.md``; new columns are only ever appended.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

from .conventions import FLOP_CONVENTIONS
from .records import ModelResult, RunResult
from .spec import REFERENCE_KEYS

#: The CSV header, in order. Stable: CI jobs parse these names.
CSV_COLUMNS: tuple[str, ...] = (
    "name", "model", "image_size", "batch_size", "device", "dtype", "threads", "status", "error",
    "params_m", "gflops", "flops_convention", "gflops_counter", "gflops_crosscheck",
    "counters_agree", "uncounted_ops", "gap_ops",
    "latency_ms_median", "latency_ms_p90", "latency_ms_p99", "latency_ms_min", "latency_ms_mean",
    "latency_ms_ci_low", "latency_ms_ci_high", "latency_samples", "latency_unstable",
    "first_call_ms", "throughput_img_s", "peak_memory_mb",
    *(f"paper_{key}" for key in REFERENCE_KEYS),
    "delta_params_pct", "delta_gflops_pct", "params_within_tolerance", "gflops_within_tolerance",
    "note", "source",
)


def _round(value: Optional[float], digits: int) -> Optional[float]:
    return None if value is None else round(value, digits)


def flat_row(row: ModelResult) -> dict[str, Any]:
    """One result as a flat dict with exactly :data:`CSV_COLUMNS` as keys."""
    latency = row.latency_ms or {}
    params_cmp = row.comparisons.get("params_m")
    gflops_cmp = row.comparisons.get("gflops")
    flat: dict[str, Any] = {
        "name": row.name, "model": row.model,
        "image_size": f"{row.image_size[0]}x{row.image_size[1]}",
        "batch_size": row.batch_size, "device": row.device, "dtype": row.dtype,
        "threads": row.threads, "status": row.status, "error": row.error,
        "params_m": _round(row.params_m, 4), "gflops": _round(row.gflops, 4),
        "flops_convention": row.flops_convention, "gflops_counter": row.gflops_counter,
        "gflops_crosscheck": _round(row.gflops_crosscheck, 4),
        "counters_agree": row.counters_agree,
        "uncounted_ops": ";".join(f"{op}:{n}" for op, n in row.uncounted_ops.items()),
        "gap_ops": ";".join(row.gap_ops),
        "latency_ms_median": _round(latency.get("median"), 4),
        "latency_ms_p90": _round(latency.get("p90"), 4),
        "latency_ms_p99": _round(latency.get("p99"), 4),
        "latency_ms_min": _round(latency.get("min"), 4),
        "latency_ms_mean": _round(latency.get("mean"), 4),
        "latency_ms_ci_low": _round(latency.get("ci_low"), 4),
        "latency_ms_ci_high": _round(latency.get("ci_high"), 4),
        "latency_samples": latency.get("n"),
        "latency_unstable": latency.get("unstable"),
        "first_call_ms": _round(row.first_call_ms, 4),
        "throughput_img_s": _round(row.throughput_img_s, 3),
        "peak_memory_mb": _round(row.peak_memory_mb, 1),
        **{f"paper_{key}": row.reference.get(key) for key in REFERENCE_KEYS},
        "delta_params_pct": _round(params_cmp.delta_pct if params_cmp else None, 2),
        "delta_gflops_pct": _round(gflops_cmp.delta_pct if gflops_cmp else None, 2),
        "params_within_tolerance": params_cmp.within_tolerance if params_cmp else None,
        "gflops_within_tolerance": gflops_cmp.within_tolerance if gflops_cmp else None,
        "note": row.note, "source": row.source,
    }
    return {column: flat[column] for column in CSV_COLUMNS}


def to_csv(run: RunResult) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in run.results:
        writer.writerow({k: ("" if v is None else v) for k, v in flat_row(row).items()})
    return buffer.getvalue()


def to_frame(run: RunResult):
    """The CSV view as a pandas DataFrame (for notebooks and further analysis)."""
    import pandas as pd

    return pd.DataFrame([flat_row(row) for row in run.results], columns=list(CSV_COLUMNS))


# --- Markdown ------------------------------------------------------------------------------

def fmt(value: Optional[float], digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def fmt_delta(row: ModelResult, key: str) -> str:
    """'+1.2%' with a mark: ✓ within tolerance, ✗ outside it."""
    comparison = row.comparisons.get(key)
    if comparison is None or comparison.delta_pct is None:
        return ""
    mark = "✓" if comparison.within_tolerance else "✗"
    return f"{comparison.delta_pct:+.1f}% {mark}"


def fmt_printed(row: ModelResult, key: str) -> str:
    value = row.reference.get(key)
    if value is None:
        return ""
    decimals = row.printed_decimals.get(key)
    return f"{value:.{decimals}f}" if decimals is not None else f"{value:g}"


def status_text(row: ModelResult) -> str:
    if row.status == "ok":
        return "ok" + (" ⚠" if row.warnings else "")
    return f"{row.status}: {row.error}" if row.error else row.status


def _device_label(run: RunResult) -> str:
    rows = [r for r in run.results if r.status == "ok"] or run.results
    devices = sorted({r.device for r in rows})
    return "/".join(d.upper() for d in devices) or "CPU"


def markdown_table(run: RunResult) -> str:
    from tabulate import tabulate

    device = _device_label(run)
    headers = ["Model", "Input", "Batch", "Params (M)", "paper", "Δ", "GFLOPs", "paper", "Δ",
               f"{device} latency (ms) median [p90]", "Throughput (img/s)", "Peak mem (MB)",
               "Status"]
    body = []
    for row in run.results:
        latency = row.latency_ms or {}
        lat = (f"{latency['median']:.2f} [{latency['p90']:.2f}]" + (" ⚠" if latency.get("unstable")
                                                                     else "")) if latency else "–"
        body.append([
            row.name, f"{row.image_size[0]}×{row.image_size[1]}", row.batch_size,
            fmt(row.params_m), fmt_printed(row, "params_m"), fmt_delta(row, "params_m"),
            fmt(row.gflops, 3), fmt_printed(row, "gflops"), fmt_delta(row, "gflops"),
            lat, fmt(row.throughput_img_s, 1), fmt(row.peak_memory_mb, 1), status_text(row),
        ])
    return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)


def protocol_lines(run: RunResult) -> list[str]:
    """What was measured how, in sentences: printed under every table."""
    env = run.environment
    ok = [r for r in run.results if r.status == "ok"] or run.results
    lines = []
    for convention in sorted({r.flops_convention for r in ok}):
        lines.append(f"GFLOPs ({convention}): {FLOP_CONVENTIONS[convention]}.")
    lines.append("Params: all parameters, millions. Δ = (measured − printed) / printed; ✓ within "
                 "tolerance (default 5 %, widened to the printed precision: 0.4 stands for "
                 "0.35–0.45).")
    timed = [r for r in ok if r.latency_ms]
    if timed:
        threads = sorted({r.threads for r in timed if r.threads})
        lines.append(
            "Latency: wall time per forward pass of one batch under torch.inference_mode(), "
            f"after warm-up; median of ≥{min(r.latency_ms['n'] for r in timed)} samples "
            f"[p90]; ⚠ = unstable (95 % CI of the median wider than ±5 %). Throughput = "
            f"batch / median latency. Threads: {', '.join(map(str, threads)) or 'n/a'}.")
        methods = sorted({r.memory_method for r in timed if r.memory_method})
        if methods:
            lines.append("Peak memory: " + "; ".join(methods) + ".")
    cpu = env.get("cpu", "?")
    gpu = f", GPU {env['gpu']}" if env.get("gpu") else ""
    lines.append(
        f"Environment: {cpu} ({env.get('cpu_count_usable', '?')} usable CPUs){gpu}; "
        f"torch {env.get('torch')}, timm {env.get('timm')}, fvcore {env.get('fvcore')}, "
        f"vitbench {env.get('vitbench')}; load average {env.get('load_average_1m_before')} "
        f"before, {env.get('load_average_1m_after', '–')} after.")
    return lines


def to_markdown(run: RunResult) -> str:
    suite = run.suite
    title = suite.get("title") or suite.get("name")
    parts = [f"# {title}", ""]
    if suite.get("source"):
        parts += [f"Printed values from {suite['source']}.", ""]
    parts += [markdown_table(run), ""]
    parts += [f"- {line}" for line in protocol_lines(run)]
    notes = [(r.name, r.note) for r in run.results if r.note]
    warnings = [(r.name, w) for r in run.results for w in r.warnings]
    if notes:
        parts += ["", "Notes:", ""] + [f"- **{name}**: {note}" for name, note in notes]
    if warnings:
        parts += ["", "Warnings:", ""] + [f"- **{name}**: {w}" for name, w in warnings]
    parts += ["", f"Run {run.created_utc} → {run.finished_utc or 'unfinished'}; schema "
                  f"{run.schema_}; canonical data in results.json.", ""]
    return "\n".join(parts)


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def write_reports(run: RunResult, out_dir: str | Path) -> list[Path]:
    """Write ``results.csv`` and ``results.md`` next to ``results.json``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (("results.csv", to_csv(run)), ("results.md", to_markdown(run))):
        _write_atomic(out_dir / name, text)
        written.append(out_dir / name)
    return written
