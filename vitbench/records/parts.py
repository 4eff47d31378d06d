"""The typed parts of a row: what each measuring stage (:mod:`vitbench.measure`) returns and
the row stores as it is.

* :class:`StaticCost` — ``counts``: parameters and giga-MACs (:mod:`vitbench.measure.static`)
* :class:`Latency` with its :class:`LatencySummary` — ``latency``: the timed loop's raw samples
  and what they say (:mod:`vitbench.measure.timing`; pooled over processes by
  :meth:`Latency.pooled`)
* :class:`PeakMemory` — ``memory`` (:mod:`vitbench.measure.memory`)
* :class:`Telemetry` — ``telemetry``: what the instruments saw during the timed loop, made from
  the stage's :class:`TimedWindow` (which the row does not store)

pydantic models, frozen, with ``extra="forbid"``: an unknown key in a results file is an
error, not a silently kept field. Names carry their units (``gmacs``, ``_mib``, ``_ms``).
No torch, numpy or scipy at import: the CLI starts without them (:class:`vitbench.stats.Summary`
converts into :class:`LatencySummary` through :meth:`LatencySummary.of`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:  # stats imports numpy and scipy; the CLI starts without them
    from vitbench.stats import Summary


class Part(BaseModel):
    """A typed part of a row: unknown keys refused, never changed once made."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StaticCost(Part):
    """Parameters and GFLOPs (multiply-accumulates) of one model, counted once at batch 1."""

    params: int
    #: 10⁹ multiply-accumulates per image (the papers' "GFLOPs"); None when FLOPs were not
    #: counted or no counter could trace the model
    gmacs: Optional[float] = None
    #: which counter gave ``gmacs``; None when FLOPs were not counted at all (``count: false``)
    counter: Optional[str] = None
    crosscheck_gmacs: Optional[float] = None
    crosscheck_counter: Optional[str] = None
    counters_agree: Optional[bool] = None
    #: ops the primary counter skipped, with call counts
    uncounted_ops: dict[str, int] = Field(default_factory=dict)
    #: ops the cross-check ran without a formula that may carry MACs, with call counts
    crosscheck_uncounted_ops: dict[str, int] = Field(default_factory=dict)
    #: the skipped ops that may carry MACs
    gap_ops: list[str] = Field(default_factory=list)
    error: Optional[str] = None

    @property
    def flops_counted(self) -> bool:
        return self.counter is not None

    @property
    def params_m(self) -> float:
        return self.params / 1e6


class LatencySummary(Part):
    """What the timed samples say, in their unit (milliseconds): the keys of
    :meth:`vitbench.stats.Summary.to_dict`, plus what a loop and a pool of processes add."""

    n: int
    median: float
    mean: float
    std: float
    min: float
    max: float
    p90: float
    p99: float
    iqr: float
    ci_low: float
    ci_high: float
    ci_level: float = 0.95
    #: half the width of the median's CI, % of the median (rounded to 3 decimals)
    ci_halfwidth_pct: float
    iqr_pct: float
    #: the median cannot be trusted to a few percent; also set when processes disagree
    unstable: bool
    #: max/min of the medians of the loop's four quarters (None: too few samples); pooled:
    #: the largest over the processes
    window_spread: Optional[float] = None
    #: pooled over fresh worker processes: how many, each one's median, and their max/min
    processes: Optional[int] = None
    process_medians_ms: Optional[list[float]] = None
    process_spread: Optional[float] = None

    @classmethod
    def of(cls, summary: "Summary", **extra: Any) -> "LatencySummary":
        """A :class:`vitbench.stats.Summary` as stored, with ``extra`` (``window_spread``...)."""
        return cls(**summary.to_dict(), **extra)

    def exact(self) -> "Summary":
        """The :class:`vitbench.stats.Summary` these values came from: its ``ci_halfwidth_pct``
        and ``iqr_pct`` are exact where the stored ones are rounded."""
        from vitbench.stats import Summary

        return Summary(**self.model_dump(include=set(Summary.__dataclass_fields__)))


