"""The gate's vocabulary and knobs: metric names, :class:`GateConfig`, :class:`GateError`.

One metric vocabulary end to end: the names in ``GateConfig.metrics`` are the names a
verdict carries in ``verdict.json`` (``params``, ``gflops``, ``latency_ms``,
``peak_memory_mb``; the last holds MiB, as the result column of that name does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from vitbench.errors import VitbenchError

PARAMS, GFLOPS, LATENCY, PEAK_MEMORY = "params", "gflops", "latency_ms", "peak_memory_mb"
#: Every metric the gate can test, in the order a report lists them.
METRICS = (PARAMS, GFLOPS, LATENCY, PEAK_MEMORY)
#: Short names ``--metrics`` has always accepted.
METRIC_ALIASES = {"latency": LATENCY, "memory": PEAK_MEMORY}
#: The "metric" of a verdict about a whole model (missing on one side, failed).
WHOLE_MODEL = "*"

#: The calibration probe's model; a row with it is the run's machine-speed probe.
CALIBRATION_MODEL = "vitbench:gate_calibration"


class GateError(VitbenchError):
    """The gate cannot run: unreadable input or an impossible configuration (exit 2)."""


@dataclass(frozen=True)
class GateConfig:
    """Every knob of the decision rule (docs/ci-gate.md, "The decision ladder").

    Minimum effects and tolerances are fractions (``_frac``: 0.05 is 5 %) or MiB (``_mib``);
    the command line takes percent and converts once.
    """

    alpha: float = 0.01  # family-wise error for FAIL (Holm over every noisy test)
    delta_latency_cpu_frac: float = 0.05  # minimum effect δ
    delta_latency_cuda_frac: float = 0.02
    delta_memory_cpu_frac: float = 0.05
    memory_floor_mib: float = 4.0  # CPU RSS: an effect must also exceed this many MiB
    cuda_memory_tol_mib: float = 0.0
    quantile: Optional[float] = None  # per-run latency statistic; None: 0.2 cpu, 0.5 cuda
    noise_factor: float = 0.6  # INCONCLUSIVE when the between-run SD exceeds this × δ
    ci_level: float = 0.95
    warn_q: float = 0.05  # BH q below which a sub-threshold shift is a WARN
    calibration_tolerance_frac: float = 0.05  # stored baseline: |calibration ratio − 1|
    calibration_min_shift_frac: float = 0.02  # in-job: a significant shift this big = drift
    metrics: tuple[str, ...] = METRICS

    def latency_quantile(self, device: str) -> float:
        if self.quantile is not None:
            return self.quantile
        return 0.5 if device == "cuda" else 0.2

    def delta_for(self, metric: str, device: str) -> float:
        """The minimum effect δ (a fraction) of a noisy metric on ``device``."""
        if metric == LATENCY:
            return self.delta_latency_cuda_frac if device == "cuda" else self.delta_latency_cpu_frac
        return self.delta_memory_cpu_frac
