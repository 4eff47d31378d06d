"""The decision rules (docs/ci-gate.md, "The decision ladder"): exact metrics, ONE ladder for
every noisy test of either design, and :func:`compare_sides`, which runs them all.

A false FAIL blocks a pull request and a false PASS lets a regression through, so the order
of the ladder is the specification: too few runs → the machine drifted → FAIL → IMPROVED →
too noisy → WARN → PASS, first match wins (settings or environments that differ leave no
evidence to weigh: INCONCLUSIVE before the ladder). The two designs (independent runs per side,
paired lockstep rounds) share every step; they differ only in their evidence
(:class:`~vitbench.gate.evidence.Evidence`: the test, the CI, the count of null
arrangements) and in the "too noisy" criterion (:func:`noise_problem`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional, Sequence

from vitbench.gate.config import LATENCY, WHOLE_MODEL, GateConfig
from vitbench.gate.drift import (calibration_check, has_probe, lockstep_control,
                                 suite_drift)
from vitbench.gate.evidence import Evidence, ExactEvidence, evidence_for
from vitbench.gate.nonparametric import (benjamini_hochberg, holm, robust_sd, rounds_needed,
                                         runs_needed)
from vitbench.gate.sides import BASELINE, ModelRuns, Side, environment_differences
from vitbench.gate.verdict import (CALIBRATION, DETERMINISTIC, FAIL, IMPROVED, INCONCLUSIVE,
                                   LOCKSTEP, NOISY, NOT_COMPARABLE, PASS, RUNS, WARN,
                                   WHOLE_MODEL_KIND, GateReport, Verdict)

NO_PROBE_NOTE = ("no calibration workload on both sides: a machine that changed between "
                 "baseline and candidate cannot be detected")


@dataclass(frozen=True)
class FamilyAdjusted:
    """One test's p-values adjusted over every noisy test of the invocation."""

    holm_greater: float  # Holm, regressions (one family)
    holm_less: float  # Holm, improvements (a second family)
    bh_q: float  # Benjamini–Hochberg q of the regression p: ranks warnings, never FAILs


def adjust_over_family(tests: Sequence[Evidence]) -> list[Optional[FamilyAdjusted]]:
    """Holm and BH over the tests that have a p-value (None for the others)."""
    testable = [test for test in tests if test.p_greater is not None]
    if not testable:
        return [None] * len(tests)
    greater = holm([test.p_greater for test in testable])
    less = holm([test.p_less for test in testable])
    q_values = benjamini_hochberg([test.p_greater for test in testable])
    adjusted = {id(test): FamilyAdjusted(float(p_greater), float(p_less), float(q_value))
                for test, p_greater, p_less, q_value in zip(testable, greater, less, q_values)}
    return [adjusted.get(id(test)) for test in tests]


def decide_exact(evidence: ExactEvidence) -> Verdict:
    """Deterministic counts: larger is FAIL, smaller IMPROVED. The CUDA allocator peak: FAIL
    above the baseline plus the tolerance, IMPROVED when every candidate run is below it."""
    a, b = evidence.baseline_values, evidence.candidate_values
    common = dict(model=evidence.model, metric=evidence.metric, kind=evidence.kind,
                  unit=evidence.unit)
    if evidence.kind == DETERMINISTIC:
        va, vb = a[0], b[0]
        if math.isclose(va, vb, rel_tol=1e-9, abs_tol=0.0):
            outcome, reason = PASS, "identical"
        elif vb > va:
            outcome, reason = FAIL, f"grew by {vb - va:+.6g}"
        else:
            outcome, reason = IMPROVED, f"shrank by {vb - va:+.6g}"
        if len(set(a)) > 1 or len(set(b)) > 1:
            reason += "; differs between runs of one side; first run used"
        if evidence.remark:
            reason += f" {evidence.remark}"
        return Verdict(**common, verdict=outcome, reason=reason, baseline=float(va),
                       candidate=float(vb), ratio=vb / va if va else None)
    va, vb, tolerance = a[0], max(b), evidence.tolerance
    if vb > va + tolerance:
        outcome = FAIL
        reason = f"allocator peak grew by {vb - va:+.3f} MiB (tolerance {tolerance:g})"
    elif min(b) < va - tolerance and len(set(b)) == 1:
        outcome, reason = IMPROVED, f"allocator peak shrank by {vb - va:+.3f} MiB"
    else:
        outcome, reason = PASS, f"within {tolerance:g} MiB"
    return Verdict(**common, verdict=outcome, reason=reason, baseline=va, candidate=vb,
                   ratio=vb / va if va else None, n_a=len(a), n_b=len(b))


