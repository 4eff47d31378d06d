"""The gate's rank statistics against brute-force enumeration and textbook values."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from vitbench.gate import nonparametric as stats

RNG = np.random.default_rng(11)


# --- two samples: independent runs per side -----------------------------------------------

@pytest.mark.parametrize("n_a,n_b", [(3, 4), (5, 5), (2, 7), (6, 4)])
def test_mwu_null_cdf_matches_enumeration(n_a, n_b):
    counts = np.zeros(n_a * n_b + 1)
    for a_ranks in itertools.combinations(range(n_a + n_b), n_a):
        chosen = set(a_ranks)
        u = sum(1 for i in range(n_a + n_b) if i not in chosen for j in a_ranks if i > j)
        counts[u] += 1
    assert np.allclose(stats.mwu_null_cdf(n_a, n_b), np.cumsum(counts) / counts.sum())


def test_hodges_lehmann_and_moses_ci():
    a, b = [1.0, 2.0, 3.0], [2.5, 3.5, 4.5, 5.5]
    diffs = sorted(y - x for x in a for y in b)
    assert stats.hodges_lehmann(a, b) == pytest.approx(float(np.median(diffs)))
    # n=3 vs 4: no finite 95 % interval exists (P(U=0) = 1/35 > 0.025)
    assert stats.moses_ci(a, b) == (-math.inf, math.inf)
    a12, b12 = np.arange(12.0), np.arange(12.0) + 5
    lo, hi = stats.moses_ci(a12, b12)
    assert lo < 5 < hi
    # k = 38 for 12 vs 12 at 95 % (P(U <= 37) <= 0.025 < P(U <= 38))
    cdf = stats.mwu_null_cdf(12, 12)
    assert cdf[37] <= 0.025 < cdf[38]
    d = np.sort(np.subtract.outer(b12, a12).ravel())
    assert (lo, hi) == (d[37], d[144 - 38])


def test_holm_and_discreteness():
    assert list(stats.holm([0.01, 0.04, 0.03, 0.5])) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert stats.min_attainable_p(5, 5) == pytest.approx(1 / 252)
    assert stats.runs_needed(40, 0.01) == 8  # C(16, 8) = 12870 > 4000; C(14, 7) = 3432


def test_mwu_pvalue_exact_and_with_ties():
    a, b = np.arange(6.0), np.arange(6.0) + 10
    assert stats.mwu_pvalue(a, b, "greater") == pytest.approx(1 / math.comb(12, 6))
    tied_a, tied_b = [1, 1, 1, 2, 2, 2], [2, 2, 3, 3, 3, 3]
    p = stats.mwu_pvalue(tied_a, tied_b, "greater")
    # ties broken against H1: the tied 2s of b rank below those of a → U = 4·6 + 2·3 = 30
    assert p == pytest.approx(float(np.sum(np.diff(np.r_[0, stats.mwu_null_cdf(6, 6)])[30:])))
    assert p >= stats.mwu_pvalue([1, 1, 1, 2, 2, 2], [2.1, 2.1, 3, 3, 3, 3], "greater")
    assert stats.mwu_pvalue([1, 1], [1, 1], "greater") == pytest.approx(1.0)


# --- one sample: paired lockstep rounds ----------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_signed_rank_null_cdf_matches_enumeration(n):
    counts = np.zeros(n * (n + 1) // 2 + 1)
    for signs in itertools.product((0, 1), repeat=n):
        counts[sum(rank for rank, s in zip(range(1, n + 1), signs) if s)] += 1
    np.testing.assert_allclose(stats.signed_rank_null_cdf(n), np.cumsum(counts) / 2 ** n)


def test_walsh_hodges_lehmann_and_tukey_ci():
    d = [0.3, -0.1, 0.2, 0.05]
    walsh = sorted((d[i] + d[j]) / 2 for i in range(4) for j in range(i, 4))
    np.testing.assert_allclose(stats.walsh_averages(d), walsh)
    assert stats.hodges_lehmann_paired(d) == pytest.approx(float(np.median(walsh)))
    # n = 12: P(W+ <= 13) = 0.0212 <= 0.025 < P(W+ <= 14), so the 95 % interval is the
    # 14th smallest and 14th largest of the 78 Walsh averages (the textbook table value).
    d12 = RNG.normal(0, 1, 12)
    w = stats.walsh_averages(d12)
    assert stats.walsh_ci(d12, 0.95) == (pytest.approx(w[13]), pytest.approx(w[78 - 14]))
    assert stats.walsh_ci([1.0, 2.0], 0.95) == (-math.inf, math.inf)  # too few for any interval


def test_signed_rank_pvalue_and_rounds_needed():
    assert stats.signed_rank_pvalue(np.linspace(0.01, 0.12, 12), "greater") == pytest.approx(2 ** -12)
    assert stats.signed_rank_pvalue(np.linspace(0.01, 0.12, 12), "less") == pytest.approx(1.0)
    assert stats.signed_rank_pvalue([0.0, 0.0, 0.0], "greater") == 1.0
    # the gate can only ever fail when 2^n > M/α: 10 tests at α = 0.01 need 10 rounds
    assert stats.rounds_needed(10, 0.01) == 10 and stats.rounds_needed(40, 0.01) == 12
