"""The evidence for each (model, metric): what the two sides measured, before any decision.

One builder per metric class (docs/ci-gate.md, "Three kinds of metric, three rules"):

* :func:`deterministic` — params and GFLOPs: the first run's value of each side
  (:class:`ExactEvidence`);
* :func:`quasi_deterministic` — the CUDA allocator peak: exact with a tolerance
  (:class:`ExactEvidence`);
* :func:`run_level` — one value per fresh-process run on each side, tested on logs with
  Mann–Whitney U (:class:`Evidence`, design ``runs``);
* :func:`lockstep` — one ln(B/A) per lockstep round, tested with the signed-rank test
  (:class:`Evidence`, design ``lockstep``).

Where no rule can apply (a metric measured on one side only, settings or environments that
differ), the builder returns the NOT_COMPARABLE or INCONCLUSIVE :class:`Verdict` directly.
The decisions themselves are in :mod:`vitbench.gate.rules`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np

from vitbench.gate.config import GFLOPS, LATENCY, PARAMS, PEAK_MEMORY, GateConfig
from vitbench.gate.nonparametric import (hodges_lehmann, hodges_lehmann_paired, moses_ci,
                                         mwu_pvalue, pooled_robust_sd, robust_sd,
                                         signed_rank_pvalue, walsh_ci)
from vitbench.gate.sides import ModelRuns, Side, same_setting, setting_differences
from vitbench.gate.verdict import (DETERMINISTIC, INCONCLUSIVE, LOCKSTEP, NOISY, NOT_COMPARABLE,
                                   QUASI_DETERMINISTIC, RUNS, Verdict)

#: Offset (MiB) added to memory values before taking logs: a 0 MiB peak stays finite.
MEMORY_LOG_OFFSET_MIB = 1.0


@dataclass(frozen=True)
class ExactEvidence:
    """A value compared exactly: a count (params, GFLOPs) or a CUDA allocator peak (MiB)."""

    model: str
    metric: str
    kind: str  # DETERMINISTIC | QUASI_DETERMINISTIC
    unit: str
    baseline_values: tuple[float, ...]  # one per run
    candidate_values: tuple[float, ...]
    tolerance: float = 0.0  # quasi-deterministic: in the metric's unit
    remark: str = ""  # appended to the reason, e.g. "(fvcore+sdpa, matmul-only)"


@dataclass(frozen=True)
class Evidence:
    """A noisy test: the effect, its p-values and the spread, for one of the two designs.

    ``runs``: ``log_baseline``/``log_candidate`` hold the log of each run's value, the
    effect is the two-sample Hodges–Lehmann shift, the p-values one-sided exact
    Mann–Whitney U. ``lockstep``: ``log_ratios`` holds one ln(B/A) per round, the effect is
    the one-sample Hodges–Lehmann location, the p-values one-sided exact signed-rank.
    """

    model: str
    metric: str
    unit: str
    design: str  # RUNS | LOCKSTEP
    statistic: str  # what one value is
    min_effect: float  # δ, a fraction
    n_a: int  # runs (lockstep: rounds) per side
    n_b: int
    baseline: Optional[float] = None  # median of the baseline's per-run values
    candidate: Optional[float] = None
    ratio: Optional[float] = None  # exp of the Hodges–Lehmann estimate
    p_greater: Optional[float] = None  # H1: the candidate is larger (worse)
    p_less: Optional[float] = None  # H1: the candidate is smaller (better)
    noise_sd: Optional[float] = None  # robust SD of the logs: between runs / round to round
    log_baseline: tuple[float, ...] = ()
    log_candidate: tuple[float, ...] = ()
    log_ratios: tuple[float, ...] = ()
    kind: str = NOISY  # NOISY | CALIBRATION
    remarks: tuple[str, ...] = ()  # said before the decision, e.g. "δ widened ..."

    def null_arrangements(self) -> int:
        """Equally likely outcomes under "no change": the smallest p-value is 1 over this."""
        if self.design == LOCKSTEP:
            return 2 ** self.n_a
        return math.comb(self.n_a + self.n_b, self.n_a)

    def log_ci(self, level: float) -> tuple[float, float]:
        """Distribution-free CI of the log effect: Tukey (lockstep) or Moses (runs)."""
        if self.design == LOCKSTEP:
            return walsh_ci(self.log_ratios, level)
        return moses_ci(self.log_baseline, self.log_candidate, level)


Found = Union[Verdict, ExactEvidence, Evidence]


def _median(values: Sequence[float]) -> Optional[float]:
    return float(np.median(values)) if len(values) else None


def run_level(model: str, metric: str, unit: str, a: Sequence[float], b: Sequence[float],
              min_effect: float, statistic: str, *, log_offset: float = 0.0,
              kind: str = NOISY, remarks: tuple[str, ...] = ()) -> Evidence:
    """Evidence from one value per run on each side, compared on ln(value + ``log_offset``)."""
    log_a = np.log(np.asarray(a, float) + log_offset)
    log_b = np.log(np.asarray(b, float) + log_offset)
    both = len(a) >= 1 and len(b) >= 1
    testable = len(a) >= 2 and len(b) >= 2
    return Evidence(
        model=model, metric=metric, unit=unit, design=RUNS, statistic=statistic,
        min_effect=min_effect, n_a=len(a), n_b=len(b), baseline=_median(a),
        candidate=_median(b), kind=kind, remarks=remarks,
        ratio=math.exp(hodges_lehmann(log_a, log_b)) if both else None,
        noise_sd=pooled_robust_sd(log_a, log_b) if both else None,
        p_greater=mwu_pvalue(log_a, log_b, "greater") if testable else None,
        p_less=mwu_pvalue(log_a, log_b, "less") if testable else None,
        log_baseline=tuple(log_a), log_candidate=tuple(log_b))


def lockstep(model: str, metric: str, unit: str, a: Sequence[float], b: Sequence[float],
             log_ratios: Sequence[float], min_effect: float, statistic: str, *,
             kind: str = NOISY) -> Evidence:
    """Evidence from lockstep rounds: ``log_ratios`` holds one ln(B/A) per round; ``a`` and
    ``b`` are the per-round values shown as baseline and candidate."""
    ratios = np.asarray(log_ratios, float)
    rounds = len(ratios)
    return Evidence(
        model=model, metric=metric, unit=unit, design=LOCKSTEP, statistic=statistic,
        min_effect=min_effect, n_a=rounds, n_b=rounds, baseline=_median(a),
        candidate=_median(b), kind=kind,
        ratio=math.exp(hodges_lehmann_paired(ratios)) if rounds else None,
        noise_sd=robust_sd(ratios),
        p_greater=signed_rank_pvalue(ratios, "greater") if rounds >= 2 else None,
        p_less=signed_rank_pvalue(ratios, "less") if rounds >= 2 else None,
        log_ratios=tuple(ratios))


def deterministic(model: str, metric: str, a: Sequence[float], b: Sequence[float], unit: str,
                  remark: str = "") -> Union[Verdict, ExactEvidence]:
    """A count compared exactly (the first run of each side; the rule notes any difference
    between runs)."""
    if not a or not b:
        missing = "baseline" if not a else "candidate"
        return Verdict(model=model, metric=metric, kind=DETERMINISTIC, verdict=NOT_COMPARABLE,
                       reason=f"not measured in the {missing}", unit=unit)
    return ExactEvidence(model=model, metric=metric, kind=DETERMINISTIC, unit=unit,
                         baseline_values=tuple(a), candidate_values=tuple(b), remark=remark)


def _counter_library(counter: Optional[str]) -> str:
    """The environment field holding the version of the library behind a FLOP counter."""
    return "fvcore" if counter and counter.startswith("fvcore") else "torch"


def gflops(model: str, a: ModelRuns, b: ModelRuns, base: Side, cand: Side) -> Found:
    """GFLOPs are comparable only with the same counter, library version, convention and
    image size on both sides."""
    problems = []
    if a.gflops and b.gflops:
        if a.gflops_counter != b.gflops_counter:
            problems.append(f"counter {a.gflops_counter} → {b.gflops_counter}")
        if a.flops_convention != b.flops_convention:
            problems.append(f"convention {a.flops_convention} → {b.flops_convention}")
        if not same_setting(a.settings.get("image_size"), b.settings.get("image_size")):
            problems.append(f"image size {a.settings.get('image_size')} → "
                            f"{b.settings.get('image_size')}")
        library = _counter_library(a.gflops_counter)
        version_a, version_b = base.environment.get(library), cand.environment.get(library)
        if version_a and version_b and version_a != version_b:
            problems.append(f"{library} {version_a} → {version_b} (counter version)")
    if problems:
        return Verdict(model=model, metric=GFLOPS, kind=DETERMINISTIC, verdict=NOT_COMPARABLE,
                       reason="not comparable: " + "; ".join(problems), unit="GFLOPs",
                       baseline=a.gflops[0], candidate=b.gflops[0])
    return deterministic(model, GFLOPS, a.gflops, b.gflops, "GFLOPs",
                         remark=f"({a.gflops_counter}, {a.flops_convention})")


def quasi_deterministic(model: str, a: Sequence[float], b: Sequence[float],
                        tolerance_mib: float) -> ExactEvidence:
    """The CUDA allocator peak, compared exactly within ``tolerance_mib``."""
    return ExactEvidence(model=model, metric=PEAK_MEMORY, kind=QUASI_DETERMINISTIC, unit="MiB",
                         baseline_values=tuple(a), candidate_values=tuple(b),
                         tolerance=tolerance_mib)


def _unusable(model: str, metric: str, kind: str, unit: str, a: list, b: list,
              diffs: list[str]) -> Optional[Verdict]:
    """NOT_COMPARABLE when one side did not measure ``metric``; INCONCLUSIVE when the
    settings or environments differ; None when there is evidence to weigh."""
    if not a or not b:
        return Verdict(model=model, metric=metric, kind=kind, verdict=NOT_COMPARABLE, unit=unit,
                       reason=f"not measured in the {'baseline' if not a else 'candidate'}")
    if diffs:
        return Verdict(model=model, metric=metric, kind=kind, verdict=INCONCLUSIVE, unit=unit,
                       reason="environments differ: " + "; ".join(diffs))
    return None


def latency(model: str, a: ModelRuns, b: ModelRuns, config: GateConfig, diffs: list[str],
            round_log_ratios: Optional[Sequence[float]]) -> Optional[Found]:
    """Latency: paired by lockstep round when the rounds exist and nothing differs, else
    one quantile of each run's samples per run."""
    delta = config.delta_for(LATENCY, a.device)
    if round_log_ratios is not None and len(round_log_ratios) and not diffs:
        def per_round(m: ModelRuns) -> list[float]:
            return m.latency.get(0.5) or next(iter(m.latency.values()), [])

        return lockstep(model, LATENCY, "ms", per_round(a), per_round(b), round_log_ratios,
                        delta, "per round: median of ln(B/A) over adjacent lockstep blocks")
    if not a.latency and not b.latency:
        return None
    quantile = config.latency_quantile(a.device)
    if a.latency and b.latency and (quantile not in a.latency or quantile not in b.latency):
        stored = ", ".join(f"q{x:g}" for x in sorted(a.latency))
        return Verdict(model=model, metric=LATENCY, kind=NOISY, verdict=NOT_COMPARABLE,
                       unit="ms", reason=f"per-run quantile q{quantile:g} not stored (baseline "
                                         f"has {stored}); rebuild it with --quantile")
    unusable = _unusable(model, LATENCY, NOISY, "ms", list(a.latency), list(b.latency), diffs)
    if unusable is not None:
        return unusable
    return run_level(model, LATENCY, "ms", a.latency[quantile], b.latency[quantile], delta,
                     f"q{quantile:g} per run")


