"""The plot of ``vitbench sweep``: cost against token count on log-log axes, where the slope
is the exponent :mod:`vitbench.tools.sweep` fits. Matplotlib's default look (not the report
style), as the sweep has always drawn it.
"""

from __future__ import annotations

from typing import Any, Sequence

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _loglog(ax: Axes, ylabel: str, title: str, token_stride: int) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"tokens (H·W / {token_stride}²)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)


def plot_sweep(results: Sequence[Any], token_stride: int) -> Figure:
    """Log-log GFLOPs (solid) and attention GFLOPs (dashed) vs tokens; latency if timed.

    ``results`` are :class:`vitbench.tools.sweep.SweepResult` (``model``, ``points``,
    ``fits``); ``token_stride`` is the patch stride the tokens were counted with. Render the
    figure with ``figure.savefig(buffer, format="png", dpi=120)`` and write the bytes with
    :func:`vitbench.files.write_atomic`.
    """
    timed = any(p.latency_ms for r in results for p in r.points)
    fig = Figure(figsize=(12 if timed else 7, 5))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2 if timed else 1, squeeze=False)
    ax = axes[0][0]
    for index, result in enumerate(results):
        color = f"C{index}"
        pts = [p for p in result.points if p.gflops]
        fit = result.fits.get("total")
        label = result.model + (f"  (exp {fit.exponent:.2f})" if fit else "")
        ax.plot([p.tokens for p in pts], [p.gflops for p in pts], "o-", color=color, label=label)
        att = [p for p in pts if p.attention_gflops]
        if att:
            afit = result.fits.get("attention")
            ax.plot([p.tokens for p in att], [p.attention_gflops for p in att], "x--", color=color,
                    label="  attention" + (f" (exp {afit.exponent:.2f})" if afit else ""))
    _loglog(ax, "GFLOPs (10⁹ MACs, batch 1)", "Cost vs. resolution (log-log; slope = exponent)",
            token_stride)
    if timed:
        ax2 = axes[0][1]
        for index, result in enumerate(results):
            pts = [p for p in result.points if p.latency_ms]
            fit = result.fits.get("latency")
            ax2.plot([p.tokens for p in pts], [p.latency_ms for p in pts], "o-", color=f"C{index}",
                     label=result.model + (f"  (exp {fit.exponent:.2f})" if fit else ""))
        _loglog(ax2, "median latency, ms (batch 1)", "Latency vs. resolution (log-log)",
                token_stride)
    fig.tight_layout()
    return fig
