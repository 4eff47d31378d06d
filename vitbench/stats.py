"""Summary statistics of timing samples: pure functions, no torch.

Latency distributions on shared machines are skewed with long right tails (a stall when
another process takes the core), so the headline is the **median** with a distribution-free
95 % confidence interval, plus p90/p99 for the tail and the minimum for the best case.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional, Sequence

import numpy as np

#: A row whose median is uncertain by more than this (CI half-width / median) is unstable.
UNSTABLE_CI_PCT = 5.0
#: ... or whose interquartile range is this large a share of the median.
UNSTABLE_IQR_PCT = 25.0


@dataclass(frozen=True)
class Summary:
    """What a set of samples says, in the samples' unit (milliseconds for latency)."""

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

    @property
    def ci_halfwidth_pct(self) -> float:
        """Half the width of the median's CI, as a percentage of the median."""
        return (self.ci_high - self.ci_low) / 2 / self.median * 100 if self.median else 0.0

    @property
    def iqr_pct(self) -> float:
        return self.iqr / self.median * 100 if self.median else 0.0

    @property
    def unstable(self) -> bool:
        """True when the median cannot be trusted to a few percent."""
        return self.ci_halfwidth_pct > UNSTABLE_CI_PCT or self.iqr_pct > UNSTABLE_IQR_PCT

    def to_dict(self) -> dict:
        data = asdict(self)
        data.update(ci_halfwidth_pct=round(self.ci_halfwidth_pct, 3),
                    iqr_pct=round(self.iqr_pct, 3), unstable=self.unstable)
        return data


def median_ci(sorted_samples: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Distribution-free CI of the median from order statistics (binomial, exact coverage ≥ level).

    For n < 6 no pair of order statistics reaches 95 %; the interval is then [min, max].
    """
    values = np.asarray(sorted_samples, dtype=float)
    n = len(values)
    if n == 0:
        raise ValueError("no samples")
    alpha = 1 - level
    # Largest k with P(Binom(n, 1/2) <= k - 1) <= alpha / 2: CI = [x_(k), x_(n-k+1)] (1-based).
    from scipy.stats import binom  # ~2 s to import on a busy machine: only when a CI is asked

    k = int(binom.ppf(alpha / 2, n, 0.5))
    while k > 0 and binom.cdf(k - 1, n, 0.5) > alpha / 2:
        k -= 1
    if k < 1:
        return float(values[0]), float(values[-1])
    return float(values[k - 1]), float(values[n - k])


def summarize(samples: Sequence[float], level: float = 0.95) -> Summary:
    """Summarise samples (any order). Percentiles use linear interpolation (numpy's default)."""
    values = np.sort(np.asarray(samples, dtype=float))
    if values.size == 0:
        raise ValueError("no samples to summarise")
    q25, median, q75, p90, p99 = np.percentile(values, [25, 50, 75, 90, 99])
    low, high = median_ci(values, level)
    return Summary(
        n=int(values.size), median=float(median), mean=float(values.mean()),
        std=float(values.std(ddof=1)) if values.size > 1 else 0.0,
        min=float(values[0]), max=float(values[-1]), p90=float(p90), p99=float(p99),
        iqr=float(q75 - q25), ci_low=low, ci_high=high, ci_level=level,
    )


def relative_ci_halfwidth_pct(samples: Sequence[float], level: float = 0.95) -> Optional[float]:
    """CI half-width of the median as % of it, or None with too few samples to say."""
    if len(samples) < 6:
        return None
    return summarize(samples, level).ci_halfwidth_pct


#: Window medians of one timed loop differing by more than this ratio mean the machine's
#: speed changed while the row was timed (the median then mixes two regimes).
DRIFT_RATIO = 1.10


def window_spread(samples_in_order: Sequence[float], windows: int = 4) -> Optional[float]:
    """max/min of the medians of ``windows`` consecutive slices of the samples, in the order
    they were taken; None with fewer than 3 samples per window."""
    values = np.asarray(samples_in_order, dtype=float)
    if windows < 2 or values.size < 3 * windows:
        return None
    medians = [float(np.median(part)) for part in np.array_split(values, windows)]
    return max(medians) / min(medians) if min(medians) > 0 else None
