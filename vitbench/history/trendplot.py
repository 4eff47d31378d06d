"""Trend charts of the history: a metric over runs, one line per (model, environment), each
run's CI as a band, change points marked.

Points from different environments (``env_key``: machine, software, timing settings) are
never joined: each environment is its own line, with its own marker. The x axis is the run,
in time order over every run drawn, labelled by the run's commit (``+`` when dirty) or, for
imported runs that have none, its date.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Optional, Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from vitbench.history.changes import ChangePoint
from vitbench.history.record import METRICS
from vitbench.report.plots.style import MARKERS, OKABE_ITO, figure_legend, new_figure, plot_style

if TYPE_CHECKING:
    import pandas as pd

#: What the y axes say for each metric.
LABELS = {"latency_ms": "latency (ms, median)", "params_m": "params (M)",
          "gflops": "GFLOPs (GMACs)", "throughput_img_s": "throughput (img/s)",
          "peak_memory_mib": "peak memory (MiB)", "first_call_ms": "first call (ms)",
          "reserved_memory_mib": "reserved memory (MiB)", "foreign_cpu_pct": "foreign CPU (%)",
          "gpu_power_w": "GPU power (W)", "energy_j_per_img": "energy (J/img)"}
CHANGE_COLOR = {"regression": "#D55E00", "improvement": "#009E73"}


def run_axis(frame: "pd.DataFrame") -> tuple[dict[str, int], list[str]]:
    """Each run's x position (time order) and its tick label (short commit or date)."""
    runs = (frame[["run_id", "created_utc", "commit", "dirty"]]
            .drop_duplicates("run_id").sort_values(["created_utc", "run_id"], kind="stable"))
    positions, labels = {}, []
    for i, line in enumerate(runs.itertuples(index=False)):
        positions[line.run_id] = i
        commit = line.commit if isinstance(line.commit, str) and line.commit else None
        dirty = "+" if commit and line.dirty is True else ""
        labels.append(f"{commit[:7]}{dirty}" if commit else str(line.created_utc)[5:16]
                      .replace("T", " "))
    return positions, labels


def draw_metric(ax: Axes, points: "pd.DataFrame", positions: dict[str, int],
                changes: Sequence[ChangePoint] = (), *, legend: bool = True) -> None:
    """One metric's lines on ``ax``: a line per (model, env_key), CI bands, change points."""
    groups = list(points.groupby(["model", "env_key"], sort=True))
    marked: dict[int, int] = {}  # change points already labelled at each x
    for i, ((model, env), line) in enumerate(groups):
        line = line.dropna(subset=["value"])
        xs = [positions[r] for r in line["run_id"]]
        # past 8 lines the colours repeat with the next marker: no two lines look alike
        color = OKABE_ITO[i % len(OKABE_ITO)]
        marker = MARKERS[(i + i // len(OKABE_ITO)) % len(MARKERS)]
        label = model if points["env_key"].nunique() == 1 else f"{model} · {env[:6]}"
        ax.plot(xs, line["value"], color=color, marker=marker, markersize=4, linewidth=1.2,
                label=label if legend else None)
        band = line.dropna(subset=["ci_low", "ci_high"])
        if not band.empty:
            ax.fill_between([positions[r] for r in band["run_id"]], band["ci_low"],
                            band["ci_high"], color=color, alpha=0.18, linewidth=0,
                            label="95 % CI of the run's median" if legend and i == 0 else None)
        for change in changes:
            if change.model != model or change.env_key != env:
                continue
            x = positions.get(change.run_id)
            if x is None:
                continue
            ax.axvline(x - 0.5, color=CHANGE_COLOR[change.direction], linestyle="--",
                       linewidth=1.1, label=f"change point ({change.direction})" if legend
                       else None)
            marked[x] = marked.get(x, 0) + 1
            ax.annotate(f"{change.change_pct:+.1f} %", (x - 0.5, 1), xycoords=("data",
                        "axes fraction"), xytext=(3, -10 * marked[x]), textcoords="offset points",
                        fontsize=7.5, color=CHANGE_COLOR[change.direction])


def _ticks(ax: Axes, labels: list[str], most: int = 12) -> None:
    step = max(1, -(-len(labels) // most))
    ticks = list(range(0, len(labels), step))
    ax.set_xticks(ticks, [labels[t] for t in ticks], rotation=30, ha="right", fontsize=7.5)
    ax.set_xlim(-0.6, len(labels) - 0.4)


def plot_metric(frame: "pd.DataFrame", metric: str, changes: Sequence[ChangePoint] = (),
                title: Optional[str] = None) -> Figure:
    """A full-size chart of ``metric`` for every model (and environment) in ``frame``."""
    points = frame[frame["metric"] == metric]
    positions, labels = run_axis(frame)
    fig, (ax,) = new_figure(width=7.2, height=4.4)
    draw_metric(ax, points, positions, [c for c in changes if c.metric == metric])
    ax.set_ylabel(LABELS.get(metric, f"{metric} ({METRICS.get(metric, '')})"))
    ax.set_xlabel("run (commit, or date when the run has none)")
    ax.set_title(title or f"{LABELS.get(metric, metric)} over {len(labels)} runs")
    _ticks(ax, labels)
    figure_legend(fig, ax, ncol=3)
    return fig


def plot_small(points: "pd.DataFrame", positions: dict[str, int], labels: list[str],
               changes: Sequence[ChangePoint] = (), title: str = "") -> Figure:
    """A small chart for the dashboard: one model's metric, no legend."""
    fig, (ax,) = new_figure(width=3.3, height=2.1)
    draw_metric(ax, points, positions, changes, legend=False)
    ax.set_title(title, fontsize=8.5)
    ax.tick_params(labelsize=7)
    _ticks(ax, labels, most=6)
    return fig


def render(fig: Figure, fmt: str) -> bytes:
    """The figure as PNG or SVG bytes (drawn and rendered inside the report style)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, metadata={"Software": None} if fmt == "png" else
                {"Date": None, "Creator": None})
    return buffer.getvalue()


def write_metric_plots(frame: "pd.DataFrame", metrics: Sequence[str],
                       changes: Sequence[ChangePoint], out, formats: Sequence[str] = ("png",
                                                                                     "svg"),
                       stem: str = "trend") -> list:
    """``out/<stem>-<metric>.<fmt>`` for every metric with points; the paths written."""
    from vitbench.files import write_atomic

    written = []
    with plot_style():
        for metric in metrics:
            if not (frame["metric"] == metric).any():
                continue
            fig = plot_metric(frame, metric, changes)
            for fmt in formats:
                path = out / f"{stem}-{metric}.{fmt}"
                write_atomic(path, render(fig, fmt))
                written.append(path)
    return written