def widen_for_stored_baseline(evidence: Evidence) -> Evidence:
    """Stored-baseline mode: δ ≥ exp(3 × the baseline's own between-run robust SD) − 1, since
    no re-measurement can confirm a failure (needs ≥ 3 baseline runs)."""
    if evidence.design != RUNS or evidence.n_a < 3:
        return evidence
    between = robust_sd(evidence.log_baseline)
    widened = math.expm1(3 * between)
    if widened <= evidence.min_effect:
        return evidence
    remark = f"stored-baseline mode: δ widened to 3×{between:.1%} between-run spread"
    return replace(evidence, min_effect=widened, remarks=(*evidence.remarks, remark))


def noise_problem(evidence: Evidence, ci_half_width: float, log_ratio: float,
                  config: GateConfig) -> Optional[str]:
    """Why the test cannot resolve δ, if it cannot (the design's own criterion).

    Runs: the between-run SD above ``noise_factor`` × δ (above that, simulation showed the
    power at 2δ falls below ~95 % with 12 runs), or a CI wider than δ with a shift. Lockstep:
    the pairing removes what both sides share, so only the CI's half-width counts.
    """
    delta = evidence.min_effect
    log_delta = math.log1p(delta)
    if evidence.design == LOCKSTEP:
        if ci_half_width > log_delta:
            return (f"too noisy: CI half-width {ci_half_width:.1%} > δ {delta:.0%} "
                    f"(round-to-round SD {evidence.noise_sd:.1%})")
        return None
    if evidence.noise_sd > config.noise_factor * log_delta:
        return (f"too noisy: between-run SD {evidence.noise_sd:.1%} > "
                f"{config.noise_factor:g}×δ ({config.noise_factor * delta:.1%})")
    if ci_half_width > log_delta and log_ratio >= log_delta / 2:
        return f"CI half-width {ci_half_width:.1%} exceeds δ {delta:.0%} with a shift"
    return None


def _too_few(evidence: Evidence, family_size: int, alpha: float) -> Optional[str]:
    """Why the test can never reach significance, if it cannot."""
    lockstep = evidence.design == LOCKSTEP
    if min(evidence.n_a, evidence.n_b) < 2:
        return (f"too few lockstep rounds ({evidence.n_a})" if lockstep else
                f"too few runs ({evidence.n_a} vs {evidence.n_b}; a run-level test needs ≥2 "
                f"per side)")
    arrangements = evidence.null_arrangements()
    if arrangements > family_size / alpha:
        return None
    if lockstep:
        return (f"too few rounds to ever reach significance: 2^{evidence.n_a} ≤ M/α = "
                f"{family_size}/{alpha:g}; use ≥{rounds_needed(family_size, alpha)} rounds")
    return (f"too few runs to ever reach significance: C({evidence.n_a + evidence.n_b},"
            f"{evidence.n_a}) = {arrangements} ≤ M/α = {family_size}/{alpha:g}; "
            f"use ≥{runs_needed(family_size, alpha)} runs per side")


