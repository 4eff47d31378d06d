"""The report's plotters: each takes a :class:`~vitbench.report.merge.MergedReport` and returns
a :class:`Plot` (a figure with its title and caption) or a :class:`Skip` that says which data
was missing.

Draw inside :func:`~vitbench.report.plots.style.plot_style` (as
:func:`vitbench.report.plots.render_all` does) for the report's look. Point labels are placed
by :func:`~vitbench.report.plots.labels.place_labels` so that model names do not overlap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Optional, Sequence, Union

from matplotlib import ticker
from matplotlib.figure import Figure

from vitbench.records import ModelResult
from vitbench.report.merge import Column, MergedReport, MergedRow
from vitbench.report.plots.labels import place_labels
from vitbench.report.plots.style import MARKERS, OKABE_ITO, figure_legend, new_figure


@dataclass
class Plot:
    """A drawn plot: its file stem, the title and caption the reports print, the figure."""

    name: str
    title: str
    caption: str
    figure: Figure


@dataclass
class Skip:
    """A plot the data does not allow, and which data was missing."""

    name: str
    reason: str


Outcome = Union[Plot, Skip]


# --- helpers -------------------------------------------------------------------------------

def _median(result: Optional[ModelResult]) -> Optional[float]:
    if result is None or result.status != "ok":
        return None
    return result.latency_median_ms


class Timed(NamedTuple):
    """A measured latency as the plots draw it: the median, its 95 % CI, and the flag."""

    median: float
    low: float
    high: float
    unstable: bool


def timed(result: Optional[ModelResult]) -> Optional[Timed]:
    """The median latency of an ok row with its 95 % CI (None: not timed)."""
    if result is None or result.status != "ok" or result.latency_summary is None:
        return None
    s = result.latency_summary
    return Timed(s.median, min(s.ci_low, s.median), max(s.ci_high, s.median), bool(s.unstable))


#: The legend's words for the whiskers and the hollow markers of every latency plot.
CI_LABEL = "median; whiskers: its 95 % CI"
UNSTABLE_LABEL = "unstable latency (hollow)"
CI_CAPTION = ("Whiskers: the 95 % confidence interval of the median latency; hollow markers: "
              "rows flagged unstable (the CI wider than ±5 %, or the worker processes "
              "disagree).")


def whisker_points(xs: Sequence[float], ys: Sequence[float], whiskers: Sequence[Timed], *,
                   on: str = "y", steps: int = 8) -> list[list[tuple[float, float]]]:
    """Points along each whisker, for :func:`place_labels` to keep the other labels off."""
    out = []
    for x, y, t in zip(xs, ys, whiskers):
        along = [t.low + (t.high - t.low) * k / steps for k in range(steps + 1)]
        out.append([(x, v) for v in along] if on == "y" else [(v, y) for v in along])
    return out


def draw_timed(ax, xs: Sequence[float], ys: Sequence[float], whiskers: Sequence[Timed], *,
               color: str, marker: str, on: str = "y", ci_label: str = CI_LABEL) -> None:
    """Markers with 95 % CI whiskers ``on`` the latency axis (``x`` or ``y``); unstable rows
    hollow. Labelled once per kind, for :func:`figure_legend`."""
    labelled = set()
    for x, y, t in zip(xs, ys, whiskers):
        error = [[t.median - t.low], [t.high - t.median]]
        label = UNSTABLE_LABEL if t.unstable else ci_label
        ax.errorbar([x], [y], **{f"{on}err": error}, fmt=marker, markersize=6.5,
                    markerfacecolor="white" if t.unstable else color, markeredgecolor=color,
                    markeredgewidth=1.3 if t.unstable else 0.6, ecolor=color, elinewidth=1.0,
                    capsize=2.5, zorder=3, label=None if label in labelled else label)
        labelled.add(label)


def pareto_front(points: Sequence[tuple[float, float, Any]]) -> list[tuple[float, float, Any]]:
    """Points not beaten by another with lower-or-equal cost (x) and higher-or-equal top-1
    (y); sorted by cost."""
    front, best = [], float("-inf")
    for x, y, tag in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y, tag))
            best = y
    return front


def _spearman(xs: Sequence[float], ys: Sequence[float]) -> Optional[float]:
    if len(xs) < 3:
        return None
    from scipy.stats import spearmanr

    value = spearmanr(xs, ys).statistic
    return None if value != value else float(value)  # NaN for constant input


def _column_series(report: MergedReport, column: Column, x: Callable[[MergedRow], Optional[float]]):
    xs, ys, names, whiskers = [], [], [], []
    for row in report.rows:
        value, latency = x(row), timed(row.cell(column))
        if value is not None and latency is not None:
            xs.append(value)
            ys.append(latency.median)
            names.append(row.name)
            whiskers.append(latency)
    return xs, ys, names, whiskers


# --- the plots -----------------------------------------------------------------------------

def plot_latency_vs_gflops(report: MergedReport) -> Outcome:
    """Measured latency (median, 95 % CI whiskers, unstable hollow) against measured GFLOPs,
    one panel per device/setting."""
    name = "latency_vs_gflops"
    panels = [(c, *_column_series(report, c, lambda r: r.static.gmacs)) for c in report.columns]
    panels = [p for p in panels if len(p[1]) >= 2]
    if not panels:
        return Skip(name, "fewer than two rows with both measured GFLOPs and latency")
    fig, axes = new_figure(len(panels), width=5.6 if len(panels) > 1 else 6.8)
    for index, (ax, (column, xs, ys, names, whiskers)) in enumerate(zip(axes, panels)):
        draw_timed(ax, xs, ys, whiskers, color=OKABE_ITO[index % 8], marker=MARKERS[index % 8])
        # rank by the reference-relative latency when every point has one: it repeats
        cells = {r.name: r.cell(column) for r in report.rows}
        relative = [cells[n].relative.ratio for n in names if cells[n].relative is not None]
        ranked = relative if len(relative) == len(names) else ys
        rho = _spearman(xs, ranked)
        subtitle = f"{column.label}" + (f" — Spearman ρ = {rho:+.2f}"
                                        f"{' (× ref)' if ranked is relative else ''} (n={len(xs)})"
                                        if rho is not None
                                        else f" (n={len(xs)})")
        ax.set_title(subtitle, fontsize=9.5, fontweight="normal")
        ax.set_xlabel("GFLOPs per image (measured, 10⁹ MACs)")
        ax.set_ylabel(f"{column.device_label} latency, batch {column.batch_size} (ms, median)")
        ax.margins(0.15)
        place_labels(ax, xs, ys, names, avoid=whisker_points(xs, ys, whiskers))
    figure_legend(fig, *axes)
    fig.suptitle("Measured latency vs GFLOPs", fontweight="bold")
    return Plot(name, "Measured latency vs GFLOPs",
                "Each point is a model; equal GFLOPs can run at very different speeds. ρ is "
                "Spearman's rank correlation (1 = GFLOPs rank latency perfectly). "
                + CI_CAPTION, fig)


def _top1_points(report: MergedReport, cost: Callable[[MergedRow], Optional[float]]):
    out = []
    for row in report.rows:
        top1, value = row.static.reference.get("top1"), cost(row)
        if top1 is not None and value is not None:
            out.append((value, top1, row.name))
    return out


def _draw_pareto(ax, points, color: str, marker: str, label: str, hollow: Sequence[bool] = (),
                 whiskers: Sequence[Timed] = ()):
    """Points, the Pareto front through them; with ``whiskers`` the points are latencies
    (x) drawn by :func:`draw_timed`."""
    front = pareto_front(points)
    xs, ys, names = zip(*points)
    if whiskers:
        draw_timed(ax, xs, ys, whiskers, color=color, marker=marker, on="x")
    else:
        fill = [not h for h in hollow] if hollow else [True] * len(points)
        for x, y, filled in zip(xs, ys, fill):
            ax.scatter([x], [y], s=42, marker=marker, zorder=3, linewidth=1.2,
                       facecolor=color if filled else "white", edgecolor=color)
        ax.scatter([], [], s=42, marker="o", color="0.3", label=label)
    fx, fy, _ = zip(*front)
    ax.step(fx, fy, where="post", color="0.3", linewidth=1.2, alpha=0.8, zorder=2,
            label="Pareto front (best top-1 at or below this cost)")
    return list(xs), list(ys), list(names)


def plot_top1_vs_latency(report: MergedReport) -> Outcome:
    """Printed top-1 against measured latency (median, 95 % CI whiskers, unstable hollow),
    per device/setting, with the Pareto front."""
    name = "top1_vs_latency"
    panels = []
    for column in report.columns:
        points = _top1_points(report, lambda row, column=column: _median(row.cell(column)))
        if len(points) >= 2:
            by_name = {r.name: timed(r.cell(column)) for r in report.rows}
            panels.append((column, points, [by_name[n] for _, _, n in points]))
    if not panels:
        return Skip(name, "needs printed top-1 and measured latency for at least two rows")
    fig, axes = new_figure(len(panels), width=5.6 if len(panels) > 1 else 6.8)
    for index, (ax, (column, points, whiskers)) in enumerate(zip(axes, panels)):
        xs, ys, names = _draw_pareto(ax, points, OKABE_ITO[index % 8], MARKERS[index % 8],
                                     "", whiskers=whiskers)
        ax.set_title(column.label, fontsize=9.5, fontweight="normal")
        ax.set_xlabel(f"{column.device_label} latency, batch {column.batch_size} (ms, median)")
        ax.set_ylabel("ImageNet top-1 (%, as printed)")
        ax.margins(0.15)
        place_labels(ax, xs, ys, names, avoid=whisker_points(xs, ys, whiskers, on="x"))
    figure_legend(fig, *axes)
    fig.suptitle("Printed top-1 vs measured latency", fontweight="bold")
    return Plot(name, "Printed top-1 vs measured latency",
                "Top-1 as the paper printed it (vitbench measures no accuracy: random weights); "
                "latency measured here. Points on the line are not beaten on both axes. "
                + CI_CAPTION, fig)


def plot_top1_vs_gflops(report: MergedReport) -> Outcome:
    """Printed top-1 against GFLOPs (measured; printed for rows that could not be built)."""
    name = "top1_vs_gflops"

    def gmacs(row: MergedRow) -> Optional[float]:
        return row.static.gmacs if row.static.gmacs is not None else row.static.reference.get(
            "gflops")

    points = _top1_points(report, gmacs)
    if len(points) < 2:
        return Skip(name, "needs printed top-1 and GFLOPs for at least two rows")
    hollow = [next(r for r in report.rows if r.name == n).static.gmacs is None
              for _, _, n in points]
    fig, (ax,) = new_figure(1, width=7.2, height=5.0)
    xs, ys, names = _draw_pareto(ax, points, OKABE_ITO[0], MARKERS[0], "measured GFLOPs",
                                 hollow=hollow)
    if any(hollow):
        ax.scatter([], [], s=42, marker=MARKERS[0], facecolor="white", edgecolor=OKABE_ITO[0],
                   linewidth=1.2, label="printed GFLOPs (model not built)")
    ax.set_xlabel("GFLOPs per image (10⁹ MACs)")
    ax.set_ylabel("ImageNet top-1 (%, as printed)")
    ax.set_title("Printed top-1 vs GFLOPs", fontweight="bold")
    ax.margins(0.12)
    figure_legend(fig, ax)
    place_labels(ax, xs, ys, names)
    return Plot(name, "Printed top-1 vs GFLOPs",
                "Filled: GFLOPs measured by vitbench; hollow: the paper's GFLOPs for rows "
                "vitbench cannot build. Line: the Pareto front.", fig)


def plot_throughput_vs_batch(report: MergedReport) -> Outcome:
    """Throughput against batch size, for models measured at several batch sizes."""
    name = "throughput_vs_batch"
    series: dict[tuple[str, str], dict[int, Timed]] = {}
    for row in report.rows:
        for column in report.columns:
            result = row.cell(column)
            latency, rate = timed(result), result.throughput_img_s if result else None
            if latency is not None and rate:
                # img/s at the median, and at the ends of the median's CI (slow end first)
                series.setdefault((row.name, column.device_label), {})[result.batch_size] = \
                    Timed(rate, rate * latency.median / latency.high,
                          rate * latency.median / latency.low, latency.unstable)
    series = {k: v for k, v in series.items() if len(v) >= 2}
    if not series:
        return Skip(name, "no model was measured at two or more batch sizes on one device")
    devices = sorted({d for _, d in series})
    fig, axes = new_figure(len(devices), width=5.6 if len(devices) > 1 else 6.8)
    for ax, device in zip(axes, devices):
        ends_x, ends_y, ends_label = [], [], []
        for index, ((model, dev), points) in enumerate(sorted(series.items())):
            if dev != device:
                continue
            batches = sorted(points)
            values = [points[b].median for b in batches]
            ax.plot(batches, values, color=OKABE_ITO[index % 8], linewidth=1.4)
            ax.plot([], [], color=OKABE_ITO[index % 8], linewidth=1.4, label=model,
                    marker=MARKERS[index % 8])  # the legend's entry: line and marker
            draw_timed(ax, batches, values, [points[b] for b in batches],
                       color=OKABE_ITO[index % 8], marker=MARKERS[index % 8],
                       ci_label="img/s at the median; whiskers: from its 95 % CI")
            ends_x.append(batches[-1])
            ends_y.append(values[-1])
            ends_label.append(model)
        ax.set_xscale("log", base=2)
        ticks = sorted({b for (_, dev), pts in series.items() if dev == device for b in pts})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.xaxis.set_minor_locator(ticker.NullLocator())
        ax.set_xlabel("batch size (images per forward pass, log scale)")
        ax.set_ylabel(f"{device} throughput (images/s)")
        ax.set_title(device, fontsize=9.5, fontweight="normal")
        ax.margins(0.12)
    figure_legend(fig, *axes)
    fig.suptitle("Throughput vs batch size", fontweight="bold")
    return Plot(name, "Throughput vs batch size",
                "Throughput = batch / median latency, from runs of the same suite at different "
                "batch sizes. " + CI_CAPTION, fig)


def _model_identity(result: ModelResult) -> str:
    return f"{result.model} {json.dumps(result.kwargs, sort_keys=True, default=str)}"


def plot_resolution_sweep(report: MergedReport) -> Outcome:
    """Latency and GFLOPs against input size, for one model measured at several sizes."""
    name = "resolution_sweep"
    groups: dict[str, dict[int, tuple[Optional[float], Optional[Timed]]]] = {}
    labels: dict[str, str] = {}
    first_column = report.columns[0] if report.columns else None
    for row in report.rows:
        candidates = [r for r in (row.static, *row.results) if r.status == "ok"]
        for result in candidates:
            pixels = result.image_size[0] * result.image_size[1]
            side = int(round(pixels ** 0.5))
            key = _model_identity(result)
            latency = timed(result) if result.batch_size == (
                first_column.batch_size if first_column else 1) else None
            current = groups.setdefault(key, {}).get(side, (None, None))
            groups[key][side] = (result.gmacs or current[0], current[1] or latency)
            labels.setdefault(key, row.name)
    groups = {k: v for k, v in groups.items() if len(v) >= 2}
    if not groups:
        return Skip(name, "no model was measured at two or more input sizes")
    fig, axes = new_figure(2, width=5.4)
    for index, (key, sizes) in enumerate(sorted(groups.items(), key=lambda kv: labels[kv[0]])):
        sides = sorted(sizes)
        for ax, position in zip(axes, (0, 1)):
            pts = [(s, sizes[s][position]) for s in sides if sizes[s][position] is not None]
            if not pts:
                continue
            xs = [x for x, _ in pts]
            ys = [v.median if position else v for _, v in pts]
            ax.plot(xs, ys, marker=MARKERS[index % 8], color=OKABE_ITO[index % 8],
                    linewidth=1.4, label=labels[key], markersize=0 if position else 6)
            if position:
                draw_timed(ax, xs, ys, [v for _, v in pts], color=OKABE_ITO[index % 8],
                           marker=MARKERS[index % 8])
    latency_label = "latency (ms, median)"
    if first_column is not None:
        latency_label = (f"{first_column.device_label} latency, batch {first_column.batch_size} "
                         "(ms, median)")
    for ax, ylabel in zip(axes, ("GFLOPs per image (10⁹ MACs)", latency_label)):
        ax.set_xlabel("input side (px; √(H·W) for non-square inputs)")
        ax.set_ylabel(ylabel)
    figure_legend(fig, *axes)
    fig.suptitle("Cost vs input resolution", fontweight="bold")
    return Plot(name, "Cost vs input resolution",
                "Rows of one model (same builder and arguments) at several input sizes. Attention "
                "cost grows with the square of the token count. " + CI_CAPTION, fig)
