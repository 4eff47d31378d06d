"""What the gate decided: one :class:`Verdict` per (model, metric), gathered in a :class:`GateReport`.

A verdict is final when it is made (frozen, public fields only): the fields are exactly the
entries of a verdict in ``verdict.json`` (schema ``vitbench.verdict/1``). The report's
:meth:`GateReport.exit_code` maps the overall verdict onto the one exit-code table,
:class:`vitbench.errors.ExitCode`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from vitbench.errors import ExitCode
from vitbench.gate.config import GateConfig

FAIL, WARN, IMPROVED, PASS, INCONCLUSIVE, NOT_COMPARABLE = (
    "FAIL", "WARN", "IMPROVED", "PASS", "INCONCLUSIVE", "NOT_COMPARABLE")
#: Worst first: the order counts are listed in.
VERDICT_ORDER = (FAIL, INCONCLUSIVE, NOT_COMPARABLE, WARN, IMPROVED, PASS)

#: Kinds of verdict (docs/ci-gate.md, "Three kinds of metric, three rules").
DETERMINISTIC, QUASI_DETERMINISTIC, NOISY, CALIBRATION, WHOLE_MODEL_KIND = (
    "deterministic", "quasi-deterministic", "noisy", "calibration", "-")
#: Designs of a noisy test: independent runs per side, or paired lockstep rounds.
RUNS, LOCKSTEP = "runs", "lockstep"
DESIGNS = (LOCKSTEP, RUNS)

#: ``--on-inconclusive``: the exit code an INCONCLUSIVE / NOT_COMPARABLE overall verdict gets.
ON_INCONCLUSIVE = {"fail": ExitCode.INCONCLUSIVE, "pass": ExitCode.OK,
                   "regression": ExitCode.FAILED}


@dataclass(frozen=True)
class Verdict:
    """The decision for one (model, metric), with the evidence it rests on."""

    model: str
    metric: str  # params | gflops | latency_ms | peak_memory_mb | * (the whole model)
    kind: str  # deterministic | quasi-deterministic | noisy | calibration | -
    verdict: str
    reason: str
    unit: str = ""
    baseline: Optional[float] = None  # noisy: median of the per-run values
    candidate: Optional[float] = None
    ratio: Optional[float] = None  # candidate / baseline (noisy: Hodges–Lehmann estimate)
    ci_low: Optional[float] = None
    ci_high: Optional[float] = None
    p: Optional[float] = None  # one-sided, in the direction of the shift
    p_holm: Optional[float] = None
    delta: Optional[float] = None  # minimum effect δ, a fraction
    n_a: Optional[int] = None
    n_b: Optional[int] = None
    noise_sd: Optional[float] = None  # robust SD of the log values
    statistic: Optional[str] = None  # what one value is
    design: Optional[str] = None  # noisy: RUNS | LOCKSTEP
    confirmation: Optional[dict[str, Any]] = None  # ab: the pooled re-measurement of a FAIL


@dataclass
class GateReport:
    """Every verdict of one invocation, the sides it compared, and the notes to read with them."""

    mode: str  # compare | ab | resampled
    config: GateConfig
    baseline: dict[str, Any]  # Side.describe()
    candidate: dict[str, Any]
    verdicts: list[Verdict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    noisy_tests: int = 0  # the size of the Holm family

    def counts(self) -> dict[str, int]:
        out = {v: 0 for v in VERDICT_ORDER}
        for verdict in self.verdicts:
            out[verdict.verdict] += 1
        return out

    def overall(self) -> str:
        counts = self.counts()
        if counts[FAIL]:
            return FAIL
        if counts[INCONCLUSIVE] or counts[NOT_COMPARABLE]:
            return INCONCLUSIVE
        return PASS

    def exit_code(self, on_inconclusive: str = "fail") -> int:
        """0 pass, 1 regression, 3 inconclusive or not comparable (``on_inconclusive``:
        ``fail`` → 3, ``pass`` → 0, ``regression`` → 1)."""
        overall = self.overall()
        if overall == FAIL:
            return int(ExitCode.FAILED)
        if overall == INCONCLUSIVE:
            return int(ON_INCONCLUSIVE[on_inconclusive])
        return int(ExitCode.OK)