def decide(evidence: Evidence, config: GateConfig, *, family_size: int,
           adjusted: Optional[FamilyAdjusted], drift: Optional[str]) -> Verdict:
    """The verdict of one noisy test, first match wins (docs/ci-gate.md, "The decision
    ladder"). ``family_size``: noisy tests in the invocation (Holm's M); ``drift``: why the
    machine changed, if it did (latency only)."""
    alpha, delta = config.alpha, evidence.min_effect
    log_delta = math.log1p(delta)
    found = dict(model=evidence.model, metric=evidence.metric, kind=evidence.kind,
                 unit=evidence.unit, baseline=evidence.baseline, candidate=evidence.candidate,
                 ratio=evidence.ratio, p=evidence.p_greater, delta=delta, n_a=evidence.n_a,
                 n_b=evidence.n_b, noise_sd=evidence.noise_sd, statistic=evidence.statistic,
                 design=evidence.design)

    def verdict(outcome: str, reason: str, **measured) -> Verdict:
        return Verdict(**{**found, **measured}, verdict=outcome,
                       reason="; ".join([*evidence.remarks, reason]))

    too_few = _too_few(evidence, family_size, alpha)
    if too_few is not None:
        return verdict(INCONCLUSIVE, too_few)
    assert adjusted is not None  # two or more values a side always give a p-value
    low, high = evidence.log_ci(config.ci_level)
    log_ratio = math.log(evidence.ratio)
    # report the one-sided test in the direction of the shift
    shrank = log_ratio < 0
    measured = dict(ci_low=math.exp(low), ci_high=math.exp(high),
                    p=evidence.p_less if shrank else evidence.p_greater,
                    p_holm=adjusted.holm_less if shrank else adjusted.holm_greater)
    change = f"{evidence.ratio - 1:+.1%}"
    if drift and evidence.metric == LATENCY:
        return verdict(INCONCLUSIVE, drift, **measured)
    if adjusted.holm_greater <= alpha and log_ratio >= log_delta:
        worse = "slower" if evidence.metric == LATENCY else "larger"
        return verdict(FAIL, f"{worse} by {change} ≥ δ {delta:.0%}, "
                             f"Holm p={adjusted.holm_greater:.2g} ≤ α", **measured)
    if adjusted.holm_less <= alpha and log_ratio <= -log_delta:
        return verdict(IMPROVED, f"{change} beyond δ {delta:.0%}, "
                                 f"Holm p={adjusted.holm_less:.2g} ≤ α", **measured)
    noise = noise_problem(evidence, (high - low) / 2, log_ratio, config)
    if noise is not None:
        return verdict(INCONCLUSIVE, noise, **measured)
    if adjusted.bh_q < config.warn_q and log_ratio >= log_delta / 2:
        return verdict(WARN, f"{change}: BH q={adjusted.bh_q:.2g}, below the FAIL threshold",
                       **measured)
    if adjusted.holm_greater <= alpha:
        return verdict(PASS, f"significant but {change} is below δ {delta:.0%}", **measured)
    return verdict(PASS, f"no significant change ({change})", **measured)


def model_verdict(name: str, a: Optional[ModelRuns], b: Optional[ModelRuns]) -> Optional[Verdict]:
    """A verdict about the whole model when it cannot be compared metric by metric: missing
    on one side (NOT_COMPARABLE), failed in the candidate only (FAIL), or never measured."""
    def whole(outcome: str, reason: str) -> Verdict:
        return Verdict(model=name, metric=WHOLE_MODEL, kind=WHOLE_MODEL_KIND, verdict=outcome,
                       reason=reason)

    def why(side: ModelRuns) -> str:
        return side.errors[-1] if side.errors else ",".join(side.status)

    if a is None:
        return whole(NOT_COMPARABLE, "not in the baseline (new model: add it to the baseline)")
    if b is None:
        return whole(NOT_COMPARABLE, "not in the candidate (model removed or renamed)")
    if a.ok and not b.ok:
        return whole(FAIL, "failed in the candidate: " + why(b))
    if not a.ok:
        return whole(NOT_COMPARABLE, "no successful baseline run: " + why(a))
    return None


def _check_machine(base: Side, cand: Side, config: GateConfig, env_diffs: list[str],
                   paired: dict[str, Sequence[float]],
                   notes: list[str]) -> tuple[Optional[Verdict], Optional[str]]:
    """The calibration probe's verdict and the drift reason, if the machine changed."""
    probe = base.calibration.name if base.calibration else None
    if probe and paired.get(probe) is not None:
        return lockstep_control(paired[probe], base, cand, config, env_diffs)
    if not has_probe(base, cand):
        notes.append(NO_PROBE_NOTE)
        return None, None
    return calibration_check(base, cand, config, env_diffs)


