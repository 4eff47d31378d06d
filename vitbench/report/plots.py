"""Plots of a (merged) run, with matplotlib's Agg backend: PNG and SVG, no display needed.

Each plot function takes a :class:`~vitbench.report.merge.MergedReport` and returns a
:class:`Plot`, or a :class:`Skip` that says which data was missing. Colours are the
Okabe–Ito palette (safe for the common colour-vision deficiencies) and every series also
differs by marker shape, so no plot relies on colour alone. Point labels are moved apart by
:func:`place_labels` so that model names do not overlap.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Union

import matplotlib

matplotlib.use("Agg")  # noqa: E402 - before pyplot; headless everywhere

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from vitbench.report.merge import Column, MergedReport, MergedRow  # noqa: E402
from vitbench.records import ModelResult  # noqa: E402

#: Okabe & Ito (2008), "Color Universal Design", in an order that keeps the first colours
#: far apart (yellow last: it is weak on white).
OKABE_ITO: tuple[str, ...] = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9",
                              "#000000", "#F0E442")
MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "*")

_STYLE: dict[str, Any] = {
    "font.size": 9.5, "axes.titlesize": 11, "axes.titleweight": "bold", "axes.labelsize": 9.5,
    "legend.fontsize": 8.5, "legend.frameon": False, "axes.spines.top": False,
    "axes.spines.right": False, "axes.grid": True, "grid.color": "0.9", "grid.linewidth": 0.8,
    "axes.axisbelow": True, "svg.fonttype": "path", "svg.hashsalt": "vitbench",
    "figure.dpi": 100, "savefig.dpi": 150, "axes.prop_cycle": matplotlib.cycler(color=OKABE_ITO),
}


@dataclass
class Plot:
    name: str
    title: str
    caption: str
    figure: Figure


@dataclass
class Skip:
    name: str
    reason: str


Outcome = Union[Plot, Skip]


# --- helpers -------------------------------------------------------------------------------

def _median(result: Optional[ModelResult]) -> Optional[float]:
    if result is None or result.status != "ok" or not result.latency_ms:
        return None
    return result.latency_ms.get("median")


def _new_figure(ncols: int = 1, width: float = 6.4, height: float = 4.6):
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(1, ncols, figsize=(width * ncols if ncols > 1 else width, height),
                                 squeeze=False, layout="constrained")
    return fig, list(axes[0])


def _apply_style(ax) -> None:
    ax.grid(True, color="0.9", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def place_labels(ax, xs: Sequence[float], ys: Sequence[float], labels: Sequence[str], *,
                 fontsize: float = 8, color: str = "0.15", max_iter: int = 300) -> list:
    """Label points without overlap: start up-right of each point, then push overlapping
    labels apart (and off other points) in display space; a label that ends up away from its
    point gets a thin leader line. Returns the text artists."""
    fig = ax.figure
    fig.canvas.draw()  # final limits and layout, so display coordinates hold
    renderer = fig.canvas.get_renderer()
    px_to_pt = 72.0 / fig.dpi
    points = ax.transData.transform(list(zip(xs, ys))) if len(xs) else []
    axes_box = ax.get_window_extent(renderer)
    texts, offsets = [], []
    for (x, y), label, (px, py) in zip(zip(xs, ys), labels, points):
        # Right of the point, unless that runs off the axes.
        text = ax.annotate(label, (x, y), xytext=(5, 3), textcoords="offset points",
                           fontsize=fontsize, color=color, ha="left", va="bottom", zorder=5)
        box = text.get_window_extent(renderer)
        if box.x1 > axes_box.x1:
            text.set_ha("right")
            text.xyann = (-5, 3)
        texts.append(text)
    pad = 2.0
    for _ in range(max_iter):
        boxes = [t.get_window_extent(renderer).expanded(1.0, 1.0).padded(pad) for t in texts]
        moves = [[0.0, 0.0] for _ in texts]
        moved = False
        for i, a in enumerate(boxes):
            for j in range(i + 1, len(boxes)):
                b = boxes[j]
                if a.x1 <= b.x0 or b.x1 <= a.x0 or a.y1 <= b.y0 or b.y1 <= a.y0:
                    continue
                overlap = min(a.y1, b.y1) - max(a.y0, b.y0)
                step = overlap / 2 + 0.5
                if (a.y0 + a.y1) >= (b.y0 + b.y1):
                    moves[i][1] += step
                    moves[j][1] -= step
                else:
                    moves[i][1] -= step
                    moves[j][1] += step
                moved = True
            for k, (px, py) in enumerate(points):
                if k == i:
                    continue
                if a.x0 - 3 <= px <= a.x1 + 3 and a.y0 - 3 <= py <= a.y1 + 3:
                    centre = (a.y0 + a.y1) / 2
                    moves[i][1] += (a.y1 - py + 4) if centre >= py else -(py - a.y0 + 4)
                    moves[i][1] *= 0.5
                    moved = True
        for text, (dx, dy), box in zip(texts, moves, boxes):
            if dx or dy:
                ox, oy = text.xyann
                new_y = oy + dy * px_to_pt
                # stay inside the axes
                height_pt = box.height * px_to_pt
                point_y = ax.transData.transform(text.xy)[1]
                top_limit = (axes_box.y1 - point_y) * px_to_pt - height_pt
                bottom_limit = (axes_box.y0 - point_y) * px_to_pt
                new_y = max(min(new_y, top_limit), bottom_limit)
                text.xyann = (ox, new_y)
        if not moved:
            break
    for text in texts:
        ox, oy = text.xyann
        if abs(oy - 3) > 8:
            start = ax.transData.transform(text.xy)
            box = text.get_window_extent(renderer)
            end_x = box.x0 if text.get_ha() == "left" else box.x1
            end_y = (box.y0 + box.y1) / 2
            inv = ax.transData.inverted()
            (x1, y1), (x2, y2) = inv.transform([start, (end_x, end_y)])
            ax.plot([x1, x2], [y1, y2], color="0.6", linewidth=0.6, zorder=4)
    return texts


def _figure_legend(fig, *axes) -> None:
    """One legend below the panels (never over the data), without duplicate entries."""
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                   ncol=min(len(handles), 4), frameon=False)


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


def _short_source(report: MergedReport) -> str:
    return report.title


def _column_series(report: MergedReport, column: Column, x: Callable[[MergedRow], Optional[float]]):
    xs, ys, names = [], [], []
    for row in report.rows:
        value, latency = x(row), _median(row.cell(column))
        if value is not None and latency is not None:
            xs.append(value)
            ys.append(latency)
            names.append(row.name)
    return xs, ys, names


# --- the plots -----------------------------------------------------------------------------

def plot_latency_vs_gflops(report: MergedReport) -> Outcome:
    """Measured latency against measured GFLOPs, one panel per device/setting."""
    name = "latency_vs_gflops"
    panels = [(c, *_column_series(report, c, lambda r: r.static.gflops)) for c in report.columns]
    panels = [p for p in panels if len(p[1]) >= 2]
    if not panels:
        return Skip(name, "fewer than two rows with both measured GFLOPs and latency")
    fig, axes = _new_figure(len(panels), width=5.6 if len(panels) > 1 else 6.8)
    for index, (ax, (column, xs, ys, names)) in enumerate(zip(axes, panels)):
        _apply_style(ax)
        ax.scatter(xs, ys, s=42, color=OKABE_ITO[index % 8], marker=MARKERS[index % 8],
                   edgecolor="white", linewidth=0.6, zorder=3)
        rho = _spearman(xs, ys)
        subtitle = f"{column.label}" + (f" — Spearman ρ = {rho:+.2f} (n={len(xs)})" if rho is not None
                                        else f" (n={len(xs)})")
        ax.set_title(subtitle, fontsize=9.5, fontweight="normal")
        ax.set_xlabel("GFLOPs per image (measured, 10⁹ MACs)")
        ax.set_ylabel(f"{column.device_label} latency, batch {column.batch_size} (ms, median)")
        ax.margins(0.15)
        place_labels(ax, xs, ys, names)
    fig.suptitle("Measured latency vs GFLOPs", fontweight="bold")
    return Plot(name, "Measured latency vs GFLOPs",
                "Each point is a model; equal GFLOPs can run at very different speeds. ρ is "
                "Spearman's rank correlation (1 = GFLOPs rank latency perfectly).", fig)


def _top1_points(report: MergedReport, cost: Callable[[MergedRow], Optional[float]]):
    out = []
    for row in report.rows:
        top1, value = row.static.reference.get("top1"), cost(row)
        if top1 is not None and value is not None:
            out.append((value, top1, row.name))
    return out


def _draw_pareto(ax, points, color: str, marker: str, label: str, hollow: Sequence[bool] = ()):
    front = pareto_front(points)
    xs, ys, names = zip(*points)
    fill = [not h for h in hollow] if hollow else [True] * len(points)
    for x, y, filled in zip(xs, ys, fill):
        ax.scatter([x], [y], s=42, marker=marker, zorder=3, linewidth=1.2,
                   facecolor=color if filled else "white", edgecolor=color)
    fx, fy, _ = zip(*front)
    ax.step(fx, fy, where="post", color="0.3" if len(front) else color, linewidth=1.2, alpha=0.8, zorder=2,
            label="Pareto front (best top-1 at or below this cost)")
    ax.scatter([], [], s=42, marker="o", color="0.3", label=label)
    return list(xs), list(ys), list(names)


def plot_top1_vs_latency(report: MergedReport) -> Outcome:
    """Printed top-1 against measured latency, per device/setting, with the Pareto front."""
    name = "top1_vs_latency"
    panels = []
    for column in report.columns:
        points = []
        for row in report.rows:
            top1, latency = row.static.reference.get("top1"), _median(row.cell(column))
            if top1 is not None and latency is not None:
                points.append((latency, top1, row.name))
        if len(points) >= 2:
            panels.append((column, points))
    if not panels:
        return Skip(name, "needs printed top-1 and measured latency for at least two rows")
    fig, axes = _new_figure(len(panels), width=5.6 if len(panels) > 1 else 6.8)
    for index, (ax, (column, points)) in enumerate(zip(axes, panels)):
        _apply_style(ax)
        xs, ys, names = _draw_pareto(ax, points, OKABE_ITO[index % 8], MARKERS[index % 8],
                                     "model (printed top-1, measured latency)")
        ax.set_title(column.label, fontsize=9.5, fontweight="normal")
        ax.set_xlabel(f"{column.device_label} latency, batch {column.batch_size} (ms, median)")
        ax.set_ylabel("ImageNet top-1 (%, as printed)")
        ax.margins(0.15)
        place_labels(ax, xs, ys, names)
    _figure_legend(fig, axes[0])
    fig.suptitle("Printed top-1 vs measured latency", fontweight="bold")
    return Plot(name, "Printed top-1 vs measured latency",
                "Top-1 as the paper printed it (vitbench measures no accuracy: random weights); "
                "latency measured here. Points on the line are not beaten on both axes.", fig)


def plot_top1_vs_gflops(report: MergedReport) -> Outcome:
    """Printed top-1 against GFLOPs (measured; printed for rows that could not be built)."""
    name = "top1_vs_gflops"

    def gflops(row: MergedRow) -> Optional[float]:
        return row.static.gflops if row.static.gflops is not None else row.static.reference.get(
            "gflops")

    points = _top1_points(report, gflops)
    if len(points) < 2:
        return Skip(name, "needs printed top-1 and GFLOPs for at least two rows")
    hollow = [next(r for r in report.rows if r.name == n).static.gflops is None
              for _, _, n in points]
    fig, (ax,) = _new_figure(1, width=7.2, height=5.0)
    _apply_style(ax)
    xs, ys, names = _draw_pareto(ax, points, OKABE_ITO[0], MARKERS[0], "measured GFLOPs",
                                 hollow=hollow)
    if any(hollow):
        ax.scatter([], [], s=42, marker=MARKERS[0], facecolor="white", edgecolor=OKABE_ITO[0],
                   linewidth=1.2, label="printed GFLOPs (model not built)")
    ax.set_xlabel("GFLOPs per image (10⁹ MACs)")
    ax.set_ylabel("ImageNet top-1 (%, as printed)")
    ax.set_title("Printed top-1 vs GFLOPs", fontweight="bold")
    ax.margins(0.12)
    _figure_legend(fig, ax)
    place_labels(ax, xs, ys, names)
    return Plot(name, "Printed top-1 vs GFLOPs",
                "Filled: GFLOPs measured by vitbench; hollow: the paper's GFLOPs for rows "
                "vitbench cannot build. Line: the Pareto front.", fig)


def plot_measured_vs_printed(report: MergedReport) -> Outcome:
    """Measured params and GFLOPs against the printed values, with y = x and the tolerance."""
    name = "measured_vs_printed"
    panels = []
    for key, measured_attr, label in (("params_m", "params_m", "Params (M)"),
                                      ("gflops", "gflops", "GFLOPs (10⁹ MACs)")):
        pts = []
        for row in report.rows:
            printed, measured = row.static.reference.get(key), getattr(row.static, measured_attr)
            if printed is not None and measured is not None:
                cmp = row.static.comparisons.get(key)
                pts.append((printed, measured, row.name, cmp.within_tolerance if cmp else None))
        if pts:
            panels.append((key, label, pts))
    if not panels:
        return Skip(name, "no row has both a printed and a measured params or GFLOPs value")
    fig, axes = _new_figure(len(panels), width=5.2, height=4.8)
    tolerance = max((r.static.tolerance_pct for r in report.rows), default=5.0)
    for ax, (key, label, pts) in zip(axes, panels):
        _apply_style(ax)
        lo = min(min(p[0], p[1]) for p in pts)
        hi = max(max(p[0], p[1]) for p in pts)
        span = [lo * 0.85, hi * 1.12]
        ax.plot(span, span, color="0.35", linewidth=1, zorder=1, label="y = x (measured = printed)")
        ax.fill_between(span, [v * (1 - tolerance / 100) for v in span],
                        [v * (1 + tolerance / 100) for v in span], color="0.85", zorder=0,
                        label=f"±{tolerance:g} % tolerance")
        inside = [p for p in pts if p[3] is not False]
        outside = [p for p in pts if p[3] is False]
        if inside:
            ax.scatter([p[0] for p in inside], [p[1] for p in inside], s=40, marker="o",
                       color=OKABE_ITO[0], edgecolor="white", zorder=3, label="within tolerance")
        if outside:
            ax.scatter([p[0] for p in outside], [p[1] for p in outside], s=46, marker="X",
                       color=OKABE_ITO[1], zorder=3, label="outside tolerance")
        ax.set_xlabel(f"{label}, printed")
        ax.set_ylabel(f"{label}, measured")
        ax.set_title(label.split(" (")[0], fontsize=10)
        if hi / max(lo, 1e-9) > 8:  # decades of model sizes: log axes spread the small ones
            ax.set_xscale("log")
            ax.set_yscale("log")
            for axis in (ax.xaxis, ax.yaxis):
                axis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1, 2, 5)))
                axis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
                axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlim(span)
        ax.set_ylim(span)
        ax.set_aspect("equal", adjustable="box")
        place_labels(ax, [p[0] for p in pts], [p[1] for p in pts], [p[2] for p in pts])
    _figure_legend(fig, *axes)
    fig.suptitle("Measured vs printed", fontweight="bold")
    return Plot(name, "Measured vs printed params and GFLOPs",
                "Points on the diagonal match the paper; the grey band is the comparison "
                "tolerance (widened per row to the printed precision).", fig)


def _sweep_points(row: MergedRow) -> list[tuple[int, float]]:
    """(batch size, throughput) pairs from a batch sweep a result may carry (read defensively:
    any list field of dicts with ``batch_size`` and ``throughput_img_s``)."""
    out = []
    for result in (row.static, *row.results):
        extra = getattr(result, "model_extra", None) or {}
        for value in extra.values():
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, dict) and item.get("batch_size") and item.get(
                            "throughput_img_s"):
                        out.append((int(item["batch_size"]), float(item["throughput_img_s"])))
    return out


def plot_throughput_vs_batch(report: MergedReport) -> Outcome:
    """Throughput against batch size, for models measured at several batch sizes."""
    name = "throughput_vs_batch"
    series: dict[tuple[str, str], dict[int, float]] = {}
    for row in report.rows:
        for column in report.columns:
            result = row.cell(column)
            if result is not None and result.status == "ok" and result.throughput_img_s:
                series.setdefault((row.name, column.device_label), {})[result.batch_size] = \
                    result.throughput_img_s
        for batch, throughput in _sweep_points(row):
            device = row.static.device
            label = {"cuda": "GPU", "cpu": "CPU"}.get(device, device.upper())
            series.setdefault((row.name, label), {})[batch] = throughput
    series = {k: v for k, v in series.items() if len(v) >= 2}
    if not series:
        return Skip(name, "no model was measured at two or more batch sizes on one device")
    devices = sorted({d for _, d in series})
    fig, axes = _new_figure(len(devices), width=5.6 if len(devices) > 1 else 6.8)
    for ax, device in zip(axes, devices):
        _apply_style(ax)
        ends_x, ends_y, ends_label = [], [], []
        for index, ((model, dev), points) in enumerate(sorted(series.items())):
            if dev != device:
                continue
            batches = sorted(points)
            values = [points[b] for b in batches]
            ax.plot(batches, values, marker=MARKERS[index % 8], color=OKABE_ITO[index % 8],
                    linewidth=1.4, label=model)
            ends_x.append(batches[-1])
            ends_y.append(values[-1])
            ends_label.append(model)
        ax.set_xscale("log", base=2)
        ticks = sorted({b for (_, dev), pts in series.items() if dev == device for b in pts})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlabel("batch size (images per forward pass, log scale)")
        ax.set_ylabel(f"{device} throughput (images/s)")
        ax.set_title(device, fontsize=9.5, fontweight="normal")
        ax.margins(0.12)
        ax.legend(loc="best")
    fig.suptitle("Throughput vs batch size", fontweight="bold")
    return Plot(name, "Throughput vs batch size",
                "Throughput = batch / median latency, from runs of the same suite at different "
                "batch sizes.", fig)


def _model_identity(result: ModelResult) -> str:
    return f"{result.model} {json.dumps(result.kwargs, sort_keys=True, default=str)}"


def plot_resolution_sweep(report: MergedReport) -> Outcome:
    """Latency and GFLOPs against input size, for one model measured at several sizes."""
    name = "resolution_sweep"
    groups: dict[str, dict[int, tuple[Optional[float], Optional[float]]]] = {}
    labels: dict[str, str] = {}
    first_column = report.columns[0] if report.columns else None
    for row in report.rows:
        candidates = [r for r in (row.static, *row.results) if r.status == "ok"]
        for result in candidates:
            pixels = result.image_size[0] * result.image_size[1]
            side = int(round(pixels ** 0.5))
            key = _model_identity(result)
            latency = _median(result) if result.batch_size == (
                first_column.batch_size if first_column else 1) else None
            current = groups.setdefault(key, {}).get(side, (None, None))
            groups[key][side] = (result.gflops or current[0], current[1] or latency)
            labels.setdefault(key, row.name)
    groups = {k: v for k, v in groups.items() if len(v) >= 2}
    if not groups:
        return Skip(name, "no model was measured at two or more input sizes")
    fig, axes = _new_figure(2, width=5.4)
    for index, (key, sizes) in enumerate(sorted(groups.items(), key=lambda kv: labels[kv[0]])):
        sides = sorted(sizes)
        for ax, position in zip(axes, (0, 1)):
            pts = [(s, sizes[s][position]) for s in sides if sizes[s][position] is not None]
            if pts:
                ax.plot(*zip(*pts), marker=MARKERS[index % 8], color=OKABE_ITO[index % 8],
                        linewidth=1.4, label=labels[key])
    latency_label = "latency (ms, median)"
    if first_column is not None:
        latency_label = (f"{first_column.device_label} latency, batch {first_column.batch_size} "
                         "(ms, median)")
    for ax, ylabel in zip(axes, ("GFLOPs per image (10⁹ MACs)", latency_label)):
        _apply_style(ax)
        ax.set_xlabel("input side (px; √(H·W) for non-square inputs)")
        ax.set_ylabel(ylabel)
    _figure_legend(fig, *axes)
    fig.suptitle("Cost vs input resolution", fontweight="bold")
    return Plot(name, "Cost vs input resolution",
                "Rows of one model (same builder and arguments) at several input sizes. Attention "
                "cost grows with the square of the token count.", fig)


PLOTTERS: tuple[Callable[[MergedReport], Outcome], ...] = (
    plot_latency_vs_gflops, plot_top1_vs_latency, plot_top1_vs_gflops, plot_measured_vs_printed,
    plot_throughput_vs_batch, plot_resolution_sweep)


def draw_all(report: MergedReport) -> tuple[list[Plot], list[tuple[str, str]]]:
    """Every plot the data allows, and (name, reason) for each one skipped."""
    drawn, skipped = [], []
    with plt.rc_context(_STYLE):
        for plotter in PLOTTERS:
            outcome = plotter(report)
            if isinstance(outcome, Plot):
                drawn.append(outcome)
            else:
                skipped.append((outcome.name, outcome.reason))
    return drawn, skipped


def render(figure: Figure, fmt: str) -> bytes:
    """The figure as PNG or SVG bytes (SVG without a date, so re-rendering is stable)."""
    buffer = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {}
    with plt.rc_context(_STYLE):
        figure.savefig(buffer, format=fmt, metadata=metadata, facecolor="white")
    return buffer.getvalue()


def close(figure: Figure) -> None:
    plt.close(figure)
