"""Distribution-free statistics for the gate: pure functions of numbers (numpy, scipy; no torch).

Two designs, two families of rank statistics (docs/ci-gate.md, "The decision ladder"):

* **independent runs per side** — the two-sample Hodges–Lehmann shift, the exact
  Mann–Whitney U null and one-sided p-value (ties broken *against* the alternative, so the
  p-value is conservative), and Moses' distribution-free CI from the same null;
* **paired lockstep rounds** — the one-sample Hodges–Lehmann location (median of the Walsh
  averages), the exact Wilcoxon signed-rank null and p-value, and Tukey's CI.

Plus Holm's step-down correction, a robust (MAD-based) SD, and the smallest number of runs
or rounds with which a test can reach significance at all. Every null distribution is
checked against brute-force enumeration in ``tests/test_gate_nonparametric.py``.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats as scipy_stats

def hodges_lehmann(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sample Hodges–Lehmann shift: the median of all pairwise differences b_j − a_i."""
    return float(np.median(np.subtract.outer(np.asarray(b, float), np.asarray(a, float))))


def mwu_null_cdf(n_a: int, n_b: int) -> np.ndarray:
    """Exact null CDF of the Mann–Whitney U statistic (no ties): ``cdf[u] = P(U <= u)``.

    The counts are the coefficients of the Gaussian binomial [n_a + n_b choose n_a]_q,
    built as ∏_{i=1..k} (1 − q^{m+i}) / (1 − q^i) with k = min, m = max.
    """
    k, m = min(n_a, n_b), max(n_a, n_b)
    size = k * m + 1
    poly = np.zeros(size)
    poly[0] = 1.0
    for i in range(1, k + 1):
        shifted = np.zeros(size)
        shifted[m + i:] = poly[:size - m - i]
        poly = poly - shifted  # × (1 − q^{m+i})
        for j in range(i, size):  # ÷ (1 − q^i): running sum with stride i
            poly[j] += poly[j - i]
    cdf = np.cumsum(poly)
    return cdf / cdf[-1]


