"""A :class:`~vitbench.records.RunResult` as the history's lines: one ``runs`` line, one
``rows`` line per suite row, one ``points`` line per measured metric (pure functions, no
database), and the git state of the measured code.

``env_key`` is where and how a point was measured: the machine fields that change timings
(:data:`MACHINE_FIELDS`) and the row's timing settings (:data:`SETTING_FIELDS`), hashed.
Points with equal keys are comparable; a trend never joins points of different keys. The
host name is left out on purpose: ephemeral CI runners get a new one every job.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any, Optional

from vitbench.records import ModelResult, RunResult

#: Environment fields of a run that make its timings comparable (the gate's list).
MACHINE_FIELDS = ("cpu", "cpu_count_usable", "python", "torch", "gpu", "cuda", "cudnn")
#: Row settings that make its timings comparable.
SETTING_FIELDS = ("device", "dtype", "threads", "batch_size", "image_size", "mode", "compile",
                  "channels_last", "autocast")
#: Row settings that join the key only when set (so keys made before they existed stay
#: valid): the deployment runtime (eager is the default) and reparameterization.
OPTIONAL_SETTING_FIELDS = ("runtime", "reparameterization")
#: Package versions a ``runs`` line keeps (from the run's environment).
PACKAGES = ("vitbench", "torch", "torchvision", "timm", "fvcore", "numpy", "transformers")
#: metric → unit; the names the ``points`` table and :func:`vitbench.history.series` use.
METRICS = {
    "params_m": "M", "gflops": "GMACs", "latency_ms": "ms", "latency_relative": "× reference",
    "throughput_img_s": "img/s",
    "first_call_ms": "ms", "peak_memory_mib": "MiB", "reserved_memory_mib": "MiB",
    "foreign_cpu_pct": "%", "gpu_power_w": "W", "energy_j_per_img": "J/img",
}


def git_state(folder: Optional[str | Path]) -> tuple[Optional[str], Optional[bool]]:
    """``(commit, dirty)`` of the git repository holding ``folder`` (tracked files changed
    counts as dirty); ``(None, None)`` outside a repository or without git."""
    where = Path(folder) if folder else Path.cwd()
    if where.is_file():
        where = where.parent
    try:
        head = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None, None
        status = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None, None
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return head.stdout.strip() or None, dirty


def env_fields(environment: dict[str, Any], row: ModelResult) -> dict[str, Any]:
    """The fields :func:`env_key` hashes, by name."""
    machine = {k: environment.get(k) for k in MACHINE_FIELDS}
    if row.device == "cpu":  # a GPU on the machine does not change CPU timings
        machine.update(gpu=None, cuda=None, cudnn=None)
    settings = {k: getattr(row, k) for k in SETTING_FIELDS}
    settings["image_size"] = "x".join(map(str, row.image_size))
    for k in OPTIONAL_SETTING_FIELDS:
        value = getattr(row, k, None)
        if value not in (None, "eager", "as-built"):
            settings[k] = value
    return {**machine, **settings}


def env_key(environment: dict[str, Any], row: ModelResult) -> str:
    """12 hex digits: the same machine model, software and timing settings give the same key."""
    text = json.dumps(env_fields(environment, row), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def env_label(environment: dict[str, Any], row: ModelResult) -> str:
    """What :func:`env_key` stands for, short: ``AMD EPYC 7B13 · cpu ×1 · torch 2.14.1``."""
    where = (environment.get("gpu") or "cuda") if row.device == "cuda" else (
        environment.get("cpu") or "cpu")
    threads = f" ×{row.threads}" if row.threads else ""
    extra = [f"b{row.batch_size}", "x".join(map(str, row.image_size)), row.dtype]
    if row.compile:
        extra.append(f"compile {row.compile}")
    if getattr(row, "runtime", None) not in (None, "eager"):
        extra.append(str(row.runtime))
    return (f"{where} · {row.device}{threads} · torch {environment.get('torch') or '?'} · "
            + " ".join(extra))


def row_flags(row: ModelResult) -> list[str]:
    """The row's warning flags: what a reader should know before trusting its numbers."""
    flags = []
    summary = row.latency_summary
    if summary is not None and summary.unstable:
        flags.append("unstable")
    if row.telemetry is not None and row.telemetry.contended:
        flags.append("contended")
    if row.counts is not None:
        if row.counts.counters_agree is False:
            flags.append("counters_disagree")
        if row.counts.gap_ops:
            flags.append("uncounted_ops")
    within = [c.within_tolerance for c in row.comparisons.values()]
    if any(w is False for w in within):
        flags.append("off_paper")
    if row.warnings:
        flags.append("warnings")
    return flags


