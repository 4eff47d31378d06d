"""The runtimes plot: each model's speed-up over eager PyTorch on every other runtime it ran
on (eager median / runtime median, the same device, batch and threads), as horizontal bars.

A runtime whose output differed from eager's is drawn hollow: its time is not the same
model's time (:attr:`vitbench.records.Deployment.comparable`).
"""

from __future__ import annotations

from typing import Optional

from vitbench.report.merge import Column, MergedReport
from vitbench.records import ModelResult
from vitbench.report.plots.figures import Outcome, Plot, Skip
from vitbench.report.plots.style import OKABE_ITO, figure_legend, new_figure

NAME = "speedup_vs_eager"


def _median(result: Optional[ModelResult]) -> Optional[float]:
    return result.latency_median_ms if result is not None and result.status == "ok" else None


def _eager_of(report: MergedReport, column: Column) -> Optional[Column]:
    """The eager column of ``column``'s run, device, batch, dtype and threads."""
    for other in report.columns:
        if (other.runtime == "eager" and other.run_index == column.run_index
                and other.device == column.device and other.batch_size == column.batch_size
                and other.dtype == column.dtype and other.threads == column.threads):
            return other
    return None


def speedups(report: MergedReport) -> dict[str, dict[str, tuple[float, bool]]]:
    """column label → model → (eager median / runtime median, outputs comparable)."""
    found: dict[str, dict[str, tuple[float, bool]]] = {}
    for column in report.columns:
        eager = None if column.runtime == "eager" else _eager_of(report, column)
        if eager is None:
            continue
        for row in report.rows:
            base, ran = _median(row.cell(eager)), _median(row.cell(column))
            if base and ran:
                result = row.cell(column)
                comparable = result.deployment is None or result.deployment.comparable
                found.setdefault(column.label, {})[row.name] = (base / ran, comparable)
    return found


def plot_speedup_vs_eager(report: MergedReport) -> Outcome:
    """Bars of speed-up over eager per model, one bar per runtime."""
    found = speedups(report)
    if not found:
        return Skip(NAME, "needs rows timed on eager and on another runtime in one run "
                          "(vitbench run SUITE --runtime eager,onnxruntime,openvino)")
    models = [row.name for row in report.rows if any(row.name in v for v in found.values())]
    labels = list(found)
    fig, (ax,) = new_figure(width=7.0, height=max(3.0, 0.42 * len(models) * len(labels) ** 0.5 + 1.5))
    height = 0.8 / len(labels)
    for index, label in enumerate(labels):
        color = OKABE_ITO[index % len(OKABE_ITO)]
        ys, xs, solid = [], [], []
        for position, model in enumerate(models):
            if model in found[label]:
                value, comparable = found[label][model]
                ys.append(position + (index - (len(labels) - 1) / 2) * height)
                xs.append(value)
                solid.append(comparable)
        ax.barh(ys, xs, height=height * 0.9, color=[color if s else "none" for s in solid],
                edgecolor=color, label=label)
        for y, x in zip(ys, xs):
            ax.text(x, y, f" {x:.2f}×", va="center", fontsize=7)
    ax.axvline(1.0, color="0.3", linewidth=0.8)
    ax.set_yticks(range(len(models)), models)
    ax.invert_yaxis()
    ax.set_xlabel("speed-up over eager PyTorch (eager median / runtime median)")
    figure_legend(fig, ax)
    caption = ("Speed-up over eager PyTorch per model: eager's median latency divided by the "
               "runtime's, same device, batch and threads; above 1 the runtime is faster. "
               "Hollow bars: the runtime's output differed from eager's (not comparable).")
    return Plot(NAME, "Speed-up over eager, per runtime", caption, fig)
