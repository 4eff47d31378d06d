"""One row of a suite: :class:`ModelResult`, its identity and settings flat, what was measured
as typed parts (:mod:`vitbench.records.parts`); and :func:`compare`, measured against printed."""

from __future__ import annotations

import math
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from vitbench.records.runtime import Deployment
from vitbench.records.parts import Latency, LatencySummary, PeakMemory, StaticCost, Telemetry
from vitbench.records.relative import RelativeLatency

Status = Literal["ok", "failed", "timeout", "unavailable", "interrupted", "pending"]


class Comparison(BaseModel):
    """A measured value next to the printed one."""

    model_config = ConfigDict(extra="forbid")

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


class ModelResult(BaseModel):
    """One row of a suite (one model × setting): how it was measured, flat, and what was
    measured, as typed parts (None: that stage did not run or did not get that far)."""

    model_config = ConfigDict(extra="forbid")

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
    # How it was timed (vitbench.measure.job); None on rows measured before these existed.
    mode: Optional[str] = Field(None, description="latency | throughput (blocks of calls)")
    channels_last: Optional[bool] = None
    compile: Optional[str] = Field(None, description="torch.compile mode, None = eager")
    autocast: Optional[bool] = None
    runtime: Optional[str] = Field(
        None, description="eager | compile | onnxruntime | openvino | tensorrt; None = eager")
    reparameterization: Optional[str] = Field(
        None, description="as-built | reparameterized (folded into deploy form before counting "
                          "and timing) | nothing-to-reparameterize (asked, nothing to fold); "
                          "None on rows measured before this existed")
    batch_size_search: Optional[dict[str, Any]] = Field(
        None, description="batch_size: max — the tries (batch, fitted) and the batch found")
    status: Status = "pending"
    error: Optional[str] = None
    note: str = ""
    source: Optional[str] = None

    counts: Optional[StaticCost] = None
    latency: Optional[Latency] = None
    #: this row's latency as a multiple of the run's reference model's (lockstep blocks)
    relative: Optional[RelativeLatency] = None
    memory: Optional[PeakMemory] = None
    telemetry: Optional[Telemetry] = None
    #: a deployment runtime's export and its output against eager's (None: eager/compile)
    deployment: Optional[Deployment] = None

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
            autocast=job.autocast,
            # asked for deploy mode: None until the worker has built and folded the model
            reparameterization=None if getattr(job, "reparameterize", False) else "as-built",
            runtime=None if getattr(job, "runtime", "eager") == "eager" else job.runtime)
        return cls(**{**described, **fields})

    # --- the values most readers want, read-only ----------------------------------------

    @property
    def params_m(self) -> Optional[float]:
        """Parameters, millions."""
        return self.counts.params_m if self.counts else None

    @property
    def gmacs(self) -> Optional[float]:
        """10⁹ multiply-accumulates per image: what the papers print as "GFLOPs"."""
        return self.counts.gmacs if self.counts else None

    @property
    def latency_summary(self) -> Optional[LatencySummary]:
        """What the timed samples say (None: not timed, or the loop never finished)."""
        return self.latency.summary if self.latency else None

    @property
    def runtime_name(self) -> str:
        """What ran the model: ``eager`` when the row names none."""
        return self.runtime or "eager"

    @property
    def latency_median_ms(self) -> Optional[float]:
        summary = self.latency_summary
        return summary.median if summary else None

    @property
    def throughput_img_s(self) -> Optional[float]:
        return self.latency.throughput_img_s if self.latency else None

    @property
    def peak_memory_mib(self) -> Optional[float]:
        return self.memory.peak_mib if self.memory else None

    def compare_to_reference(self) -> None:
        """Fill :attr:`comparisons` for the printed values that have a measured counterpart.

        The keys are the suite's reference keys, the papers' words: ``gflops`` is compared
        with the measured giga-MACs (the papers print MACs as "GFLOPs")."""
        measured = {"params_m": self.params_m, "gflops": self.gmacs}
        self.comparisons = {
            key: compare(measured[key], printed, self.printed_decimals.get(key), self.tolerance_pct)
            for key, printed in self.reference.items() if key in measured
        }
