"""Did the machine change under the comparison? The calibration probe and the suite-level check.

Every run (and every lockstep round) also times ``vitbench:gate_calibration``, a fixed fp32
GEMM and 3×3 conv whose speed can only change with the machine. Three checks use it
(docs/ci-gate.md, "Drift"):

* :func:`lockstep_control` — in lockstep rounds the probe is timed against itself: an A/A
  control whose ratios must centre on 1;
* :func:`calibration_check` — between runs (or against a stored baseline), the probe's shift;
* :func:`suite_drift` — most models moved the same way, by about as much as the probe did.

The first two return a reason when the machine changed, and every latency verdict becomes
INCONCLUSIVE; the third turns the affected latency verdicts INCONCLUSIVE itself.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Optional, Sequence

import numpy as np

from vitbench.gate.config import LATENCY, GateConfig
from vitbench.gate.evidence import lockstep, run_level
from vitbench.gate.sides import BASELINE, Side
from vitbench.gate.verdict import (CALIBRATION, FAIL, IMPROVED, INCONCLUSIVE, LOCKSTEP, PASS,
                                   WARN, Verdict)

#: Suite-level drift: this share of the latency tests moving one way ...
SUITE_DRIFT_SHARE = 0.7
CALIBRATION_NAME = "calibration"


def _verdict(evidence, outcome: str, reason: str, **measured) -> Verdict:
    """A calibration verdict from its evidence (the probe is never in the Holm family)."""
    fields = dict(model=CALIBRATION_NAME, metric=LATENCY, kind=CALIBRATION, unit="ms",
                  baseline=evidence.baseline, candidate=evidence.candidate,
                  ratio=evidence.ratio, p=evidence.p_greater, delta=evidence.min_effect,
                  n_a=evidence.n_a, n_b=evidence.n_b, noise_sd=evidence.noise_sd,
                  statistic=evidence.statistic, design=evidence.design)
    return Verdict(**{**fields, **measured}, verdict=outcome, reason=reason)


def lockstep_control(log_ratios: Sequence[float], base: Side, cand: Side, config: GateConfig,
                     env_diffs: list[str]) -> tuple[Verdict, Optional[str]]:
    """The probe measured in lockstep against itself every round: an A/A control.

    Its ratios should centre on 1; a significant shift (two-sided p < α, at least the
    minimum calibration shift) means the two sides were not measured alike (e.g. one worker
    systematically favoured). Returns the probe's verdict and that reason, if any.
    """
    def per_round(side: Side) -> list[float]:
        return (side.calibration.latency.get(0.5) if side.calibration else None) or []

    evidence = lockstep(CALIBRATION_NAME, LATENCY, "ms", per_round(base), per_round(cand),
                        log_ratios, config.calibration_min_shift_frac,
                        "A/A control: the probe against itself in every lockstep round",
                        kind=CALIBRATION)
    unmeasured = dict(ratio=None, p=None, noise_sd=None)
    if env_diffs:
        return _verdict(evidence, INCONCLUSIVE, "environments differ", **unmeasured), None
    if evidence.n_a < 2:
        return _verdict(evidence, PASS, "", **unmeasured), None
    low, high = evidence.log_ci(config.ci_level)
    p_two_sided = min(1.0, 2 * min(evidence.p_greater, evidence.p_less))
    drift = None
    if p_two_sided < config.alpha and \
            abs(math.log(evidence.ratio)) >= math.log1p(config.calibration_min_shift_frac):
        drift = (f"A/A control: the calibration probe measured {evidence.ratio:.3f}× against "
                 f"itself (two-sided p={p_two_sided:.2g}): the two sides were not measured alike")
    reason = drift or f"the probe against itself: {evidence.ratio - 1:+.1%}, no significant shift"
    verdict = _verdict(evidence, INCONCLUSIVE if drift else PASS, reason, p=p_two_sided,
                       ci_low=math.exp(low), ci_high=math.exp(high))
    return verdict, drift


def has_probe(base: Side, cand: Side) -> bool:
    """Both sides timed the calibration probe."""
    return bool(base.calibration and cand.calibration and base.calibration.latency
                and cand.calibration.latency)


def calibration_check(base: Side, cand: Side, config: GateConfig,
                      env_diffs: list[str]) -> tuple[Optional[Verdict], Optional[str]]:
    """The probe's runs on the two sides (both have them: :func:`has_probe`). Against a
    stored baseline, its median ratio must stay within ±``calibration_tolerance_frac``;
    between in-job runs, a significant shift of at least ``calibration_min_shift_frac`` is a
    regime shift. Returns the probe's verdict (None without the latency quantile on both
    sides) and the reason the machine changed, if it did."""
    a, b = base.calibration, cand.calibration
    quantile = config.latency_quantile(a.device)
    if quantile not in a.latency or quantile not in b.latency:
        return None, None
    stored = base.kind == BASELINE
    values_a, values_b = a.latency[quantile], b.latency[quantile]
    evidence = run_level(CALIBRATION_NAME, LATENCY, "ms", values_a, values_b,
                         config.calibration_tolerance_frac if stored
                         else config.calibration_min_shift_frac,
                         f"q{quantile:g} per run", kind=CALIBRATION)
    if env_diffs:
        return _verdict(evidence, INCONCLUSIVE, "environments differ"), None
    tolerance = config.calibration_tolerance_frac
    if stored:
        ratio = float(np.median(values_b) / np.median(values_a))
        drift = None
        if abs(ratio - 1) > tolerance:
            drift = (f"calibration workload {ratio:.3f}× the baseline's (tolerance "
                     f"±{tolerance:.0%}): the machine differs")
        reason = drift or f"within ±{tolerance:.0%} of the baseline"
        return _verdict(evidence, INCONCLUSIVE if drift else PASS, reason, ratio=ratio), drift
    p_values = [p for p in (evidence.p_greater, evidence.p_less) if p is not None]
    drift = None
    if p_values and min(p_values) * 2 < config.alpha and evidence.ratio is not None and \
            abs(math.log(evidence.ratio)) >= math.log1p(config.calibration_min_shift_frac):
        drift = (f"calibration workload shifted {evidence.ratio:.3f}× between A and B runs "
                 f"(two-sided p={min(1.0, 2 * min(p_values)):.2g}): regime shift")
    reason = drift or "no significant shift between A and B runs"
    return _verdict(evidence, INCONCLUSIVE if drift else PASS, reason), drift


def suite_drift(noisy: list[Verdict],
                calibration: Optional[Verdict]) -> tuple[list[Verdict], Optional[str]]:
    """When ≥ 70 % of the models' latencies moved the same way, by about as much as the
    calibration probe moved in that direction too (not necessarily significantly), the
    machine changed, not the models: their FAIL/IMPROVED/WARN latency verdicts become
    INCONCLUSIVE. Needs ≥ 3 latency tests and a run-level probe (in the lockstep design the
    probe's A/A control answers this question directly). Returns the verdicts and a note."""
    latency = [verdict for verdict in noisy
               if verdict.metric == LATENCY and verdict.ratio and verdict.delta]
    if len(latency) < 3 or calibration is None or not calibration.ratio or \
            calibration.design == LOCKSTEP:
        return noisy, None
    logs = np.log([verdict.ratio for verdict in latency])
    direction = 1.0 if np.sum(logs > 0) >= np.sum(logs < 0) else -1.0
    share = float(np.mean(np.sign(logs) == direction))
    half_delta = math.log1p(min(verdict.delta for verdict in latency)) / 2
    probe_log = math.log(calibration.ratio)
    typical = float(np.median(logs[np.sign(logs) == direction]))
    if not (share >= SUITE_DRIFT_SHARE and direction * probe_log >= half_delta
            and abs(typical - probe_log) <= 2 * half_delta):
        return noisy, None
    reason = (f"suite-level drift: {share:.0%} of the models moved {math.exp(typical) - 1:+.1%} "
              f"(median) and the calibration probe {calibration.ratio - 1:+.1%}: the machine "
              "changed, not the models")
    moved = {id(verdict) for verdict in latency if verdict.verdict in (FAIL, IMPROVED, WARN)}
    return [replace(verdict, verdict=INCONCLUSIVE, reason=reason) if id(verdict) in moved
            else verdict for verdict in noisy], reason