def compare_sides(base: Side, cand: Side, config: Optional[GateConfig] = None, *,
                  mode: str = "compare",
                  paired: Optional[dict[str, Sequence[float]]] = None) -> GateReport:
    """Decide every (model, metric) of ``cand`` against ``base``.

    ``paired`` (from ``vitbench ab``'s lockstep rounds) maps a model name to one log latency
    ratio ln(B/A) per round: those models are decided on their rounds, and the calibration
    probe's ratios are the rounds' A/A control.
    """
    config = config or GateConfig()
    paired = paired or {}
    report = GateReport(mode=mode, config=config, baseline=base.describe(),
                        candidate=cand.describe())
    env_diffs = environment_differences(base, cand)
    if env_diffs:
        report.notes.append("environments differ: " + "; ".join(env_diffs)
                            + " (timing and memory are not comparable)")
    for side in (base, cand):
        if side.environment.get("mixed"):
            report.notes.append(f"{side.label}: runs come from different environments "
                                f"({', '.join(sorted(set(side.environment['mixed'])))})")

    settled: list[Verdict] = []
    pending: list[Evidence] = []
    names = list(base.models) + [n for n in cand.models if n not in base.models]
    for name in names:
        a, b = base.models.get(name), cand.models.get(name)
        whole = model_verdict(name, a, b)
        if whole is not None:
            settled.append(whole)
            continue
        for found in evidence_for(name, a, b, base, cand, config, env_diffs, paired.get(name)):
            if isinstance(found, Evidence):
                pending.append(found)
            else:
                settled.append(decide_exact(found) if isinstance(found, ExactEvidence) else found)

    calibration, drift = _check_machine(base, cand, config, env_diffs, paired, report.notes)
    if base.kind == BASELINE:
        pending = [widen_for_stored_baseline(test) for test in pending]
    noisy = [decide(test, config, family_size=len(pending), adjusted=adjusted, drift=drift)
             for test, adjusted in zip(pending, adjust_over_family(pending))]
    if not drift:
        noisy, note = suite_drift(noisy, calibration)
        if note:
            report.notes.append(note)
    report.noisy_tests = len(pending)
    order = {n: i for i, n in enumerate(names)}
    verdicts = [*settled, *([calibration] if calibration else []), *noisy]
    report.verdicts = sorted(verdicts, key=lambda v: (v.kind == CALIBRATION, order.get(v.model, 0)))
    if any(v.metric == LATENCY for v in report.verdicts):
        report.notes.append("throughput = batch / latency is derived from latency and not "
                            "tested separately")
    return report


def confirm(report: GateReport, pooled: GateReport) -> None:
    """The confirmation stage: a stage-1 noisy FAIL stays FAIL only if the pooled stage-1+2
    runs also reject at α with ρ̂ ≥ 1+δ; otherwise it becomes WARN (unconfirmed). The final
    FAIL is a subset of the stage-1 rejection, so the family-wise error stays ≤ α."""
    pooled_by_key = {(v.model, v.metric): v for v in pooled.verdicts}

    def confirmed(stage1: Verdict) -> Verdict:
        both = pooled_by_key.get((stage1.model, stage1.metric))
        if stage1.verdict != FAIL or stage1.kind != NOISY or both is None or both.p is None \
                or both.ratio is None:
            return stage1
        holds = both.p <= report.config.alpha and \
            math.log(both.ratio) >= math.log1p(stage1.delta)
        record = {"n_a": both.n_a, "n_b": both.n_b, "ratio": both.ratio, "p": both.p,
                  "ci_low": both.ci_low, "ci_high": both.ci_high, "confirmed": holds}
        runs, change = f"{both.n_a}+{both.n_b}", f"{both.ratio - 1:+.1%}"
        if holds:
            return replace(stage1, confirmation=record, reason=f"{stage1.reason}; confirmed on "
                           f"{runs} pooled runs ({change}, p={both.p:.2g})")
        return replace(stage1, confirmation=record, verdict=WARN, reason=f"{stage1.reason}; "
                       f"unconfirmed: pooled {runs} runs give {change}, p={both.p:.2g}")

    report.verdicts = [confirmed(verdict) for verdict in report.verdicts]
    report.notes.append("noisy FAILs were re-measured (only the failing models) before counting")
