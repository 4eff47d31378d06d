"""The measured-vs-printed plot, drawn as each row is judged: a Δ-% dot plot with one panel per
quantity (params, GFLOPs), the rows top to bottom in table order, each row's own allowed Δ as
a grey bar (its ``tolerance_pct``, widened to the printed precision: a printed 0.4 allows
±12.5 %) and its Δ as a dot (within) or an X (outside). A Δ far off the scale sits on the
axis edge as an arrowhead with its value written beside it, so one −52 % row does not squeeze
the others into a line.
"""

from __future__ import annotations

from typing import Optional, Sequence

from matplotlib import ticker
from matplotlib.patches import Patch

from vitbench.records import Comparison
from vitbench.report.merge import MergedReport, MergedRow
from vitbench.report.plots.figures import Outcome, Plot, Skip
from vitbench.report.plots.style import OKABE_ITO, figure_legend, new_figure

#: (comparison key, panel title) of each panel, left to right.
QUANTITIES: tuple[tuple[str, str], ...] = (("params_m", "Params"), ("gflops", "GFLOPs"))
#: Figure height per row (inches) and for the title, axis and legend around them.
ROW_HEIGHT, FRAME_HEIGHT = 0.26, 1.7
#: The legend's entries, in this order.
BAND, WITHIN, OUTSIDE, BEYOND = ("the row's allowed Δ (its tolerance)", "Δ within tolerance",
                                 "Δ outside tolerance", "Δ off the scale (value written)")


def judged(row: MergedRow, key: str) -> Optional[Comparison]:
    """The row's comparison of ``key`` when it has a Δ (built, with a printed value)."""
    comparison = row.static.comparisons.get(key)
    if comparison is None or comparison.delta_pct is None:
        return None
    return comparison


def axis_limit(tolerances: Sequence[float], deltas: Sequence[float]) -> float:
    """Half the width of the Δ axis (%): room for the widest bar and the deltas near it;
    deltas beyond ``max(3 × widest bar, 25 %)`` are left outside and drawn on the edge."""
    widest = max(tolerances, default=5.0)
    cap = max(3 * widest, 25.0)
    near = [abs(d) * 1.15 for d in deltas if abs(d) <= cap]
    return max([widest * 1.6, 6.0, *near])


def _signed(value: float, _position=None) -> str:
    return "0" if abs(value) < 1e-9 else f"{value:+g}"


def plot_measured_vs_printed(report: MergedReport) -> Outcome:
    """Each built row's Δ % against the printed params and GFLOPs, within its own band."""
    name = "measured_vs_printed"
    panels = [(key, title) for key, title in QUANTITIES
              if any(judged(r, key) for r in report.rows)]
    rows = [r for r in report.rows if any(judged(r, key) for key, _ in panels)]
    if not panels:
        return Skip(name, "no row has both a printed and a measured params or GFLOPs value")
    height = max(2.8, ROW_HEIGHT * len(rows) + FRAME_HEIGHT)
    fig, axes = new_figure(len(panels), width=4.0 if len(panels) > 1 else 5.6, height=height,
                           sharey=True)
    outside_color = OKABE_ITO[1]
    for ax, (key, title) in zip(axes, panels):
        points = [(i, c) for i, r in enumerate(rows) if (c := judged(r, key)) is not None]
        limit = axis_limit([c.tolerance_pct for _, c in points], [c.delta_pct for _, c in points])
        for i in range(0, len(rows), 2):  # zebra rows: the eye stays on one row at 30+
            ax.axhspan(i - 0.5, i + 0.5, color="0.965", zorder=0, linewidth=0)
        ax.barh([i for i, _ in points], [2 * c.tolerance_pct for _, c in points],
                left=[-c.tolerance_pct for _, c in points], height=0.62, color="0.82",
                zorder=1, label=BAND)
        ax.axvline(0, color="0.35", linewidth=0.9, zorder=2)
        within = [(i, c.delta_pct) for i, c in points if c.within_tolerance]
        outside = [(i, c.delta_pct) for i, c in points
                   if not c.within_tolerance and abs(c.delta_pct) <= limit]
        beyond = [(i, c.delta_pct) for i, c in points if abs(c.delta_pct) > limit]
        if within:
            ax.scatter([d for _, d in within], [i for i, _ in within], s=34, marker="o",
                       color=OKABE_ITO[0], edgecolor="white", linewidth=0.6, zorder=4,
                       label=WITHIN)
        if outside:
            ax.scatter([d for _, d in outside], [i for i, _ in outside], s=64, marker="X",
                       color=outside_color, edgecolor="white", linewidth=0.4, zorder=4,
                       label=OUTSIDE)
        for i, delta in outside:  # its value beside it: away from the band, unless at the edge
            right = (delta > 0) == (abs(delta) < 0.7 * limit)
            ax.annotate(f"{delta:+.1f} %", (delta, i), xytext=(7 if right else -7, 0),
                        textcoords="offset points", ha="left" if right else "right",
                        va="center", fontsize=7.5, color=outside_color, fontweight="bold",
                        zorder=6, bbox=dict(boxstyle="square,pad=0.1", facecolor="white",
                                            edgecolor="none", alpha=0.85))
        for i, delta in beyond:
            edge = limit if delta > 0 else -limit
            ax.scatter([edge], [i], s=58, marker=">" if delta > 0 else "<", color=outside_color,
                       zorder=5, clip_on=False, label=BEYOND)
            ax.annotate(f"{delta:+.0f} %" if abs(delta) >= 100 else f"{delta:+.1f} %",
                        (edge, i), xytext=(-7 if delta > 0 else 7, 0),
                        textcoords="offset points", ha="right" if delta > 0 else "left",
                        va="center", fontsize=7.5, color=outside_color, fontweight="bold",
                        zorder=6, bbox=dict(boxstyle="square,pad=0.1", facecolor="white",
                                            edgecolor="none", alpha=0.85))
        for i, row in enumerate(rows):
            if judged(row, key) is None:
                ax.annotate("no printed value" if key not in row.static.reference
                            else "not measured", (0, i), xytext=(4, 0),
                            textcoords="offset points", va="center", fontsize=7, color="0.5",
                            style="italic")
        ax.set_xlim(-limit, limit)
        ax.xaxis.set_major_locator(ticker.MaxNLocator(nbins=6, symmetric=True, steps=[1, 2, 5,
                                                                                     10]))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(_signed))
        ax.grid(False, axis="y")
        ax.tick_params(axis="y", length=0)
        ax.set_xlabel(f"Δ {title.lower() if title == 'Params' else title} (%), "
                      "measured vs printed")
        ax.set_title(title, fontsize=10)
    axes[0].set_yticks(range(len(rows)), [r.name for r in rows], fontsize=8.5)
    axes[0].set_ylim(len(rows) - 0.5, -0.5)  # first row on top, as in the table
    figure_legend(fig, *axes, ncol=2, order=(BAND, WITHIN, OUTSIDE, BEYOND))
    fig.suptitle("Measured vs printed: each row's Δ against its own tolerance",
                 fontweight="bold")
    left_out = len(report.rows) - len(rows)
    return Plot(name, "Measured vs printed params and GFLOPs",
                "Δ = (measured − printed) / printed, per row in table order. Grey bar: the Δ "
                "that row is allowed (its tolerance, default 5 %, widened to half a unit of "
                "the printed last digit: a printed 0.4 allows ±12.5 %). Dot: within; X: "
                "outside; an arrowhead on the edge: off the scale, value written."
                + (f" {left_out} row(s) without a measured and printed value are left out."
                   if left_out else ""), fig)
