"""Summary statistics: exact values on hand-made samples, the median's CI, the unstable flag."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sp

from vitbench.stats import (UNSTABLE_CI_PCT, median_ci, relative_ci_halfwidth_pct, summarize)


def test_summary_of_known_samples():
    s = summarize([5.0, 1.0, 4.0, 2.0, 3.0])
    assert (s.n, s.median, s.mean, s.min, s.max) == (5, 3.0, 3.0, 1.0, 5.0)
    assert s.std == pytest.approx(np.std([1, 2, 3, 4, 5], ddof=1))
    assert s.iqr == pytest.approx(2.0)  # numpy linear: q25 = 2, q75 = 4
    assert s.p90 == pytest.approx(4.6) and s.p99 == pytest.approx(4.96)
    assert (s.ci_low, s.ci_high) == (1.0, 5.0), "n < 6: no order-statistic pair reaches 95 %"


def test_single_sample():
    s = summarize([7.0])
    assert s.n == 1 and s.median == s.min == s.max == 7.0 and s.std == 0.0


def test_no_samples_is_an_error():
    with pytest.raises(ValueError):
        summarize([])


@pytest.mark.parametrize("n", [6, 10, 30, 100, 1000])
def test_median_ci_is_the_exact_binomial_order_statistic_interval(n):
    values = np.arange(1, n + 1, dtype=float)  # x_(i) = i
    low, high = median_ci(values)
    k = int(low)
    assert high == n - k + 1, "the interval is symmetric in rank"
    coverage = 1 - 2 * sp.binom.cdf(k - 1, n, 0.5)
    assert coverage >= 0.95, "coverage at least the level"
    # one rank tighter would fall below 95 %
    assert 1 - 2 * sp.binom.cdf(k, n, 0.5) < 0.95


def test_ci_contains_the_median_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small = summarize(10 + rng.standard_normal(20))
    large = summarize(10 + rng.standard_normal(2000))
    for s in (small, large):
        assert s.ci_low <= s.median <= s.ci_high
    assert large.ci_halfwidth_pct < small.ci_halfwidth_pct / 3


def test_unstable_flag_and_to_dict():
    steady = summarize([10.0 + 0.01 * (i % 3) for i in range(50)])
    assert not steady.unstable
    noisy = summarize([10.0, 30.0] * 25)
    assert noisy.unstable and noisy.ci_halfwidth_pct > UNSTABLE_CI_PCT
    data = noisy.to_dict()
    for key in ("n", "median", "mean", "p90", "p99", "min", "iqr", "ci_low", "ci_high",
                "ci_halfwidth_pct", "iqr_pct", "unstable"):
        assert key in data
    assert data["unstable"] is True


def test_relative_halfwidth_needs_six_samples():
    assert relative_ci_halfwidth_pct([1.0] * 5) is None
    assert relative_ci_halfwidth_pct([1.0] * 6) == 0.0


def test_right_tail_does_not_move_the_median():
    base = [10.0] * 95
    spiky = base + [1000.0] * 5
    s = summarize(spiky)
    assert s.median == 10.0 and s.p99 > 900 and s.mean > 50


def test_window_spread_sees_a_speed_change_inside_one_loop():
    from vitbench.stats import window_spread

    steady = [10.0, 10.2, 9.9, 10.1] * 5
    assert window_spread(steady) < 1.05
    slowed = [10.0] * 10 + [13.0] * 10  # the machine got 30 % slower half-way
    assert window_spread(slowed) == 1.3
    assert window_spread([1.0] * 5) is None  # too few samples to say
