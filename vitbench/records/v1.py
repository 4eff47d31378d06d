"""Reading ``vitbench.result/1`` files: the flat rows written until the row took typed parts.

One function, :func:`upgrade_v1`, maps a ``/1`` document onto ``/2``; :data:`V1_FIELDS` is the
mapping, field by field (also in ``results/README.md``). Values move, they are not recomputed:
``peak_memory_mb`` was MiB already and becomes ``memory.peak_mib``; ``gflops`` held giga-MACs
and becomes ``counts.gmacs``. Pure dicts; validation is :class:`vitbench.records.RunResult`'s.
"""

from __future__ import annotations

from typing import Any

SCHEMA_V1 = "vitbench.result/1"
#: What :func:`upgrade_v1` produces.
UPGRADED_SCHEMA = "vitbench.result/2"

#: Where each flat ``/1`` row field went in ``/2``: part -> {``/1`` name: name in the part}.
V1_FIELDS: dict[str, dict[str, str]] = {
    "counts": {"params": "params", "gflops": "gmacs", "gflops_counter": "counter",
               "gflops_crosscheck": "crosscheck_gmacs",
               "gflops_crosscheck_counter": "crosscheck_counter",
               "counters_agree": "counters_agree", "uncounted_ops": "uncounted_ops",
               "crosscheck_uncounted_ops": "crosscheck_uncounted_ops", "gap_ops": "gap_ops",
               "flops_error": "error"},
    "latency": {"latency_samples_ms": "samples_ms", "latency_ms": "summary",
                "first_call_ms": "first_call_ms", "warmup_calls": "warmup_calls",
                "stopped_by": "stopped_by", "timer": "timer",
                "calls_per_sample": "calls_per_sample", "throughput_img_s": "throughput_img_s",
                "minor_faults_per_call": "minor_faults_per_call"},
    # peak_memory_mb held MiB already (bytes / 2**20): the value moves, the unit stays.
    "memory": {"peak_memory_mb": "peak_mib", "peak_memory_reserved_mb": "reserved_mib",
               "memory_method": "method"},
    "telemetry": {"foreign_cpu_pct": "foreign_cpu_pct", "contended": "contended",
                  "gpu_power_w": "gpu_power_w", "energy_j_per_img": "energy_j_per_img",
                  "gpu_util_pct": "gpu_util_pct", "gpu_temp_c": "gpu_temp_c",
                  "gpu_telemetry": "nvml"},
}
#: ``/1`` row fields ``/2`` derives instead of storing (``params_m`` = ``counts.params`` / 10⁶).
V1_DERIVED = ("params_m",)


def _has_value(value: Any) -> bool:
    return value is not None and value != {} and value != []


def _mib_keys(parts: dict[str, Any]) -> dict[str, Any]:
    """``/1`` named the CPU memory parts ``*_mb``; they were MiB (KiB / 1024, bytes / 2**20)."""
    return {(key[:-3] + "_mib" if key.endswith("_mb") else key): value
            for key, value in parts.items()}


def upgrade_row_v1(row: dict[str, Any]) -> dict[str, Any]:
    """One flat ``/1`` row as a ``/2`` row: each part gets its fields when any of them holds a
    value; ``environment["memory"]`` becomes ``memory.parts``. Fields ``/1`` never declared
    stay on the row, where validation refuses them."""
    row = dict(row)
    for name in V1_DERIVED:
        row.pop(name, None)
    # A malformed environment is left where it is, for validation to name.
    environment = row.get("environment")
    environment = dict(environment) if isinstance(environment, dict) else None
    memory_parts = environment.pop("memory", None) if environment is not None else None
    for part, fields in V1_FIELDS.items():
        values = {inside: row.pop(flat) for flat, inside in fields.items() if flat in row}
        if part == "memory" and memory_parts is not None:
            values["parts"] = (_mib_keys(memory_parts) if isinstance(memory_parts, dict)
                               else memory_parts)
            row["environment"] = environment
        if any(_has_value(v) for v in values.values()):
            row[part] = {k: v for k, v in values.items() if v is not None}
    return row


def v1_location(loc: list) -> list:
    """A place inside an upgraded row as the ``/1`` row spelled it, for error messages:
    ``counts.params`` → ``params``, ``latency.summary.p50`` → ``latency_ms.p50``,
    ``memory.parts.x`` → ``environment.memory.x``."""
    if len(loc) < 2 or loc[0] not in V1_FIELDS:
        return loc
    part, inside, rest = loc[0], loc[1], list(loc[2:])
    if part == "memory" and inside == "parts":
        return ["environment", "memory", *rest]
    flat = next((f for f, name in V1_FIELDS[part].items() if name == inside), None)
    return [flat, *rest] if flat else loc


def upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A ``vitbench.result/1`` document as ``vitbench.result/2`` (:data:`V1_FIELDS` says where
    each row field went). The input is left as it is."""
    rows = data.get("results")
    return {**data, "schema": UPGRADED_SCHEMA,
            "results": [upgrade_row_v1(r) if isinstance(r, dict) else r for r in rows]
            if isinstance(rows, list) else rows}