class Latency(Part):
    """One timed loop, or a pool of them: the raw per-call samples in the order taken, what
    they say, and how they were taken. The stage sets all but ``throughput_img_s`` and
    ``minor_faults_per_call``, which the row adds (:mod:`vitbench.measure.row`); the others
    are None only on ``/1`` rows that predate them or whose loop never finished."""

    samples_ms: list[float] = Field(default_factory=list)
    #: None only on a ``/1`` row whose first call was timed but whose loop never finished
    summary: Optional[LatencySummary] = None
    first_call_ms: Optional[float] = None
    warmup_calls: Optional[int] = None
    stopped_by: Optional[str] = None  # "minimums" | "ci-target" | "max-time" | "lockstep"
    timer: Optional[str] = None  # "host perf_counter" | "cuda events"
    calls_per_sample: Optional[int] = None
    #: images per second = batch_size / median
    throughput_img_s: Optional[float] = None
    #: page faults per forward call during the timed loop
    minor_faults_per_call: Optional[float] = None

    @property
    def calls(self) -> int:
        """Forward calls inside the timed samples."""
        return self.summary.n * (self.calls_per_sample or 1) if self.summary else 0

    @classmethod
    def pooled(cls, first: "Latency", *, samples_ms: Sequence[float], summary: "Summary",
               medians_ms: Sequence[float], spread: Optional[float],
               window_spread: Optional[float], batch_size: int,
               unstable: bool) -> "Latency":
        """Several fresh processes that timed the same job, as one latency: ``summary`` over
        their pooled ``samples_ms``, each process's median and their max/min ``spread``, the
        largest ``window_spread`` of their loops; the first call and the loop's settings stay
        ``first``'s. ``unstable`` flags a spread the caller judged too large."""
        stored = LatencySummary.of(
            summary, window_spread=None if window_spread is None else round(window_spread, 4),
            processes=len(medians_ms), process_medians_ms=[round(m, 6) for m in medians_ms],
            process_spread=None if spread is None else round(spread, 4))
        if unstable:
            stored = stored.model_copy(update={"unstable": True})
        return first.model_copy(update=dict(
            samples_ms=list(samples_ms), summary=stored,
            throughput_img_s=batch_size / (summary.median / 1000)))


class PeakMemory(Part):
    """Peak memory from the first call to the last timed one (:mod:`vitbench.measure.memory`),
    in MiB (2²⁰ bytes)."""

    peak_mib: Optional[float] = None
    reserved_mib: Optional[float] = None  # CUDA: what the caching allocator held
    method: Optional[str] = None  # how it was read; None only on /1 rows that recorded none
    #: CPU: the parts of ``peak_mib`` (weights, the rise of peak RSS, the RSS it rose from,
    #: the RSS before the build)
    parts: Optional[dict[str, float]] = None


class TimedWindow(Part):
    """What the instruments saw while the timed samples ran (warm-up excluded): the stage's
    outcome; the row keeps its :class:`Telemetry`, the faults per call and the environment."""

    minor_faults: int
    #: :class:`vitbench.env.ContentionMeter`'s result
    contention: dict[str, Any]
    foreign_cpu_pct: Optional[float] = None
    contended: Optional[bool] = None
    #: :meth:`vitbench.nvml.PowerSampler.summary`, or why there is none
    gpu_telemetry: dict[str, Any] = Field(default_factory=dict)
    #: the glibc malloc thresholds the process ran with (None: glibc's own defaults)
    malloc: dict[str, Optional[str]] = Field(default_factory=dict)


class Telemetry(Part):
    """The machine during the timed loop: other processes' CPU and, on CUDA, NVML's board
    power, energy, utilisation and temperature (None without a GPU or NVML)."""

    #: other processes' CPU during the timed loop, % of machine capacity
    foreign_cpu_pct: Optional[float] = None
    contended: Optional[bool] = None
    gpu_power_w: Optional[float] = None
    energy_j_per_img: Optional[float] = None
    gpu_util_pct: Optional[float] = None
    gpu_temp_c: Optional[float] = None
    #: :meth:`vitbench.nvml.PowerSampler.summary`, or why there is none
    nvml: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, window: TimedWindow) -> "Telemetry":
        nvml = window.gpu_telemetry
        return cls(foreign_cpu_pct=window.foreign_cpu_pct, contended=window.contended,
                   gpu_power_w=nvml.get("power_w_mean"),
                   energy_j_per_img=nvml.get("energy_j_per_img"),
                   gpu_util_pct=nvml.get("util_pct_mean"), gpu_temp_c=nvml.get("temp_c_max"),
                   nvml=nvml)