def run_line(run: RunResult, *, source: str = "", kind: str = "run", label: str = "",
             commit: Optional[str] = None, dirty: Optional[bool] = None,
             appended_utc: str = "") -> dict[str, Any]:
    """The ``runs`` line of ``run``."""
    env = run.environment
    counts = run.counts()
    return dict(
        run_id=run.id, suite=run.suite.get("name"), suite_sha256=run.suite.get("sha256"),
        suite_path=run.suite.get("path") or run.suite.get("source"),
        created_utc=run.created_utc, finished_utc=run.finished_utc, complete=run.complete,
        kind=kind, label=label, git_commit=commit, git_dirty=dirty,
        vitbench_version=env.get("vitbench"), torch=env.get("torch"),
        python=env.get("python"), hostname=env.get("hostname"),
        packages=json.dumps({p: env.get(p) for p in PACKAGES if env.get(p)}),
        environment=json.dumps(env, default=str), command=json.dumps(run.command),
        overrides=json.dumps(run.overrides, default=str), rows_total=len(run.results),
        rows_ok=counts.get("ok", 0), source=source, appended_utc=appended_utc)


def row_line(run: RunResult, index: int, row: ModelResult) -> dict[str, Any]:
    """The ``rows`` line of the ``index``-th row of ``run``."""
    return dict(
        run_id=run.id, row_index=index, name=row.name, model=row.model, status=row.status,
        error=(row.error or None) and row.error[:2000], device=row.device, dtype=row.dtype,
        threads=row.threads, batch_size=row.batch_size,
        image_size="x".join(map(str, row.image_size)), mode=row.mode,
        compile=row.compile, channels_last=row.channels_last, autocast=row.autocast,
        flops_convention=row.flops_convention,
        params=row.counts.params if row.counts else None,
        gflops_counter=row.counts.counter if row.counts else None,
        memory_method=row.memory.method if row.memory else None, env_key=env_key(run.environment, row),
        env_label=env_label(run.environment, row), flags=",".join(row_flags(row)))


def _quantile(samples: list[float], q: float) -> Optional[float]:
    if not samples:
        return None
    import numpy as np

    return float(np.quantile(np.asarray(samples, float), q))


def point_lines(run: RunResult, index: int, row: ModelResult) -> list[dict[str, Any]]:
    """The ``points`` lines of one row: every metric it measured (none for a failed row's
    missing stages)."""
    base = dict(run_id=run.id, row_index=index)
    out: list[dict[str, Any]] = []

    def add(metric: str, value: Optional[float], **summary: Any) -> None:
        if value is not None:
            out.append({**base, "metric": metric, "value": float(value),
                        "unit": METRICS[metric], "median": None, "min": None, "max": None,
                        "ci_low": None, "ci_high": None, "n": None, "q20": None, **summary})

    counts = row.counts
    if counts is not None:
        add("params_m", counts.params_m)
        add("gflops", counts.gmacs)
    latency, summary = row.latency, row.latency_summary
    if latency is not None and summary is not None:
        add("latency_ms", summary.median, median=summary.median, min=summary.min,
            max=summary.max, ci_low=summary.ci_low, ci_high=summary.ci_high, n=summary.n,
            q20=_quantile(latency.samples_ms, 0.2))
        add("throughput_img_s", latency.throughput_img_s)
    if latency is not None:
        add("first_call_ms", latency.first_call_ms)
    relative = getattr(row, "relative", None)
    if relative is not None:  # the ratio to the run's reference model (unit names it)
        add("latency_relative", relative.ratio, unit=f"× {relative.reference}",
            median=relative.ratio, ci_low=relative.ci_low, ci_high=relative.ci_high,
            n=relative.block_pairs)
    if row.memory is not None:
        add("peak_memory_mib", row.memory.peak_mib)
        add("reserved_memory_mib", row.memory.reserved_mib)
    if row.telemetry is not None:
        add("foreign_cpu_pct", row.telemetry.foreign_cpu_pct)
        add("gpu_power_w", row.telemetry.gpu_power_w)
        add("energy_j_per_img", row.telemetry.energy_j_per_img)
    return out
