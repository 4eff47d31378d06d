"""Change points in the history: where a (model, metric, environment) series moved to a new
level, by how much (with a CI), and how surely (a permutation p-value).

The method is E-Divisive's scheme (Matteson & James 2014; MongoDB's performance CI) on the
runs' values: a permutation test (:func:`scipy.stats.permutation_test`) of the largest gain
of any split of the segment's ranks (l2 cost) says whether the segment holds a change at
all; ``ruptures`` (binary segmentation, l1 cost: a shift of the median) says where; a
significant split is kept and both halves are searched again. Ranks and medians make one
slow run (a busy machine) count as much as one slightly slow run, not more.

Deterministic counts (params, GFLOPs) carry no noise: every change of value is a change
point, with p = 0 and its exact size.

Each change point has the run and commit where the new level starts, the size as the ratio
of the medians after and before (up to the neighbouring change points) with a bootstrap 95 %
CI, the p-value, and a direction: ``regression`` when the metric got worse (latency, memory,
counts up; throughput down), ``improvement`` otherwise.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

#: The fewest runs on either side of a change point.
MIN_SIZE = 3
#: A split is kept when its permutation p-value is below this.
ALPHA = 0.01
#: Shuffles of the permutation test (the smallest p it can give is 1/(PERMUTATIONS+1)).
PERMUTATIONS = 999
#: Metrics that are counted, not timed: equal on every run unless the model changed.
DETERMINISTIC = frozenset({"params_m", "gflops"})
#: Metrics where more is better; for every other metric more is a regression.
HIGHER_IS_BETTER = frozenset({"throughput_img_s"})
#: Runs that make up the "latest window" of ``vitbench trend --changes`` by default.
DEFAULT_WINDOW = 5
#: The columns a series is grouped by: points with different keys never share a line.
SERIES_KEY = ("model", "metric", "env_key")


@dataclass(frozen=True)
class Split:
    """A change point in a plain sequence: the new level starts at ``index``."""

    index: int
    p_value: float


@dataclass(frozen=True)
class ChangePoint:
    """A change point of one history series (module docstring)."""

    model: str
    metric: str
    env_key: str
    index: int
    runs: int
    run_id: str
    commit: Optional[str]
    created_utc: str
    before: float
    after: float
    change_pct: float
    ci_low_pct: float
    ci_high_pct: float
    p_value: float
    direction: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _gains(ranks: np.ndarray, min_size: int) -> np.ndarray:
    """The l2 cost reduction of every split of each row of ``ranks`` (…, m) → (…, splits):
    k(m−k)/m · (mean of the first k − mean of the rest)², for k in [min_size, m−min_size]."""
    m = ranks.shape[-1]
    k = np.arange(min_size, m - min_size + 1)
    total = ranks.sum(axis=-1, keepdims=True)
    left = np.cumsum(ranks, axis=-1)[..., k - 1]
    diff = left / k - (total - left) / (m - k)
    return k * (m - k) / m * diff ** 2


def _seed(values: np.ndarray) -> int:
    """A seed from the data, so that the same series always gets the same p-values."""
    return int.from_bytes(hashlib.sha256(np.ascontiguousarray(values).tobytes()).digest()[:8],
                          "little")


def _best_split(values: np.ndarray, min_size: int) -> int:
    """Where ``ruptures`` splits ``values`` in two (binary segmentation, l1 cost: a shift of
    the median, which one slow run next to the step does not drag along)."""
    import ruptures

    algo = ruptures.Binseg(model="l1", min_size=min_size, jump=1).fit(values.astype(float))
    return int(algo.predict(n_bkps=1)[0])


def _test_segment(values: np.ndarray, min_size: int, permutations: int,
                  rng: np.random.Generator) -> Optional[Split]:
    """The best split of ``values`` and its permutation p-value; None when too short or flat."""
    from scipy.stats import permutation_test, rankdata

    if len(values) < 2 * min_size:
        return None
    ranks = rankdata(values)
    if np.ptp(ranks) == 0:
        return None

    def statistic(x: np.ndarray, axis: int = -1) -> np.ndarray:
        return _gains(np.moveaxis(x, axis, -1), min_size).max(axis=-1)

    result = permutation_test((ranks,), statistic, permutation_type="pairings",
                              vectorized=True, n_resamples=permutations,
                              alternative="greater", rng=rng)
    return Split(_best_split(values, min_size), float(result.pvalue))


def find_splits(values: Sequence[float], *, alpha: float = ALPHA, min_size: int = MIN_SIZE,
                permutations: int = PERMUTATIONS, seed: Optional[int] = None) -> list[Split]:
    """The change points of a noisy sequence (module docstring), in order. NaNs are dropped
    by the caller; ``seed`` defaults to one drawn from the data (reproducible)."""
    x = np.asarray(values, dtype=float)
    rng = np.random.default_rng(_seed(x) if seed is None else seed)
    found: list[Split] = []
    pending = [(0, len(x))]
    while pending:
        start, end = pending.pop()
        split = _test_segment(x[start:end], min_size, permutations, rng)
        if split is None or not split.p_value < alpha:
            continue
        at = start + split.index
        found.append(Split(at, split.p_value))
        pending += [(start, at), (at, end)]
    return sorted(found, key=lambda s: s.index)


def level_changes(values: Sequence[float], rel_tol: float = 1e-9) -> list[Split]:
    """Every index where a deterministic sequence takes a new value (p = 0: no noise)."""
    x = np.asarray(values, dtype=float)
    return [Split(i, 0.0) for i in range(1, len(x))
            if abs(x[i] - x[i - 1]) > rel_tol * max(abs(x[i]), abs(x[i - 1]), 1e-300)]


def change_size(before: np.ndarray, after: np.ndarray, *, seed: int = 0
                ) -> tuple[float, float, float]:
    """(after/before − 1) of the medians, in %, with a percentile-bootstrap 95 % CI."""
    from scipy.stats import bootstrap

    mid = (np.median(after) / np.median(before) - 1) * 100
    if np.ptp(before) == 0 and np.ptp(after) == 0:
        return float(mid), float(mid), float(mid)

    def ratio(b: np.ndarray, a: np.ndarray, axis: int = -1) -> np.ndarray:
        return (np.median(a, axis=axis) / np.median(b, axis=axis) - 1) * 100

    ci = bootstrap((before, after), ratio, vectorized=True, n_resamples=999,
                   method="percentile", rng=np.random.default_rng(seed)).confidence_interval
    low, high = (float(v) for v in (ci.low, ci.high))
    return float(mid), (low if np.isfinite(low) else float(mid)), (
        high if np.isfinite(high) else float(mid))


def direction(metric: str, change_pct: float) -> str:
    """``regression`` when the metric got worse, ``improvement`` when better."""
    worse = change_pct < 0 if metric in HIGHER_IS_BETTER else change_pct > 0
    return "regression" if worse else "improvement"


def series_changes(points: "pd.DataFrame", *, alpha: float = ALPHA,
                   min_size: int = MIN_SIZE) -> list[ChangePoint]:
    """The change points of one series: ``points`` holds one (model, metric, env_key), one
    line per run, oldest first (columns of :func:`vitbench.history.series`)."""
    points = points.dropna(subset=["value"]).reset_index(drop=True)
    if points.empty:
        return []
    model, metric, env = (str(points[c].iloc[0]) for c in SERIES_KEY)
    values = points["value"].to_numpy(dtype=float)
    splits = (level_changes(values) if metric in DETERMINISTIC
              else find_splits(values, alpha=alpha, min_size=min_size))
    bounds = [0, *(s.index for s in splits), len(values)]
    out = []
    for i, split in enumerate(splits):
        before, after = values[bounds[i]:split.index], values[split.index:bounds[i + 2]]
        mid, low, high = change_size(before, after, seed=split.index)
        line = points.iloc[split.index]
        commit = line.get("commit")
        out.append(ChangePoint(
            model=model, metric=metric, env_key=env, index=split.index, runs=len(values),
            run_id=str(line["run_id"]), commit=None if commit is None or commit != commit
            else str(commit), created_utc=str(line["created_utc"]),
            before=float(np.median(before)), after=float(np.median(after)),
            change_pct=round(mid, 3), ci_low_pct=round(low, 3), ci_high_pct=round(high, 3),
            p_value=split.p_value, direction=direction(metric, mid)))
    return out


def find_changes(frame: "pd.DataFrame", *, alpha: float = ALPHA,
                 min_size: int = MIN_SIZE) -> list[ChangePoint]:
    """Change points of every (model, metric, env_key) series in a :func:`series` frame."""
    if frame.empty:
        return []
    out: list[ChangePoint] = []
    for _, points in frame.groupby(list(SERIES_KEY), sort=True, dropna=False):
        out += series_changes(points.sort_values(["created_utc", "run_id"], kind="stable"),
                              alpha=alpha, min_size=min_size)
    return out


def in_latest_window(change: ChangePoint, window: int = DEFAULT_WINDOW) -> bool:
    """Whether the change's new level starts within the last ``window`` runs of its series."""
    return change.index >= change.runs - window


def latest_regressions(changes: Sequence[ChangePoint],
                       window: int = DEFAULT_WINDOW) -> list[ChangePoint]:
    """The regressions whose new level starts in their series' latest window (the nightly
    job's question: did the last few runs get worse?)."""
    return [c for c in changes if c.direction == "regression" and in_latest_window(c, window)]
