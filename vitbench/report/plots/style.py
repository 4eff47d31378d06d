"""The look of every report plot: the palette, the markers and the rcParams, applied as one
style context around drawing and rendering (:func:`plot_style`), never to the global state.

Colours are the Okabe–Ito palette (safe for the common colour-vision deficiencies) and every
series also differs by marker shape, so no plot relies on colour alone.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import matplotlib
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: Okabe & Ito (2008), "Color Universal Design", in an order that keeps the first colours
#: far apart (yellow last: it is weak on white).
OKABE_ITO: tuple[str, ...] = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9",
                              "#000000", "#F0E442")
MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "*")

#: rcParams of every report plot. ``svg.hashsalt`` fixes the SVG ids, so re-rendering the
#: same data gives the same bytes.
STYLE: dict[str, Any] = {
    "font.size": 9.5, "axes.titlesize": 11, "axes.titleweight": "bold", "axes.labelsize": 9.5,
    "legend.fontsize": 8.5, "legend.frameon": False, "axes.spines.top": False,
    "axes.spines.right": False, "axes.grid": True, "grid.color": "0.9", "grid.linewidth": 0.8,
    "axes.axisbelow": True, "svg.fonttype": "path", "svg.hashsalt": "vitbench",
    "figure.dpi": 100, "savefig.dpi": 150, "axes.prop_cycle": matplotlib.cycler(color=OKABE_ITO),
}


@contextmanager
def plot_style() -> Iterator[None]:
    """:data:`STYLE` for the duration of the block. Draw *and* render inside it: matplotlib
    reads some settings when an artist is made (fonts, grid) and others when the figure is
    saved (``savefig.dpi``, the SVG settings)."""
    with matplotlib.rc_context(STYLE):
        yield


def new_figure(ncols: int = 1, width: float = 6.4, height: float = 4.6, *,
               sharey: bool = False) -> tuple[Figure, list[Axes]]:
    """A figure with ``ncols`` panels side by side (constrained layout) on an Agg canvas: no
    pyplot, no backend switch, nothing to close (the figure is freed like any object).
    ``sharey``: one y axis for all panels, labelled on the first only."""
    fig = Figure(figsize=(width * ncols if ncols > 1 else width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False, sharey=sharey)
    return fig, list(axes[0])


def figure_legend(fig: Figure, *axes: Axes, ncol: int = 4, order: Sequence[str] = ()) -> None:
    """One legend below the panels (never over the data), without duplicate entries; the
    labels in ``order`` first, in that order."""
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    rank = {label: i for i, label in enumerate(order)}
    handles = dict(sorted(handles.items(), key=lambda kv: rank.get(kv[0], len(rank))))
    if not handles:
        return
    renderer = fig.canvas.get_renderer()
    for columns in range(min(len(handles), ncol), 0, -1):  # the most columns that fit
        legend = fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                            ncol=columns, frameon=False)
        if columns == 1 or legend.get_window_extent(renderer).width <= fig.bbox.width:
            return
        legend.remove()
