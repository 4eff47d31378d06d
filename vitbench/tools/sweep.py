"""How a model's cost grows with input resolution: GFLOPs (and optionally latency, memory) per
size, and the exponent of cost vs. token count fitted on a log-log scale.

For each size the model is built for that size (``img_size`` where the builder takes it) with
random weights and counted once with fvcore (batch 1, see :mod:`vitbench.measure.counting`). The
count is split by operator into

* **attention** — ``scaled_dot_product_attention`` plus activation-by-activation products
  (``matmul``, ``bmm``, ``einsum``, ``baddbmm``): Q·Kᵀ and A·V however the model spells them;
  linear layers trace as ``linear``/``addmm`` and are *not* attention (a model multiplying by
  a weight with ``@`` would count it here: say so when reading odd numbers);
* **rest** — everything else (projections, MLPs, convolutions).

Tokens are ``H·W / 16²`` (stride-16 grid). Any constant factor — pixels, tokens at stride
4 or 32 — only shifts the log-log intercept: the fitted **exponent** (slope of
``log cost`` vs ``log tokens``, least squares via :func:`scipy.stats.linregress`) is the
same. Exponent 1: cost linear in the number of tokens; 2: quadratic (global attention).
The local exponent between neighbouring sizes shows the trend as sizes grow.

With ``time=True`` each size also runs in its own worker process (:func:`vitbench.run.runner.run_worker`)
with a short protocol (few repeats), giving median latency and peak memory.

A ``python:`` model is searched after the installed packages in ``python_path``
(``--python-path``) and ``PYTHONPATH``, never the working directory, both when counting here
and when timing in workers (:mod:`vitbench.build.inprocess`).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from vitbench.errors import VitbenchError
from vitbench.files import write_atomic

#: fvcore by_operator keys counted as attention (query-key and attention-value products).
ATTENTION_OPS = ("scaled_dot_product_attention", "matmul", "bmm", "einsum", "baddbmm")

#: Tokens are pixels / TOKEN_STRIDE² (the exponent does not depend on this constant).
TOKEN_STRIDE = 16

SizeT = tuple[int, int]


class SweepError(VitbenchError):
    """A bad sweep request (size list, model)."""


@dataclass
class SweepPoint:
    """One model at one size."""

    height: int
    width: int
    tokens: float
    gflops: Optional[float] = None
    attention_gflops: Optional[float] = None
    params_m: Optional[float] = None
    latency_ms: Optional[float] = None
    peak_memory_mb: Optional[float] = None
    error: Optional[str] = None

    @property
    def rest_gflops(self) -> Optional[float]:
        if self.gflops is None or self.attention_gflops is None:
            return None
        return self.gflops - self.attention_gflops


@dataclass
class Fit:
    """Least-squares line through (log tokens, log cost)."""

    exponent: float
    r2: float
    points: int


@dataclass
class SweepResult:
    model: str
    kwargs: dict[str, Any]
    points: list[SweepPoint]
    fits: dict[str, Optional[Fit]] = field(default_factory=dict)
    local_exponents: list[Optional[float]] = field(default_factory=list)
    convention: str = "matmul-only"
    token_rule: str = f"tokens = H*W / {TOKEN_STRIDE}^2"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for point, raw in zip(self.points, data["points"]):
            raw["rest_gflops"] = point.rest_gflops
        return data


def parse_sizes(spec: str) -> list[SizeT]:
    """``224:1024:64`` (start:stop:step, stop included), ``224,384,512`` or ``512x1024,...``."""
    text = spec.strip().lower().replace("×", "x").replace(" ", "")
    if not text:
        raise SweepError("--image-size: empty")
    try:
        if ":" in text:
            parts = [int(p) for p in text.split(":")]
            if len(parts) != 3 or parts[2] <= 0 or parts[0] <= 0 or parts[1] < parts[0]:
                raise ValueError
            sides = list(range(parts[0], parts[1] + 1, parts[2]))
            sizes = [(s, s) for s in sides]
        else:
            sizes = []
            for item in text.split(","):
                hw = [int(v) for v in item.split("x")]
                if len(hw) == 1:
                    hw = hw * 2
                if len(hw) != 2 or min(hw) <= 0:
                    raise ValueError
                sizes.append((hw[0], hw[1]))
    except ValueError:
        raise SweepError(f"--image-size: expected START:STOP:STEP, N,N,... or HxW,..., got {spec!r}") from None
    if len(sizes) < 2:
        raise SweepError(f"--image-size: a sweep needs at least two sizes, got {spec!r}")
    if len(set(sizes)) != len(sizes):
        raise SweepError(f"--image-size: sizes repeat in {spec!r}")
    return sizes


def count_at(model: str, kwargs: dict[str, Any], size: SizeT,
             convention: str = "matmul-only") -> SweepPoint:
    """Build ``model`` for ``size`` and count total and attention GFLOPs (batch 1)."""
    import warnings

    import torch

    from vitbench.measure import counting
    from vitbench.build import zoo

    point = SweepPoint(height=size[0], width=size[1], tokens=size[0] * size[1] / TOKEN_STRIDE ** 2)
    try:
        torch.manual_seed(0)
        module = zoo.build_model(model, kwargs, size)
        point.params_m = counting.count_params(module) / 1e6
        analysis = counting.fvcore_analysis(module, zoo.example_inputs(module, 1, size), convention)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            by_op = analysis.by_operator()
        point.gflops = sum(by_op.values()) / 1e9
        point.attention_gflops = sum(v for k, v in by_op.items()
                                     if k.split("::")[-1] in ATTENTION_OPS) / 1e9
    except Exception as exc:  # noqa: BLE001 - one size failing is that point's error
        first = f"{exc.__class__.__name__}: {exc}".splitlines()[0]
        point.error = first[:300]
    return point


def fit_exponent(tokens: list[float], costs: list[Optional[float]]) -> Optional[Fit]:
    """Slope of log(cost) vs log(tokens); None with fewer than two positive points."""
    from scipy.stats import linregress

    pairs = [(math.log(t), math.log(c)) for t, c in zip(tokens, costs) if c and c > 0]
    if len(pairs) < 2 or len({x for x, _ in pairs}) < 2:
        return None
    xs, ys = zip(*pairs)
    if len(pairs) == 2:
        slope = (ys[1] - ys[0]) / (xs[1] - xs[0])
        return Fit(exponent=slope, r2=1.0, points=2)
    result = linregress(xs, ys)
    return Fit(exponent=float(result.slope), r2=float(result.rvalue ** 2), points=len(pairs))


def local_exponents(points: list[SweepPoint]) -> list[Optional[float]]:
    """d log GFLOPs / d log tokens between each point and the previous one (first: None)."""
    values: list[Optional[float]] = [None]
    for prev, cur in zip(points, points[1:]):
        if prev.gflops and cur.gflops and cur.tokens != prev.tokens:
            values.append(math.log(cur.gflops / prev.gflops) / math.log(cur.tokens / prev.tokens))
        else:
            values.append(None)
    return values


def _time_points(model: str, kwargs: dict[str, Any], points: list[SweepPoint], *,
                 threads: Optional[int], warmup: int, repeat: int, python_path: list[str],
                 on_point: Callable[[str], None]) -> None:
    from vitbench.config.plan import plan
    from vitbench.run.workers import run_worker
    from vitbench.config.spec import ModelEntry, Settings, Suite

    entries = [ModelEntry(name=f"{p.height}x{p.width}", model=model, kwargs=kwargs,
                          image_size=(p.height, p.width)) for p in points if p.error is None]
    if not entries:
        return
    suite = Suite(name="sweep", models=entries,
                  defaults=Settings(warmup=warmup, repeat=repeat, min_time_s=0, threads=threads))
    by_name = {f"{p.height}x{p.width}": p for p in points}
    for item in plan(suite):
        job = item.job.model_copy(update={"python_path": python_path})  # not the cwd
        if "count" in type(job).model_fields:  # time only: the sweep has counted already
            job = job.model_copy(update={"count": False})
        on_point(f"timing {item.entry.name}")
        row = run_worker(job)
        point = by_name[item.entry.name]
        if row.status != "ok":
            point.error = f"timing: {row.error}"
            continue
        point.latency_ms = row.latency_median_ms
        point.peak_memory_mb = row.peak_memory_mib


def sweep(model: str, sizes: list[SizeT], kwargs: Optional[dict[str, Any]] = None, *,
          convention: str = "matmul-only", time: bool = False, threads: Optional[int] = None,
          warmup: int = 2, repeat: int = 5, python_path: Sequence[str] = (),
          on_point: Callable[[str], None] = lambda message: None) -> SweepResult:
    """Count ``model`` at every size (and time it with ``time=True``); fit the exponents.
    ``python_path``: the folders searched for a ``python:`` model (``--python-path``)."""
    from vitbench.build.inprocess import PYTHON_PATH_HINT, command_line_path, use_in_process

    kwargs = dict(kwargs or {})
    folders = command_line_path(python_path)
    use_in_process(model, folders, PYTHON_PATH_HINT)
    points = []
    for size in sizes:
        on_point(f"counting {size[0]}x{size[1]}")
        points.append(count_at(model, kwargs, size, convention))
    if time:
        _time_points(model, kwargs, points, threads=threads, warmup=warmup, repeat=repeat,
                     python_path=folders, on_point=on_point)
    tokens = [p.tokens for p in points]
    result = SweepResult(model=model, kwargs=kwargs, points=points, convention=convention)
    result.fits = {
        "total": fit_exponent(tokens, [p.gflops for p in points]),
        "attention": fit_exponent(tokens, [p.attention_gflops for p in points]),
        "rest": fit_exponent(tokens, [p.rest_gflops for p in points]),
    }
    if time:
        result.fits["latency"] = fit_exponent(tokens, [p.latency_ms for p in points])
        result.fits["memory"] = fit_exponent(tokens, [p.peak_memory_mb for p in points])
    result.local_exponents = local_exponents(points)
    return result


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def write_outputs(results: list[SweepResult], out_dir: Path) -> dict[str, Path]:
    """``sweep.json``, ``sweep.csv`` and ``sweep.png`` (log-log cost vs tokens) in ``out_dir``,
    each through :func:`~vitbench.files.write_atomic` (a full disk: one-line DiskError)."""
    import json

    import pandas as pd

    paths = {"json": out_dir / "sweep.json", "csv": out_dir / "sweep.csv",
             "png": out_dir / "sweep.png"}
    write_atomic(paths["json"], json.dumps({
        "token_rule": f"tokens = H*W / {TOKEN_STRIDE}^2 (the exponent does not depend on it)",
        "attention_ops": list(ATTENTION_OPS),
        "results": [r.to_dict() for r in results]}, indent=2))
    rows = []
    for result in results:
        for point, local in zip(result.points, result.local_exponents):
            rows.append({"model": result.model, "height": point.height, "width": point.width,
                         "tokens": point.tokens, "params_m": point.params_m,
                         "gflops": point.gflops, "attention_gflops": point.attention_gflops,
                         "rest_gflops": point.rest_gflops, "local_exponent": local,
                         "latency_ms": point.latency_ms, "peak_memory_mb": point.peak_memory_mb,
                         "error": point.error})
    write_atomic(paths["csv"], pd.DataFrame(rows).to_csv(index=False))
    write_atomic(paths["png"], plot_png(results))
    return paths


def plot_png(results: list[SweepResult]) -> bytes:
    """``sweep.png``'s bytes: log-log cost vs tokens
    (:func:`vitbench.report.plots.sweep.plot_sweep`)."""
    import io

    from vitbench.report.plots.sweep import plot_sweep  # matplotlib: ~0.45 s, only when writing

    buffer = io.BytesIO()
    plot_sweep(results, TOKEN_STRIDE).savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()