def memory(model: str, a: ModelRuns, b: ModelRuns, config: GateConfig, diffs: list[str],
           paired_by_round: bool) -> Optional[Found]:
    """Peak memory: the CUDA allocator peak exactly (noisy at δ = 1 % if the baseline's own
    runs differ); CPU peak RSS as a noisy metric, paired by lockstep round when it can be."""
    if not a.memory and not b.memory:
        return None
    cuda = a.device == "cuda"
    unusable = _unusable(model, PEAK_MEMORY, QUASI_DETERMINISTIC if cuda else NOISY, "MiB",
                         a.memory, b.memory, diffs)
    if unusable is not None:
        return unusable
    if cuda:
        if len(set(a.memory)) == 1:
            return quasi_deterministic(model, a.memory, b.memory, config.cuda_memory_tol_mib)
        return run_level(model, PEAK_MEMORY, "MiB", a.memory, b.memory, 0.01,
                         "allocator peak per run", log_offset=MEMORY_LOG_OFFSET_MIB,
                         remarks=("baseline runs differ: demoted to the noisy rule with δ = 1 %",))
    median = float(np.median(a.memory)) + MEMORY_LOG_OFFSET_MIB
    delta = max(config.delta_memory_cpu_frac, config.memory_floor_mib / median)
    if paired_by_round and len(a.memory) == len(b.memory) and all(
            status == "ok" for status in [*a.status, *b.status]):
        # the i-th value of each side comes from the same lockstep round
        round_log_ratios = np.log(np.asarray(b.memory) + MEMORY_LOG_OFFSET_MIB) - \
            np.log(np.asarray(a.memory) + MEMORY_LOG_OFFSET_MIB)
        return lockstep(model, PEAK_MEMORY, "MiB", a.memory, b.memory, round_log_ratios, delta,
                        "per round: ln(B/A) of the two workers' peak RSS")
    return run_level(model, PEAK_MEMORY, "MiB", a.memory, b.memory, delta, "peak RSS per run",
                     log_offset=MEMORY_LOG_OFFSET_MIB)


def evidence_for(model: str, a: ModelRuns, b: ModelRuns, base: Side, cand: Side,
                 config: GateConfig, env_diffs: list[str],
                 round_log_ratios: Optional[Sequence[float]]) -> list[Found]:
    """The evidence for every metric of ``config.metrics`` of one model measured on both
    sides (``round_log_ratios``: its lockstep rounds, if any)."""
    found: list[Optional[Found]] = []
    if PARAMS in config.metrics:
        found.append(deterministic(model, PARAMS, a.params, b.params, "count"))
    if GFLOPS in config.metrics:
        found.append(gflops(model, a, b, base, cand))
    diffs = setting_differences(a, b) + env_diffs
    if LATENCY in config.metrics:
        found.append(latency(model, a, b, config, diffs, round_log_ratios))
    if PEAK_MEMORY in config.metrics:
        found.append(memory(model, a, b, config, diffs, round_log_ratios is not None))
    return [item for item in found if item is not None]