def moses_ci(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Distribution-free CI for the shift b − a (Moses): order statistics of the n_a·n_b
    pairwise differences, k from the exact U null distribution (normal approximation with
    more than 2,500 pairs). [−inf, inf] when too few runs for any finite interval."""
    diffs = np.sort(np.subtract.outer(np.asarray(b, float), np.asarray(a, float)).ravel())
    n_a, n_b, total = len(a), len(b), diffs.size
    tail = (1 - level) / 2
    if total <= 2500:
        cdf = mwu_null_cdf(n_a, n_b)
        # largest k with P(U <= k - 1) <= tail
        k = int(np.searchsorted(cdf, tail + 1e-12, side="right"))
    else:
        mean, sd = total / 2, math.sqrt(n_a * n_b * (n_a + n_b + 1) / 12)
        k = int(math.floor(mean - scipy_stats.norm.ppf(1 - tail) * sd))
    if k < 1:
        return -math.inf, math.inf
    return float(diffs[k - 1]), float(diffs[total - k])


def mwu_pvalue(a: Sequence[float], b: Sequence[float], alternative: str) -> float:
    """One-sided exact Mann–Whitney U p-value of H1: ``b`` larger (``greater``) or smaller
    (``less``) than ``a`` (``scipy.stats.mannwhitneyu(method='exact')``).

    With ties (e.g. memory quantised to pages) the tied values are ordered *against* the
    alternative before the exact test, so the p-value is an upper bound of the tie-aware one:
    conservative, deterministic and fast.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(np.unique(np.concatenate([a, b]))) < len(a) + len(b):
        values = np.concatenate([a, b])
        b_first = 0 if alternative == "greater" else 1  # b's sort low among ties for "greater"
        side = np.concatenate([np.full(len(a), 1 - b_first), np.full(len(b), b_first)])
        ranks = np.empty(len(values))
        ranks[np.lexsort((side, values))] = np.arange(len(values))
        a, b = ranks[:len(a)], ranks[len(a):]
    return float(scipy_stats.mannwhitneyu(b, a, alternative=alternative, method="exact").pvalue)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (monotone, capped at 1)."""
    p = np.asarray(pvalues, float)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, (m - rank) * p[index])
        adjusted[index] = min(1.0, running)
    return adjusted


def robust_sd(values: Sequence[float]) -> float:
    """1.4826 × MAD (0 with fewer than 2 values)."""
    values = np.asarray(values, float)
    if len(values) < 2:
        return 0.0
    return float(scipy_stats.median_abs_deviation(values, scale="normal"))


def pooled_robust_sd(a: Sequence[float], b: Sequence[float]) -> float:
    """Robust between-run SD pooled over both sides (degrees-of-freedom weighted variances)."""
    parts = [(len(x) - 1, robust_sd(x)) for x in (a, b) if len(x) >= 2]
    dof = sum(d for d, _ in parts)
    if not dof:
        return 0.0
    return math.sqrt(sum(d * s * s for d, s in parts) / dof)


def min_attainable_p(n_a: int, n_b: int) -> float:
    """The smallest one-sided exact MWU p-value n_a vs n_b runs can give: 1/C(n_a+n_b, n_a)."""
    return 1.0 / math.comb(n_a + n_b, n_a)


def runs_needed(tests: int, alpha: float, max_n: int = 200) -> int:
    """Smallest n per side with C(2n, n) > tests/alpha (the gate can fail at all)."""
    for n in range(1, max_n):
        if math.comb(2 * n, n) > tests / alpha:
            return n
    return max_n


def signed_rank_null_cdf(n: int) -> np.ndarray:
    """Exact null CDF of the Wilcoxon signed-rank statistic W+ (no ties, no zeros):
    ``cdf[w] = P(W+ <= w)``; the counts are the coefficients of ∏_{i=1..n} (1 + q^i)."""
    size = n * (n + 1) // 2 + 1
    poly = np.zeros(size)
    poly[0] = 1.0
    for i in range(1, n + 1):
        poly[i:] = poly[i:] + poly[:size - i].copy()
    cdf = np.cumsum(poly)
    return cdf / cdf[-1]


def walsh_averages(d: Sequence[float]) -> np.ndarray:
    """All (d_i + d_j) / 2 with i ≤ j, sorted."""
    d = np.asarray(d, float)
    i, j = np.triu_indices(len(d))
    return np.sort((d[i] + d[j]) / 2)


def hodges_lehmann_paired(d: Sequence[float]) -> float:
    """One-sample Hodges–Lehmann location: the median of the Walsh averages."""
    return float(np.median(walsh_averages(d)))


def walsh_ci(d: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Distribution-free CI of the centre of ``d`` (Tukey): order statistics of the Walsh
    averages, k from the exact signed-rank null (normal approximation above n = 60).
    [−inf, inf] when too few values for any finite interval."""
    w = walsh_averages(d)
    n, total, tail = len(d), w.size, (1 - level) / 2
    if n <= 60:
        k = int(np.searchsorted(signed_rank_null_cdf(n), tail + 1e-12, side="right"))
    else:
        mean, sd = total / 2, math.sqrt(n * (n + 1) * (2 * n + 1) / 24)
        k = int(math.floor(mean - scipy_stats.norm.ppf(1 - tail) * sd))
    if k < 1:
        return -math.inf, math.inf
    return float(w[k - 1]), float(w[total - k])


def signed_rank_pvalue(d: Sequence[float], alternative: str) -> float:
    """One-sided exact Wilcoxon signed-rank p-value that ``d`` is centred above (``greater``)
    or below (``less``) zero (``scipy.stats.wilcoxon(method='exact')``)."""
    d = np.asarray(d, float)
    if np.all(d == 0):
        return 1.0
    return float(scipy_stats.wilcoxon(d, alternative=alternative, method="exact",
                              zero_method="zsplit").pvalue)


def rounds_needed(tests: int, alpha: float, max_n: int = 64) -> int:
    """Smallest number of lockstep rounds with 2^n > tests/alpha (the gate can fail at all)."""
    for n in range(1, max_n):
        if 2 ** n > tests / alpha:
            return n
    return max_n


def benjamini_hochberg(pvalues: Sequence[float]) -> np.ndarray:
    """Benjamini–Hochberg q-values (the gate uses them only to rank warnings, never to FAIL)."""
    return scipy_stats.false_discovery_control(np.asarray(pvalues, float))
