"""Result records: one :class:`ModelResult` per suite row, gathered in a :class:`RunResult`.

``results.json`` (schema ``vitbench.result/1``) is the canonical output: every row with its
raw latency samples, the suite as run, the conventions and the environment. CSV and
Markdown are derived from it (:mod:`vitbench.report`). Pure data; no torch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from vitbench.errors import ResultsError
from vitbench.files import write_atomic

if TYPE_CHECKING:  # stats imports numpy and scipy; the CLI starts without them
    from vitbench.stats import Summary

SCHEMA = "vitbench.result/1"

Status = Literal["ok", "failed", "timeout", "unavailable", "interrupted", "pending"]


class Comparison(BaseModel):
    """A measured value next to the printed one."""

    printed: float
    measured: Optional[float] = None
    delta_pct: Optional[float] = None
    tolerance_pct: float
    within_tolerance: Optional[bool] = None
    matches_printed: Optional[bool] = Field(
        None, description="measured rounds to the printed digits")


def compare(measured: Optional[float], printed: float, decimals: Optional[int],
            tolerance_pct: float) -> Comparison:
    """Compare at a tolerance widened to the printed precision (0.4 stands for 0.35–0.45)."""
    allowed_pct = tolerance_pct
    if decimals is not None and printed:
        half_unit = 0.5 * 10 ** (-decimals)
        allowed_pct = max(tolerance_pct, half_unit / abs(printed) * 100)
    if measured is None:
        return Comparison(printed=printed, tolerance_pct=allowed_pct)
    delta = (measured - printed) / printed * 100 if printed else math.inf
    matches = None
    if decimals is not None:
        matches = round(measured, decimals) == round(printed, decimals)
    return Comparison(printed=printed, measured=measured, delta_pct=delta,
                      tolerance_pct=allowed_pct,
                      within_tolerance=abs(delta) <= allowed_pct + 1e-9, matches_printed=matches)


# --- what each measuring stage returns (vitbench.measure); the row still stores them flat ------
# Frozen dataclasses, not models: ``Latency`` holds a :class:`vitbench.stats.Summary`, and this
# module must import neither torch nor numpy/scipy. vitbench.measure.row maps them onto the row.


@dataclass(frozen=True)
class StaticCost:
    """Parameters and GFLOPs (multiply-accumulates) of one model, counted once at batch 1."""

    params: int
    #: the primary count; None when FLOPs were not counted or no counter could trace the model
    gmacs: Optional[float] = None
    #: which counter gave ``gmacs``; None when FLOPs were not counted at all (``count: false``)
    counter: Optional[str] = None
    crosscheck_gmacs: Optional[float] = None
    crosscheck_counter: Optional[str] = None
    counters_agree: Optional[bool] = None
    #: ops the primary counter skipped, with call counts
    uncounted_ops: dict[str, int] = field(default_factory=dict)
    #: the skipped ops that may carry MACs
    gap_ops: list[str] = field(default_factory=list)
    #: ops the cross-check ran without a formula that may carry MACs, with call counts
    crosscheck_uncounted_ops: dict[str, int] = field(default_factory=dict)
    error: Optional[str] = None

    @property
    def flops_counted(self) -> bool:
        return self.counter is not None


@dataclass(frozen=True)
class Latency:
    """One timed loop: the raw per-call samples, in the order taken, and what they say."""

    samples_ms: list[float]
    summary: "Summary"
    #: max/min of the medians of the loop's four quarters (None: too few samples)
    window_spread: Optional[float]
    first_call_ms: float
    warmup_calls: int
    stopped_by: str  # "minimums" | "ci-target" | "max-time"
    timer: str  # "host perf_counter" | "cuda events"
    calls_per_sample: int = 1

    @property
    def calls(self) -> int:
        """Forward calls inside the timed samples."""
        return self.summary.n * self.calls_per_sample


@dataclass(frozen=True)
class TimedWindow:
    """What the instruments saw while the timed samples ran (warm-up excluded)."""

    minor_faults: int
    #: :class:`vitbench.env.ContentionMeter`'s result
    contention: dict[str, Any]
    foreign_cpu_pct: Optional[float]
    contended: Optional[bool]
    #: :meth:`vitbench.nvml.PowerSampler.summary`, or why there is none
    gpu_telemetry: dict[str, Any]
    #: the glibc malloc thresholds the process ran with (None: glibc's own defaults)
    malloc: dict[str, Optional[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class PeakMemory:
    """Peak memory from the first call to the last timed one (vitbench.measure.memory)."""

    peak_mib: Optional[float]
    method: str
    reserved_mib: Optional[float] = None  # CUDA: what the caching allocator held
    #: CPU: the parts of ``peak_mib`` (weights, the rise of peak RSS, the RSS it rose from)
    parts: Optional[dict[str, float]] = None


class ModelResult(BaseModel):
    """Everything measured for one row of a suite."""

    model_config = ConfigDict(extra="allow")

    name: str
    model: str
    kwargs: dict[str, Any] = Field(default_factory=dict)
    image_size: tuple[int, int]
    batch_size: int
    device: str
    dtype: str
    threads: Optional[int] = None
    flops_convention: str
    tolerance_pct: float
    status: Status = "pending"
    error: Optional[str] = None
    note: str = ""
    source: Optional[str] = None

    params: Optional[int] = None
    params_m: Optional[float] = None
    gflops: Optional[float] = None
    gflops_counter: Optional[str] = None
    gflops_crosscheck: Optional[float] = None
    gflops_crosscheck_counter: Optional[str] = None
    counters_agree: Optional[bool] = None
    uncounted_ops: dict[str, int] = Field(default_factory=dict)
    gap_ops: list[str] = Field(default_factory=list)
    flops_error: Optional[str] = None

    latency_ms: Optional[dict[str, Any]] = Field(None, description="stats.Summary.to_dict()")
    latency_samples_ms: list[float] = Field(default_factory=list)
    first_call_ms: Optional[float] = None
    warmup_calls: Optional[int] = None
    stopped_by: Optional[str] = None
    throughput_img_s: Optional[float] = None
    minor_faults_per_call: Optional[float] = Field(
        None, description="page faults per forward call during the timed loop")
    peak_memory_mb: Optional[float] = None
    memory_method: Optional[str] = None
    # How it was timed (vitbench.measure.job); None on rows measured before these existed.
    mode: Optional[str] = Field(None, description="latency | throughput (blocks of calls)")
    calls_per_sample: Optional[int] = None
    timer: Optional[str] = Field(None, description="host perf_counter | cuda events")
    channels_last: Optional[bool] = None
    compile: Optional[str] = Field(None, description="torch.compile mode, None = eager")
    autocast: Optional[bool] = None
    batch_size_search: Optional[dict[str, Any]] = Field(
        None, description="batch_size: max — the tries (batch, fitted) and the batch found")
    peak_memory_reserved_mb: Optional[float] = None
    foreign_cpu_pct: Optional[float] = Field(
        None, description="other processes' CPU during the timed loop, % of machine capacity")
    contended: Optional[bool] = None
    gpu_power_w: Optional[float] = None
    energy_j_per_img: Optional[float] = None
    gpu_util_pct: Optional[float] = None
    gpu_temp_c: Optional[float] = None
    gpu_telemetry: dict[str, Any] = Field(default_factory=dict,
                                          description="NVML samples summary, or why absent")

    reference: dict[str, float] = Field(default_factory=dict)
    printed_decimals: dict[str, int] = Field(default_factory=dict)
    comparisons: dict[str, Comparison] = Field(default_factory=dict)

    stage_seconds: dict[str, float] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    environment: dict[str, Any] = Field(default_factory=dict,
                                        description="worker-side details (threads, load)")

    @classmethod
    def for_job(cls, job, **fields: Any) -> "ModelResult":
        """An empty row describing how ``job`` (a :class:`vitbench.config.spec.Job`) is measured."""
        described = dict(
            name=job.name, model=job.model, kwargs=job.kwargs, image_size=job.image_size,
            batch_size=0 if job.max_batch else job.batch_size, device=job.device,
            dtype=job.dtype, threads=job.threads if job.device == "cpu" else None,
            flops_convention=job.flops_convention, tolerance_pct=job.tolerance_pct,
            mode=job.mode, channels_last=job.channels_last, compile=job.compile,
            autocast=job.autocast)
        return cls(**{**described, **fields})

    def compare_to_reference(self) -> None:
        """Fill :attr:`comparisons` for the printed values that have a measured counterpart."""
        measured = {"params_m": self.params_m, "gflops": self.gflops}
        self.comparisons = {
            key: compare(measured[key], printed, self.printed_decimals.get(key), self.tolerance_pct)
            for key, printed in self.reference.items() if key in measured
        }

    @property
    def latency_median_ms(self) -> Optional[float]:
        return self.latency_ms["median"] if self.latency_ms else None


class RunResult(BaseModel):
    """One invocation of a suite: the canonical ``results.json``."""

    model_config = ConfigDict(extra="allow")

    schema_: str = Field(SCHEMA, alias="schema")
    suite: dict[str, Any]
    created_utc: str
    finished_utc: Optional[str] = None
    complete: bool = False
    command: list[str] = Field(default_factory=list)
    overrides: dict[str, Any] = Field(default_factory=dict)
    conventions: dict[str, Any] = Field(default_factory=dict)
    environment: dict[str, Any] = Field(default_factory=dict)
    results: list[ModelResult] = Field(default_factory=list)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=1)

    def save(self, path: str | Path) -> Path:
        """Write atomically (temp file + rename): a crash never leaves half a file."""
        return write_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> "RunResult":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ResultsError(f"{path}: no such file") from None
        except json.JSONDecodeError as exc:
            raise ResultsError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
        schema = data.get("schema") if isinstance(data, dict) else None
        if schema != SCHEMA:
            raise ResultsError(f"{path}: schema {schema!r} is not {SCHEMA!r}")
        return cls.model_validate(data)

    def counts(self) -> dict[str, int]:
        """Rows per status."""
        out: dict[str, int] = {}
        for row in self.results:
            out[row.status] = out.get(row.status, 0) + 1
        return out
