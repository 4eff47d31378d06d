"""The CI regression gate: statistics and decisions. Pure (numpy, scipy, pydantic); no torch.

Three kinds of metric, three rules (see ``docs/ci-gate.md``):

* **deterministic** — ``params`` and ``gflops``: exact comparison. GFLOPs are compared only
  when the counter, its library version, the convention and the image size match on both
  sides, otherwise NOT_COMPARABLE.
* **quasi-deterministic** — ``peak_memory_mb`` of CUDA rows (allocator peak): exact with a
  tolerance (``cuda_memory_tol_mb``). If the baseline's own runs differ, it is demoted to
  the noisy rule with δ = 1 %.
* **noisy** — ``latency`` (one statistic per fresh run: quantile ``q`` of that run's samples)
  and ``peak_memory_mb`` of CPU rows (peak RSS, one value per run): a one-sided exact
  Mann–Whitney U test on the log run values, the Hodges–Lehmann shift as the effect with a
  Moses distribution-free CI, Holm's correction over every noisy test of the invocation at
  family-wise α, and a minimum effect δ.

Throughput is batch/latency: derived, never tested on its own.

Each side of a comparison is a :class:`Side`: per model, one entry per *run* (a fresh
process), built from ``results.json`` files (:func:`side_from_results`) or from a baseline
file (schema ``vitbench.baseline/1``, :func:`build_baseline` / :func:`side_from_baseline`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np
from scipy import stats as _sp

from vitbench.errors import ResultsError, VitbenchError
from vitbench.records import SCHEMA as RESULT_SCHEMA, RunResult

BASELINE_SCHEMA = "vitbench.baseline/1"
VERDICT_SCHEMA = "vitbench.verdict/1"

#: The calibration probe's model; a row with it is the run's machine-speed probe.
CALIBRATION_MODEL = "vitbench:gate_calibration"

FAIL, WARN, IMPROVED, PASS, INCONCLUSIVE, NOT_COMPARABLE = (
    "FAIL", "WARN", "IMPROVED", "PASS", "INCONCLUSIVE", "NOT_COMPARABLE")
VERDICT_ORDER = (FAIL, INCONCLUSIVE, NOT_COMPARABLE, WARN, IMPROVED, PASS)

EXIT_PASS, EXIT_REGRESSION, EXIT_INCONCLUSIVE, EXIT_TOOL_ERROR = 0, 1, 2, 3

#: Per-run quantiles a baseline file always stores (plus any other one asked for).
STORED_QUANTILES = (0.2, 0.5)
#: Offset (MiB) added to memory values before taking logs: a 0 MiB peak stays finite.
MEMORY_LOG_OFFSET_MB = 1.0


class GateError(VitbenchError):
    """The gate cannot run: unreadable input or an impossible configuration (exit 3)."""


# --------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------

@dataclass
class GateConfig:
    """Every knob of the decision rule, with the defaults of the research note (§4.3)."""

    alpha: float = 0.01  # family-wise error for FAIL (Holm over every noisy test)
    delta_latency_cpu: float = 0.05  # minimum effect, as a fraction
    delta_latency_cuda: float = 0.02
    delta_memory_cpu: float = 0.05
    memory_floor_mb: float = 4.0  # CPU RSS: an effect must also exceed this many MiB
    cuda_memory_tol_mb: float = 0.0
    quantile: Optional[float] = None  # per-run latency statistic; None: 0.2 cpu, 0.5 cuda
    noise_factor: float = 0.6  # INCONCLUSIVE when the between-run SD exceeds this × δ
    ci_level: float = 0.95
    warn_q: float = 0.05  # BH q below which a sub-threshold shift is a WARN
    calibration_tolerance: float = 0.05  # stored-baseline mode: |calibration ratio − 1|
    calibration_min_shift: float = 0.02  # in-job mode: a significant shift this big = drift
    metrics: tuple[str, ...] = ("params", "gflops", "latency", "memory")

    def latency_quantile(self, device: str) -> float:
        if self.quantile is not None:
            return self.quantile
        return 0.5 if device == "cuda" else 0.2

    def delta_for(self, metric: str, device: str) -> float:
        if metric == "latency":
            return self.delta_latency_cuda if device == "cuda" else self.delta_latency_cpu
        return self.delta_memory_cpu


# --------------------------------------------------------------------------------------
# Statistics (pure functions; each is checked against brute force in the tests)
# --------------------------------------------------------------------------------------

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
        k = int(math.floor(mean - _sp.norm.ppf(1 - tail) * sd))
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
    return float(_sp.mannwhitneyu(b, a, alternative=alternative, method="exact").pvalue)


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
    return float(_sp.median_abs_deviation(values, scale="normal"))


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
        k = int(math.floor(mean - _sp.norm.ppf(1 - tail) * sd))
    if k < 1:
        return -math.inf, math.inf
    return float(w[k - 1]), float(w[total - k])


def signed_rank_pvalue(d: Sequence[float], alternative: str) -> float:
    """One-sided exact Wilcoxon signed-rank p-value that ``d`` is centred above (``greater``)
    or below (``less``) zero (``scipy.stats.wilcoxon(method='exact')``)."""
    d = np.asarray(d, float)
    if np.all(d == 0):
        return 1.0
    return float(_sp.wilcoxon(d, alternative=alternative, method="exact",
                              zero_method="zsplit").pvalue)


def rounds_needed(tests: int, alpha: float, max_n: int = 64) -> int:
    """Smallest number of lockstep rounds with 2^n > tests/alpha (the gate can fail at all)."""
    for n in range(1, max_n):
        if 2 ** n > tests / alpha:
            return n
    return max_n


# --------------------------------------------------------------------------------------
# Sides: what was measured, run by run
# --------------------------------------------------------------------------------------

#: Row fields that must match for timing/memory to be comparable at all.
_TIMING_FIELDS = ("device", "dtype", "batch_size", "image_size", "threads")
#: Environment fields that must match for timing/memory to be comparable.
_ENV_FIELDS = ("cpu", "cpu_count_usable", "python", "torch", "gpu", "cuda", "cudnn")


@dataclass
class ModelRuns:
    """One model on one side: settings, and one value per run for each metric."""

    name: str
    model: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    status: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    params: list[int] = field(default_factory=list)
    gflops: list[float] = field(default_factory=list)
    gflops_counter: Optional[str] = None
    flops_convention: Optional[str] = None
    latency: dict[float, list[float]] = field(default_factory=dict)  # quantile → per-run ms
    memory: list[float] = field(default_factory=list)
    memory_method: Optional[str] = None

    @property
    def device(self) -> str:
        return str(self.settings.get("device", "cpu"))

    @property
    def ok(self) -> bool:
        return any(s == "ok" for s in self.status)


@dataclass
class Side:
    """Everything one side of a comparison measured."""

    label: str
    kind: str  # "results" (runs at hand) | "baseline" (stored per-run summaries)
    runs: int
    environment: dict[str, Any] = field(default_factory=dict)
    suite: dict[str, Any] = field(default_factory=dict)
    models: dict[str, ModelRuns] = field(default_factory=dict)
    calibration: Optional[ModelRuns] = None
    sources: list[str] = field(default_factory=list)


def _env_subset(environment: dict[str, Any]) -> dict[str, Any]:
    keep = (*_ENV_FIELDS, "vitbench", "timm", "fvcore", "hostname")
    return {k: environment.get(k) for k in keep if environment.get(k) is not None}


def _row_settings(row: Any) -> dict[str, Any]:
    return {"device": row.device, "dtype": row.dtype, "batch_size": row.batch_size,
            "image_size": list(row.image_size), "threads": row.threads}


def side_from_results(runs: Sequence[RunResult], label: str = "",
                      quantiles: Iterable[float] = STORED_QUANTILES) -> Side:
    """A side from ``results.json`` runs of the same suite (one fresh process per row per run)."""
    if not runs:
        raise GateError(f"{label or 'side'}: no runs")
    quantiles = sorted(set(float(q) for q in quantiles))
    side = Side(label=label, kind="results", runs=len(runs),
                environment=_env_subset(runs[0].environment),
                suite={k: runs[0].suite.get(k) for k in ("name", "sha256")})
    for run in runs:
        for k, v in _env_subset(run.environment).items():
            if k in _ENV_FIELDS and side.environment.get(k) != v:
                side.environment.setdefault("mixed", []).append(k)
        for row in run.results:
            if row.status == "unavailable":
                continue
            target = side.models
            entry = target.get(row.name)
            if row.model == CALIBRATION_MODEL:
                entry = side.calibration
            if entry is None:
                entry = ModelRuns(name=row.name, model=row.model, settings=_row_settings(row),
                                  gflops_counter=row.gflops_counter,
                                  flops_convention=row.flops_convention,
                                  memory_method=row.memory_method)
                if row.model == CALIBRATION_MODEL:
                    side.calibration = entry
                else:
                    target[row.name] = entry
            entry.status.append(row.status)
            if row.error:
                entry.errors.append(row.error)
            if row.status != "ok":
                continue
            if row.params is not None:
                entry.params.append(int(row.params))
            if row.gflops is not None:
                entry.gflops.append(float(row.gflops))
                entry.gflops_counter = row.gflops_counter
            if row.latency_samples_ms:
                samples = np.asarray(row.latency_samples_ms, float)
                for q in quantiles:
                    entry.latency.setdefault(q, []).append(float(np.quantile(samples, q)))
            if row.peak_memory_mb is not None:
                entry.memory.append(float(row.peak_memory_mb))
                entry.memory_method = row.memory_method
    side.sources = [str(r.command) for r in runs if r.command]
    return side


def load_results(paths: Sequence[str | Path]) -> list[RunResult]:
    """Read results.json files (a folder means its results.json)."""
    runs = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            path = path / "results.json"
        try:
            runs.append(RunResult.load(path))
        except ResultsError as exc:
            raise GateError(str(exc)) from None
    return runs


def build_baseline(runs: Sequence[RunResult], sources: Sequence[str] = (),
                   quantiles: Iterable[float] = STORED_QUANTILES,
                   created_utc: str = "") -> dict[str, Any]:
    """A ``vitbench.baseline/1`` document: per-run summaries of K runs (no raw samples)."""
    quantiles = sorted(set(STORED_QUANTILES) | {float(q) for q in quantiles})
    side = side_from_results(runs, "baseline", quantiles)

    def model_doc(m: ModelRuns) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "model": m.model, **m.settings, "status": m.status,
            "params": m.params[0] if m.params else None,
            "gflops": m.gflops[0] if m.gflops else None,
            "gflops_counter": m.gflops_counter, "flops_convention": m.flops_convention,
        }
        if len(set(m.params)) > 1 or len(set(m.gflops)) > 1:
            doc["warning"] = "deterministic metrics differ between runs; the first is kept"
        if m.latency:
            doc["latency_ms"] = {_qkey(q): [round(v, 6) for v in vals]
                                 for q, vals in m.latency.items()}
        if m.memory:
            doc["peak_memory_mb"] = [round(v, 4) for v in m.memory]
            doc["memory_method"] = m.memory_method
        if m.errors:
            doc["errors"] = m.errors
        return doc

    return {
        "schema": BASELINE_SCHEMA,
        "created_utc": created_utc,
        "runs": side.runs,
        "suite": side.suite,
        "sources": list(sources),
        "environment": side.environment,
        "quantiles": quantiles,
        "note": ("per-run summaries: latency_ms[qX] holds quantile X of each run's samples, "
                 "one value per fresh-process run; peak_memory_mb one value per run"),
        "models": {name: model_doc(m) for name, m in side.models.items()},
        "calibration": model_doc(side.calibration) if side.calibration else None,
    }


def _qkey(q: float) -> str:
    return f"q{q:g}"


def side_from_baseline(doc: dict[str, Any], label: str = "baseline") -> Side:
    """A side from a ``vitbench.baseline/1`` document."""
    if not isinstance(doc, dict) or doc.get("schema") != BASELINE_SCHEMA:
        raise GateError(f"{label}: schema {doc.get('schema') if isinstance(doc, dict) else None!r}"
                        f" is not {BASELINE_SCHEMA!r}")

    def model_runs(name: str, d: dict[str, Any]) -> ModelRuns:
        settings = {k: d.get(k) for k in _TIMING_FIELDS}
        m = ModelRuns(name=name, model=d.get("model", ""), settings=settings,
                      status=list(d.get("status") or ["ok"]), errors=list(d.get("errors") or []),
                      gflops_counter=d.get("gflops_counter"),
                      flops_convention=d.get("flops_convention"),
                      memory_method=d.get("memory_method"))
        if d.get("params") is not None:
            m.params = [int(d["params"])]
        if d.get("gflops") is not None:
            m.gflops = [float(d["gflops"])]
        for key, vals in (d.get("latency_ms") or {}).items():
            m.latency[float(key[1:])] = [float(v) for v in vals]
        m.memory = [float(v) for v in d.get("peak_memory_mb") or []]
        return m

    try:
        side = Side(label=label, kind="baseline", runs=int(doc.get("runs", 1)),
                    environment=dict(doc.get("environment") or {}),
                    suite=dict(doc.get("suite") or {}), sources=list(doc.get("sources") or []))
        side.models = {n: model_runs(n, d) for n, d in (doc.get("models") or {}).items()}
        if doc.get("calibration"):
            side.calibration = model_runs("calibration", doc["calibration"])
    except (TypeError, ValueError, AttributeError) as exc:
        raise GateError(f"{label}: malformed baseline file ({exc})") from None
    return side


def load_side(paths: Sequence[str | Path], label: str) -> Side:
    """One baseline file, or one or more results.json files (each one run)."""
    paths = [Path(p) for p in paths]
    if len(paths) == 1 and paths[0].is_file():
        try:
            doc = json.loads(paths[0].read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise GateError(f"{paths[0]}: no such file") from None
        except json.JSONDecodeError as exc:
            raise GateError(f"{paths[0]}: not JSON ({exc.msg} at line {exc.lineno})") from None
        if isinstance(doc, dict) and doc.get("schema") == BASELINE_SCHEMA:
            side = side_from_baseline(doc, label)
            side.sources = [str(paths[0])]
            return side
        if not (isinstance(doc, dict) and doc.get("schema") == RESULT_SCHEMA):
            raise GateError(f"{paths[0]}: schema {doc.get('schema') if isinstance(doc, dict) else None!r}"
                            f" is neither {BASELINE_SCHEMA!r} nor {RESULT_SCHEMA!r}")
    side = side_from_results(load_results(paths), label)
    side.sources = [str(p) for p in paths]
    return side


# --------------------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------------------

@dataclass
class Verdict:
    """The decision for one (model, metric)."""

    model: str
    metric: str  # params | gflops | latency_ms | peak_memory_mb
    kind: str  # deterministic | quasi-deterministic | noisy | calibration
    verdict: str
    reason: str
    unit: str = ""
    baseline: Optional[float] = None  # noisy: median of the per-run values
    candidate: Optional[float] = None
    ratio: Optional[float] = None
    ci_low: Optional[float] = None
    ci_high: Optional[float] = None
    p: Optional[float] = None
    p_holm: Optional[float] = None
    delta: Optional[float] = None
    n_a: Optional[int] = None
    n_b: Optional[int] = None
    noise_sd: Optional[float] = None
    statistic: Optional[str] = None
    design: Optional[str] = None  # noisy: "runs" (independent runs per side) | "lockstep" (paired)
    confirmation: Optional[dict[str, Any]] = None
    # working values (not reported)
    _log_a: Any = field(default=None, repr=False)
    _d: Any = field(default=None, repr=False)  # lockstep: per-round log ratios B/A
    _log_b: Any = field(default=None, repr=False)
    _p_less: Optional[float] = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        for key, value in data.items():
            if isinstance(value, float) and not math.isfinite(value):
                data[key] = None
        return data


@dataclass
class GateReport:
    mode: str  # compare | ab
    config: GateConfig
    baseline: dict[str, Any]
    candidate: dict[str, Any]
    verdicts: list[Verdict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tests: int = 0  # noisy tests in the Holm family

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
        """0 pass, 1 regression, 2 inconclusive/not comparable (``on_inconclusive``:
        ``fail`` → 2, ``pass`` → 0, ``regression`` → 1)."""
        overall = self.overall()
        if overall == FAIL:
            return EXIT_REGRESSION
        if overall == INCONCLUSIVE:
            return {"fail": EXIT_INCONCLUSIVE, "pass": EXIT_PASS,
                    "regression": EXIT_REGRESSION}[on_inconclusive]
        return EXIT_PASS

    def to_dict(self) -> dict[str, Any]:
        cfg = asdict(self.config)
        cfg["metrics"] = list(self.config.metrics)
        return {"schema": VERDICT_SCHEMA, "mode": self.mode, "overall": self.overall(),
                "counts": self.counts(), "noisy_tests": self.tests, "config": cfg,
                "baseline": self.baseline, "candidate": self.candidate, "notes": self.notes,
                "verdicts": [v.to_dict() for v in self.verdicts]}


def _describe_side(side: Side) -> dict[str, Any]:
    return {"label": side.label, "kind": side.kind, "runs": side.runs, "suite": side.suite,
            "environment": side.environment, "sources": side.sources}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return a == b


def _env_differences(base: Side, cand: Side) -> list[str]:
    diffs = []
    for key in _ENV_FIELDS:
        a, b = base.environment.get(key), cand.environment.get(key)
        if a is not None and b is not None and a != b:
            diffs.append(f"{key} {a} → {b}")
    return diffs


def _counter_version_key(counter: Optional[str]) -> str:
    if counter and counter.startswith("fvcore"):
        return "fvcore"
    return "torch"


def compare_sides(base: Side, cand: Side, config: Optional[GateConfig] = None, *,
                  mode: str = "compare",
                  paired: Optional[dict[str, Sequence[float]]] = None) -> GateReport:
    """Decide every (model, metric) of ``cand`` against ``base``.

    ``paired`` (from ``vitbench ab``'s lockstep rounds) maps a model name to one log latency
    ratio ln(B/A) per round; those models' latency is decided by the paired rule
    (:func:`_paired_latency`), and the calibration row's ratios are the rounds' A/A control.
    """
    config = config or GateConfig()
    paired = paired or {}
    report = GateReport(mode=mode, config=config, baseline=_describe_side(base),
                        candidate=_describe_side(cand))
    env_diffs = _env_differences(base, cand)
    if env_diffs:
        report.notes.append("environments differ: " + "; ".join(env_diffs)
                            + " (timing and memory are not comparable)")
    for side in (base, cand):
        if side.environment.get("mixed"):
            report.notes.append(f"{side.label}: runs come from different environments "
                                f"({', '.join(sorted(set(side.environment['mixed'])))})")

    noisy: list[Verdict] = []
    names = list(base.models) + [n for n in cand.models if n not in base.models]
    for name in names:
        a, b = base.models.get(name), cand.models.get(name)
        if a is None or b is None:
            where = "baseline" if a is None else "candidate"
            report.verdicts.append(Verdict(
                model=name, metric="*", kind="-", verdict=NOT_COMPARABLE,
                reason=f"not in the {where}" + (" (new model: add it to the baseline)"
                                               if a is None else " (model removed or renamed)")))
            continue
        if a.ok and not b.ok:
            report.verdicts.append(Verdict(
                model=name, metric="*", kind="-", verdict=FAIL,
                reason="failed in the candidate: " + (b.errors[-1] if b.errors else ",".join(b.status))))
            continue
        if not a.ok:
            report.verdicts.append(Verdict(
                model=name, metric="*", kind="-", verdict=NOT_COMPARABLE,
                reason="no successful baseline run: " + (a.errors[-1] if a.errors else ",".join(a.status))))
            continue
        if "params" in config.metrics:
            report.verdicts.append(_deterministic(name, "params", a.params, b.params, "count"))
        if "gflops" in config.metrics:
            report.verdicts.append(_gflops(name, a, b, base, cand))
        timing_diffs = [f"{k} {a.settings.get(k)} → {b.settings.get(k)}" for k in _TIMING_FIELDS
                        if not _same(a.settings.get(k), b.settings.get(k))]
        if "latency" in config.metrics:
            if paired.get(name) is not None and len(paired[name]) and not (timing_diffs or env_diffs):
                v = _paired_latency(name, a, b, paired[name], config)
            else:
                v = _latency(name, a, b, config, timing_diffs + env_diffs)
            if v is not None:
                (noisy if v.verdict is None else report.verdicts).append(v)
        if "memory" in config.metrics:
            v = _memory(name, a, b, config, timing_diffs + env_diffs,
                        lockstep=paired.get(name) is not None)
            if v is not None:
                (noisy if v.verdict is None else report.verdicts).append(v)

    calibration_name = base.calibration.name if base.calibration else None
    if calibration_name and paired.get(calibration_name) is not None:
        drift = _paired_control(paired[calibration_name], base, cand, config, report, env_diffs)
    else:
        drift = _calibration(base, cand, config, report, env_diffs)
    _decide_noisy(noisy, config, report, drift, stored=base.kind == "baseline")
    if not drift:
        _suite_drift(noisy, report, config)
    report.verdicts.extend(noisy)
    order = {n: i for i, n in enumerate(names)}
    report.verdicts.sort(key=lambda v: (v.kind == "calibration", order.get(v.model, 0)))
    if any(v.metric == "latency_ms" for v in report.verdicts):
        report.notes.append("throughput = batch / latency is derived from latency and not "
                            "tested separately")
    return report


def _deterministic(name: str, metric: str, a: list, b: list, unit: str) -> Verdict:
    verdict = Verdict(model=name, metric=metric, kind="deterministic", verdict=PASS,
                      reason="", unit=unit)
    if not a or not b:
        missing = "baseline" if not a else "candidate"
        verdict.verdict, verdict.reason = NOT_COMPARABLE, f"not measured in the {missing}"
        return verdict
    va, vb = a[0], b[0]
    verdict.baseline, verdict.candidate = float(va), float(vb)
    verdict.ratio = vb / va if va else None
    notes = []
    if len(set(a)) > 1 or len(set(b)) > 1:
        notes.append("differs between runs of one side; first run used")
    equal = math.isclose(va, vb, rel_tol=1e-9, abs_tol=0.0)
    if equal:
        verdict.verdict, reason = PASS, "identical"
    elif vb > va:
        verdict.verdict, reason = FAIL, f"grew by {vb - va:+.6g}"
    else:
        verdict.verdict, reason = IMPROVED, f"shrank by {vb - va:+.6g}"
    verdict.reason = "; ".join([reason, *notes])
    return verdict


def _gflops(name: str, a: ModelRuns, b: ModelRuns, base: Side, cand: Side) -> Verdict:
    problems = []
    if a.gflops and b.gflops:
        if a.gflops_counter != b.gflops_counter:
            problems.append(f"counter {a.gflops_counter} → {b.gflops_counter}")
        if a.flops_convention != b.flops_convention:
            problems.append(f"convention {a.flops_convention} → {b.flops_convention}")
        if not _same(a.settings.get("image_size"), b.settings.get("image_size")):
            problems.append(f"image size {a.settings.get('image_size')} → "
                            f"{b.settings.get('image_size')}")
        lib = _counter_version_key(a.gflops_counter)
        va, vb = base.environment.get(lib), cand.environment.get(lib)
        if va and vb and va != vb:
            problems.append(f"{lib} {va} → {vb} (counter version)")
    if problems:
        return Verdict(model=name, metric="gflops", kind="deterministic", verdict=NOT_COMPARABLE,
                       reason="not comparable: " + "; ".join(problems), unit="GFLOPs",
                       baseline=a.gflops[0], candidate=b.gflops[0])
    verdict = _deterministic(name, "gflops", a.gflops, b.gflops, "GFLOPs")
    if verdict.verdict != NOT_COMPARABLE:
        verdict.reason += f" ({a.gflops_counter}, {a.flops_convention})"
    return verdict


def _noisy_verdict(name: str, metric: str, unit: str, a: list[float], b: list[float],
                   delta: float, statistic: str, offset: float = 0.0,
                   kind: str = "noisy") -> Verdict:
    """A pending noisy verdict (``verdict=None``) carrying logs and per-test statistics."""
    v = Verdict(model=name, metric=metric, kind=kind, verdict=None, reason="", unit=unit,  # type: ignore[arg-type]
                baseline=float(np.median(a)), candidate=float(np.median(b)),
                delta=delta, n_a=len(a), n_b=len(b), statistic=statistic, design="runs")
    la, lb = np.log(np.asarray(a, float) + offset), np.log(np.asarray(b, float) + offset)
    v._log_a, v._log_b = la, lb
    if len(a) >= 1 and len(b) >= 1:
        v.ratio = math.exp(hodges_lehmann(la, lb))
        v.noise_sd = pooled_robust_sd(la, lb)
    if len(a) >= 2 and len(b) >= 2:
        v.p = mwu_pvalue(la, lb, "greater")
        v._p_less = mwu_pvalue(la, lb, "less")
    return v


def _latency(name: str, a: ModelRuns, b: ModelRuns, config: GateConfig,
             diffs: list[str]) -> Optional[Verdict]:
    if not a.latency and not b.latency:
        return None
    q = config.latency_quantile(a.device)
    base = Verdict(model=name, metric="latency_ms", kind="noisy", verdict=INCONCLUSIVE,
                   reason="", unit="ms")
    if not a.latency or not b.latency:
        base.verdict = NOT_COMPARABLE
        base.reason = f"not measured in the {'baseline' if not a.latency else 'candidate'}"
        return base
    if q not in a.latency or q not in b.latency:
        base.verdict = NOT_COMPARABLE
        base.reason = (f"per-run quantile q{q:g} not stored (baseline has "
                       f"{', '.join(_qkey(x) for x in sorted(a.latency))}); rebuild it with --quantile")
        return base
    if diffs:
        base.reason = "environments differ: " + "; ".join(diffs)
        return base
    delta = config.delta_for("latency", a.device)
    return _noisy_verdict(name, "latency_ms", "ms", a.latency[q], b.latency[q], delta,
                          f"q{q:g} per run")


def _paired_latency(name: str, a: ModelRuns, b: ModelRuns, d: Sequence[float],
                    config: GateConfig) -> Verdict:
    """A pending latency verdict from lockstep rounds: one ln(B/A) per round."""
    per_run = lambda m: m.latency.get(0.5) or next(iter(m.latency.values()), [])  # noqa: E731
    return _paired_verdict(name, "latency_ms", "ms", per_run(a), per_run(b), d,
                           config.delta_for("latency", a.device),
                           "per round: median of ln(B/A) over adjacent lockstep blocks")


def _paired_verdict(name: str, metric: str, unit: str, va: Sequence[float],
                    vb: Sequence[float], d: Sequence[float], delta: float,
                    statistic: str) -> Verdict:
    """A pending paired verdict: ``d`` holds one ln(B/A) per lockstep round."""
    d = np.asarray(d, float)
    v = Verdict(model=name, metric=metric, kind="noisy", verdict=None, reason="",  # type: ignore[arg-type]
                unit=unit, baseline=float(np.median(va)) if len(va) else None,
                candidate=float(np.median(vb)) if len(vb) else None,
                delta=delta, n_a=len(d), n_b=len(d), statistic=statistic, design="lockstep")
    v._d = d
    v.ratio = math.exp(hodges_lehmann_paired(d))
    v.noise_sd = robust_sd(d)
    if len(d) >= 2:
        v.p = signed_rank_pvalue(d, "greater")
        v._p_less = signed_rank_pvalue(d, "less")
    return v


def _paired_control(d: Sequence[float], base: Side, cand: Side, config: GateConfig,
                    report: GateReport, env_diffs: list[str]) -> Optional[str]:
    """The calibration probe measured in lockstep against itself every round: an A/A control.

    Its ratios should centre on 1; a significant shift means the two sides were not measured
    alike (e.g. one worker systematically favoured), and latency verdicts become INCONCLUSIVE.
    """
    d = np.asarray(d, float)
    v = Verdict(model="calibration", metric="latency_ms", kind="calibration", verdict=PASS,
                reason="", unit="ms", n_a=len(d), n_b=len(d), design="lockstep",
                delta=config.calibration_min_shift,
                statistic="A/A control: the probe against itself in every lockstep round")
    per_run = lambda s: (s.calibration.latency.get(0.5) if s.calibration else None) or []  # noqa: E731
    if per_run(base):
        v.baseline = float(np.median(per_run(base)))
    if per_run(cand):
        v.candidate = float(np.median(per_run(cand)))
    drift = None
    if env_diffs:
        v.verdict, v.reason = INCONCLUSIVE, "environments differ"
        report.verdicts.append(v)
        return None
    if len(d) >= 2:
        v.ratio = math.exp(hodges_lehmann_paired(d))
        v.noise_sd = robust_sd(d)
        lo, hi = walsh_ci(d, config.ci_level)
        v.ci_low, v.ci_high = math.exp(lo), math.exp(hi)
        p = min(1.0, 2 * min(signed_rank_pvalue(d, "greater"), signed_rank_pvalue(d, "less")))
        v.p = p
        if p < config.alpha and abs(math.log(v.ratio)) >= math.log1p(config.calibration_min_shift):
            drift = (f"A/A control: the calibration probe measured {v.ratio:.3f}× against itself "
                     f"(two-sided p={p:.2g}): the two sides were not measured alike")
        v.reason = drift or f"the probe against itself: {v.ratio - 1:+.1%}, no significant shift"
    v.verdict = INCONCLUSIVE if drift else PASS
    report.verdicts.append(v)
    return drift


def _memory(name: str, a: ModelRuns, b: ModelRuns, config: GateConfig,
            diffs: list[str], lockstep: bool = False) -> Optional[Verdict]:
    if not a.memory and not b.memory:
        return None
    cuda = a.device == "cuda"
    kind = "quasi-deterministic" if cuda else "noisy"
    base = Verdict(model=name, metric="peak_memory_mb", kind=kind, verdict=INCONCLUSIVE,
                   reason="", unit="MiB")
    if not a.memory or not b.memory:
        base.verdict = NOT_COMPARABLE
        base.reason = f"not measured in the {'baseline' if not a.memory else 'candidate'}"
        return base
    if diffs:
        base.reason = "environments differ: " + "; ".join(diffs)
        return base
    if cuda:
        if len(set(a.memory)) == 1:
            return _quasi(name, a.memory, b.memory, config.cuda_memory_tol_mb)
        v = _noisy_verdict(name, "peak_memory_mb", "MiB", a.memory, b.memory, 0.01,
                           "allocator peak per run", MEMORY_LOG_OFFSET_MB)
        v.reason = "baseline runs differ: demoted to the noisy rule with δ = 1 %"
        return v
    median = float(np.median(a.memory)) + MEMORY_LOG_OFFSET_MB
    delta = max(config.delta_memory_cpu, config.memory_floor_mb / median)
    if lockstep and len(a.memory) == len(b.memory) and all(
            x == "ok" for x in [*a.status, *b.status]):
        # the i-th value of each side comes from the same lockstep round
        d = np.log(np.asarray(b.memory) + MEMORY_LOG_OFFSET_MB) - \
            np.log(np.asarray(a.memory) + MEMORY_LOG_OFFSET_MB)
        return _paired_verdict(name, "peak_memory_mb", "MiB", a.memory, b.memory, d, delta,
                               "per round: ln(B/A) of the two workers' peak RSS")
    return _noisy_verdict(name, "peak_memory_mb", "MiB", a.memory, b.memory, delta,
                          "peak RSS per run", MEMORY_LOG_OFFSET_MB)


def _quasi(name: str, a: list[float], b: list[float], tol: float) -> Verdict:
    va, vb = a[0], max(b)
    v = Verdict(model=name, metric="peak_memory_mb", kind="quasi-deterministic", verdict=PASS,
                reason="", unit="MiB", baseline=va, candidate=vb, ratio=vb / va if va else None,
                n_a=len(a), n_b=len(b))
    if vb > va + tol:
        v.verdict, v.reason = FAIL, f"allocator peak grew by {vb - va:+.3f} MiB (tolerance {tol:g})"
    elif min(b) < va - tol and len(set(b)) == 1:
        v.verdict, v.reason = IMPROVED, f"allocator peak shrank by {vb - va:+.3f} MiB"
    else:
        v.reason = f"within {tol:g} MiB"
    return v


def _calibration(base: Side, cand: Side, config: GateConfig, report: GateReport,
                 env_diffs: list[str]) -> Optional[str]:
    """Compare the machine-speed probe; return a reason when the machine changed under us."""
    a, b = base.calibration, cand.calibration
    if a is None or b is None or not a.latency or not b.latency:
        report.notes.append("no calibration workload on both sides: a machine that changed "
                            "between baseline and candidate cannot be detected")
        return None
    q = config.latency_quantile(a.device)
    if q not in a.latency or q not in b.latency:
        return None
    va, vb = a.latency[q], b.latency[q]
    v = _noisy_verdict("calibration", "latency_ms", "ms", va, vb, config.calibration_tolerance
                       if base.kind == "baseline" else config.calibration_min_shift,
                       f"q{q:g} per run", kind="calibration")
    drift = None
    if env_diffs:
        v.verdict, v.reason = INCONCLUSIVE, "environments differ"
    elif base.kind == "baseline":
        ratio = float(np.median(vb) / np.median(va))
        v.ratio = ratio
        if abs(ratio - 1) > config.calibration_tolerance:
            drift = (f"calibration workload {ratio:.3f}× the baseline's (tolerance "
                     f"±{config.calibration_tolerance:.0%}): the machine differs")
        v.reason = drift or f"within ±{config.calibration_tolerance:.0%} of the baseline"
    else:
        ps = [p for p in (v.p, v._p_less) if p is not None]
        if ps and min(ps) * 2 < config.alpha and v.ratio is not None and \
                abs(math.log(v.ratio)) >= math.log1p(config.calibration_min_shift):
            drift = (f"calibration workload shifted {v.ratio:.3f}× between A and B runs "
                     f"(two-sided p={min(1.0, 2 * min(ps)):.2g}): regime shift")
        v.reason = drift or "no significant shift between A and B runs"
    v.verdict = v.verdict or (INCONCLUSIVE if drift else PASS)
    report.verdicts.append(v)
    return drift


def _decide_noisy(tests: list[Verdict], config: GateConfig, report: GateReport,
                  drift: Optional[str], stored: bool) -> None:
    """Holm over the family, then the verdict table of the research note §4.3."""
    report.tests = len(tests)
    alpha, m = config.alpha, len(tests)
    have_p = [v for v in tests if v.p is not None]
    greater = holm([v.p for v in have_p]) if have_p else []
    less = holm([v._p_less for v in have_p]) if have_p else []
    bh = _sp.false_discovery_control([v.p for v in have_p]) if have_p else []
    adjusted = {id(v): (g, l, q) for v, g, l, q in zip(have_p, greater, less, bh)}
    for v in tests:
        delta = v.delta
        if stored and v.kind == "noisy" and v.n_a and v.n_a >= 3:
            between = robust_sd(v._log_a)
            widened = max(delta, math.expm1(3 * between))
            if widened > delta:
                v.reason = (f"stored-baseline mode: δ widened to 3×{between:.1%} between-run "
                            f"spread; ")
            v.delta = delta = widened
        log_delta = math.log1p(delta)
        if v.design == "lockstep":
            _decide_paired(v, config, m, adjusted.get(id(v)), drift)
            continue
        if v.n_a is None or v.n_a < 2 or v.n_b < 2:
            v.verdict = INCONCLUSIVE
            v.reason += f"too few runs ({v.n_a} vs {v.n_b}; a run-level test needs ≥2 per side)"
            continue
        if math.comb(v.n_a + v.n_b, v.n_a) <= m / alpha:
            v.verdict = INCONCLUSIVE
            v.reason += (f"too few runs to ever reach significance: C({v.n_a + v.n_b},{v.n_a}) ="
                         f" {math.comb(v.n_a + v.n_b, v.n_a)} ≤ M/α = {m}/{alpha:g}; "
                         f"use ≥{runs_needed(m, alpha)} runs per side")
            continue
        lo, hi = moses_ci(v._log_a, v._log_b, config.ci_level)
        v.ci_low, v.ci_high = math.exp(lo), math.exp(hi)
        g, l, q = adjusted[id(v)]
        log_ratio = math.log(v.ratio)
        if log_ratio < 0:  # report the one-sided test in the direction of the shift
            v.p, v.p_holm = v._p_less, float(l)
        else:
            v.p_holm = float(g)
        if drift and v.metric == "latency_ms":
            v.verdict, v.reason = INCONCLUSIVE, v.reason + drift
        elif g <= alpha and log_ratio >= log_delta:
            v.verdict = FAIL
            v.reason += f"slower/larger by {v.ratio - 1:+.1%} ≥ δ {delta:.0%}, Holm p={g:.2g} ≤ α"
        elif l <= alpha and log_ratio <= -log_delta:
            v.verdict = IMPROVED
            v.reason += f"{v.ratio - 1:+.1%} beyond δ {delta:.0%}, Holm p={l:.2g} ≤ α"
        elif v.noise_sd > config.noise_factor * log_delta:
            v.verdict = INCONCLUSIVE
            v.reason += (f"too noisy: between-run SD {v.noise_sd:.1%} > "
                         f"{config.noise_factor:g}×δ ({config.noise_factor * delta:.1%})")
        elif (hi - lo) / 2 > log_delta and log_ratio >= log_delta / 2:
            v.verdict = INCONCLUSIVE
            v.reason += f"CI half-width {(hi - lo) / 2:.1%} exceeds δ {delta:.0%} with a shift"
        else:
            _warn_or_pass(v, config, g, q, log_ratio)


def _decide_paired(v: Verdict, config: GateConfig, family: int,
                   adjusted: Optional[tuple[float, float, float]], drift: Optional[str]) -> None:
    """Verdict of a lockstep test (latency, or CPU peak RSS per round): the rule of :func:`_decide_noisy` on paired rounds
    (exact one-sided signed-rank test, one-sample Hodges–Lehmann ratio, Tukey–Walsh CI).

    INCONCLUSIVE when the rounds cannot resolve the minimum effect: too few rounds for any
    p below α/M (2^n ≤ M/α), or a CI half-width above δ without a decision.
    """
    alpha, delta = config.alpha, v.delta
    log_delta = math.log1p(delta)
    n = len(v._d)
    if n < 2 or adjusted is None:
        v.verdict = INCONCLUSIVE
        v.reason += f"too few lockstep rounds ({n})"
        return
    if 2 ** n <= family / alpha:
        v.verdict = INCONCLUSIVE
        v.reason += (f"too few rounds to ever reach significance: 2^{n} ≤ M/α = {family}/{alpha:g}; "
                     f"use ≥{rounds_needed(family, alpha)} rounds")
        return
    lo, hi = walsh_ci(v._d, config.ci_level)
    v.ci_low, v.ci_high = math.exp(lo), math.exp(hi)
    g, l, q = adjusted
    log_ratio = math.log(v.ratio)
    if log_ratio < 0:
        v.p, v.p_holm = v._p_less, float(l)
    else:
        v.p_holm = float(g)
    half = (hi - lo) / 2
    if drift and v.metric == "latency_ms":
        v.verdict, v.reason = INCONCLUSIVE, v.reason + drift
    elif g <= alpha and log_ratio >= log_delta:
        v.verdict = FAIL
        v.reason += (f"{'slower' if v.metric == 'latency_ms' else 'larger'} by "
                     f"{v.ratio - 1:+.1%} ≥ δ {delta:.0%}, Holm p={g:.2g} ≤ α")
    elif l <= alpha and log_ratio <= -log_delta:
        v.verdict = IMPROVED
        v.reason += f"{v.ratio - 1:+.1%} beyond δ {delta:.0%}, Holm p={l:.2g} ≤ α"
    elif half > log_delta:
        v.verdict = INCONCLUSIVE
        v.reason += (f"too noisy: CI half-width {half:.1%} > δ {delta:.0%} "
                     f"(round-to-round SD {v.noise_sd:.1%})")
    else:
        _warn_or_pass(v, config, g, q, log_ratio)


def _warn_or_pass(v: Verdict, config: GateConfig, p_holm: float, q: float,
                  log_ratio: float) -> None:
    """The last two rows of the verdict table (no FAIL, IMPROVED or INCONCLUSIVE)."""
    if q < config.warn_q and log_ratio >= math.log1p(v.delta) / 2:
        v.verdict = WARN
        v.reason += f"{v.ratio - 1:+.1%}: BH q={q:.2g}, below the FAIL threshold"
    elif p_holm <= config.alpha:
        v.verdict = PASS
        v.reason += f"significant but {v.ratio - 1:+.1%} is below δ {v.delta:.0%}"
    else:
        v.verdict = PASS
        v.reason += f"no significant change ({v.ratio - 1:+.1%})"


#: Suite-level sanity: this share of the latency tests moving one way ...
SUITE_DRIFT_SHARE = 0.7


def _suite_drift(tests: list[Verdict], report: GateReport, config: GateConfig) -> None:
    """The research note's §4.3.8: when ≥ 70 % of the models' latencies moved the same way,
    by about as much as the calibration probe moved in that direction too (not necessarily
    significantly), the machine changed, not the models: their FAIL/IMPROVED latency verdicts
    become INCONCLUSIVE. Needs ≥ 3 latency tests and a run-level calibration row (in the
    lockstep design the probe's A/A control answers this question directly).
    """
    latency = [v for v in tests if v.metric == "latency_ms" and v.ratio and v.delta]
    calib = next((v for v in report.verdicts if v.kind == "calibration"), None)
    if len(latency) < 3 or calib is None or not calib.ratio or calib.design == "lockstep":
        return
    logs = np.log([v.ratio for v in latency])
    direction = 1.0 if np.sum(logs > 0) >= np.sum(logs < 0) else -1.0
    share = float(np.mean(np.sign(logs) == direction))
    half_delta = math.log1p(min(v.delta for v in latency)) / 2
    calib_log = math.log(calib.ratio)
    typical = float(np.median(logs[np.sign(logs) == direction]))
    if (share >= SUITE_DRIFT_SHARE and direction * calib_log >= half_delta
            and abs(typical - calib_log) <= 2 * half_delta):
        reason = (f"suite-level drift: {share:.0%} of the models moved {math.exp(typical) - 1:+.1%} "
                  f"(median) and the calibration probe {calib.ratio - 1:+.1%}: the machine "
                  "changed, not the models")
        for v in latency:
            if v.verdict in (FAIL, IMPROVED, WARN):
                v.verdict, v.reason = INCONCLUSIVE, reason
        report.notes.append(reason)


def confirm(report: GateReport, pooled: GateReport) -> None:
    """Apply the confirmation stage: a stage-1 noisy FAIL stays FAIL only if the pooled
    stage-1+2 runs also reject at α with ρ̂ ≥ 1+δ; otherwise it becomes WARN (unconfirmed)."""
    pooled_by_key = {(v.model, v.metric): v for v in pooled.verdicts}
    for v in report.verdicts:
        if v.verdict != FAIL or v.kind != "noisy":
            continue
        w = pooled_by_key.get((v.model, v.metric))
        if w is None or w.p is None or w.ratio is None:
            continue
        ok = w.p <= report.config.alpha and math.log(w.ratio) >= math.log1p(v.delta)
        v.confirmation = {"n_a": w.n_a, "n_b": w.n_b, "ratio": w.ratio, "p": w.p,
                          "ci_low": w.ci_low, "ci_high": w.ci_high, "confirmed": ok}
        if ok:
            v.reason += f"; confirmed on {w.n_a}+{w.n_b} pooled runs ({w.ratio - 1:+.1%}, p={w.p:.2g})"
        else:
            v.verdict = WARN
            v.reason += (f"; unconfirmed: pooled {w.n_a}+{w.n_b} runs give {w.ratio - 1:+.1%}, "
                         f"p={w.p:.2g}")
    report.notes.append("noisy FAILs were re-measured (only the failing models) before counting")


# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------

def _fmt(value: Optional[float], unit: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if unit == "count":
        return f"{int(round(value)):,}"
    if unit == "GFLOPs":
        return f"{value:.4f}"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.1f}"


def _fmt_ratio(v: Verdict) -> str:
    if v.ratio is None:
        return "–"
    text = f"{v.ratio:.3f}"
    if v.ci_low is not None and v.ci_high is not None:
        lo = f"{v.ci_low:.3f}" if math.isfinite(v.ci_low) else "−∞"
        hi = f"{v.ci_high:.3f}" if math.isfinite(v.ci_high) else "∞"
        text += f" [{lo}, {hi}]"
    return text


_ICON = {FAIL: "❌ FAIL", WARN: "⚠️ WARN", IMPROVED: "🚀 IMPROVED", PASS: "✅ PASS",
         INCONCLUSIVE: "❔ INCONCLUSIVE", NOT_COMPARABLE: "⛔ NOT_COMPARABLE"}


def to_markdown(report: GateReport, on_inconclusive: str = "fail") -> str:
    """The verdict as Markdown for a pull-request comment."""
    cfg = report.config
    counts = report.counts()
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    lines = [
        f"### vitbench gate: {_ICON[report.overall()]} (exit {report.exit_code(on_inconclusive)})",
        "",
        f"Mode **{report.mode}**: baseline {report.baseline['label']} "
        f"({report.baseline['runs']} run(s), {report.baseline['kind']}) vs candidate "
        f"{report.candidate['label']} ({report.candidate['runs']} run(s)). {summary}.",
        "",
        "| model | metric | baseline | candidate | ratio [95% CI] | p (Holm) | verdict | reason |",
        "|---|---|---:|---:|---|---:|---|---|",
    ]
    for v in report.verdicts:
        unit = f" {v.unit}" if v.unit and v.unit != "count" else ""
        p = "–" if v.p_holm is None else f"{v.p_holm:.2g}"
        reason = v.reason.replace("|", "\\|")
        lines.append(f"| {v.model} | {v.metric}{unit and ''} | {_fmt(v.baseline, v.unit)}{unit} | "
                     f"{_fmt(v.candidate, v.unit)}{unit} | {_fmt_ratio(v)} | {p} | "
                     f"{_ICON[v.verdict]} | {reason} |")
    lockstep = any(v.design == "lockstep" and v.kind == "noisy" for v in report.verdicts)
    noisy_rule = (f"latency and CPU peak RSS: one ln(B/A) per lockstep round (A and B workers "
                  f"side by side), one-sided exact Wilcoxon signed-rank, Hodges–Lehmann ratio "
                  f"with Tukey {cfg.ci_level:.0%} CI; " if lockstep else
                  f"latency and CPU peak RSS: one value per fresh-process run, one-sided exact "
                  f"Mann–Whitney U on logs, Hodges–Lehmann ratio with Moses {cfg.ci_level:.0%} "
                  f"CI, ")
    lines += [
        "",
        f"Rules: params/GFLOPs exact (GFLOPs only with the same counter, version and convention); "
        f"CUDA peak allocated exact ±{cfg.cuda_memory_tol_mb:g} MiB; {noisy_rule}"
        f"Holm over {report.tests} "
        f"noisy test(s) at α={cfg.alpha:g}, minimum effect δ={cfg.delta_latency_cpu:.0%} CPU / "
        f"{cfg.delta_latency_cuda:.0%} GPU latency, {cfg.delta_memory_cpu:.0%} (≥{cfg.memory_floor_mb:g} MiB) "
        f"CPU RSS. Baseline/candidate of noisy metrics = median of the per-run values.",
    ]
    if report.mode == "compare" and report.baseline.get("kind") == "baseline":
        lines.append("")
        lines.append("Stored-baseline mode (weaker): the noise allowance comes from the "
                     "between-run spread recorded in the baseline (δ ≥ 3 × its robust SD); "
                     "no re-measurement confirms a failure.")
    for note in report.notes:
        lines.append(f"- {note}")
    return "\n".join(lines) + "\n"


def write_report(report: GateReport, out_dir: str | Path, on_inconclusive: str = "fail") -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = report.to_dict()
    data["exit_code"] = report.exit_code(on_inconclusive)
    json_path, md_path = out_dir / "verdict.json", out_dir / "verdict.md"
    json_path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    md_path.write_text(to_markdown(report, on_inconclusive), encoding="utf-8")
    return json_path, md_path
