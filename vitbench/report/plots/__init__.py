"""Plots of a (merged) run as PNG and SVG, with matplotlib's object-oriented API on the Agg
canvas: no pyplot, no backend switch, no display, no figures to close.

:data:`PLOTTERS` lists the report's plots (:mod:`~vitbench.report.plots.figures`; the
measured-vs-printed Δ plot is :mod:`~vitbench.report.plots.tolerance`);
:func:`render_all` draws each one the data allows and renders it, all inside one
:func:`~vitbench.report.plots.style.plot_style`. The resolution sweep's plot is in
:mod:`~vitbench.report.plots.sweep`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Callable, Iterable

from matplotlib.figure import Figure

from vitbench.report.merge import MergedReport
from vitbench.report.plots.figures import (Outcome, Plot, Skip, pareto_front,
                                           plot_latency_vs_gflops, plot_resolution_sweep,
                                           plot_throughput_vs_batch, plot_top1_vs_gflops,
                                           plot_top1_vs_latency)
from vitbench.report.plots.labels import place_labels
from vitbench.report.plots.style import MARKERS, OKABE_ITO, figure_legend, new_figure, plot_style
from vitbench.report.plots.runtimes import plot_speedup_vs_eager
from vitbench.report.plots.tolerance import plot_measured_vs_printed

__all__ = ["MARKERS", "OKABE_ITO", "PLOTTERS", "IMAGE_FORMATS", "Outcome", "Plot", "RenderedPlot",
           "Skip", "figure_legend", "new_figure", "pareto_front", "place_labels",
           "plot_latency_vs_gflops", "plot_measured_vs_printed", "plot_resolution_sweep",
           "plot_speedup_vs_eager", "plot_style", "plot_throughput_vs_batch",
           "plot_top1_vs_gflops",
           "plot_top1_vs_latency", "render_all"]

#: Every plot of a report, in the order the reports show them.
PLOTTERS: tuple[Callable[[MergedReport], Outcome], ...] = (
    plot_latency_vs_gflops, plot_top1_vs_latency, plot_top1_vs_gflops, plot_measured_vs_printed,
    plot_throughput_vs_batch, plot_resolution_sweep, plot_speedup_vs_eager)

#: The image formats :func:`render_all` writes.
IMAGE_FORMATS: tuple[str, ...] = ("png", "svg")


@dataclass
class RenderedPlot:
    """A drawn plot as image bytes, one entry per requested format."""

    name: str
    title: str
    caption: str
    images: dict[str, bytes] = field(default_factory=dict)


def _image(figure: Figure, fmt: str) -> bytes:
    """PNG or SVG bytes (SVG without a date, so re-rendering is stable)."""
    buffer = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {}
    figure.savefig(buffer, format=fmt, metadata=metadata, facecolor="white")
    return buffer.getvalue()


def render_all(report: MergedReport, formats: Iterable[str] = IMAGE_FORMATS,
               ) -> tuple[list[RenderedPlot], list[tuple[str, str]]]:
    """Every plot the data allows, rendered to each of ``formats`` (of :data:`IMAGE_FORMATS`),
    and (name, reason) for each plot skipped."""
    formats = tuple(formats)
    unknown = set(formats) - set(IMAGE_FORMATS)
    if unknown:
        raise ValueError(f"unknown image format(s) {sorted(unknown)}; known: {IMAGE_FORMATS}")
    drawn: list[RenderedPlot] = []
    skipped: list[tuple[str, str]] = []
    with plot_style():
        for plotter in PLOTTERS:
            outcome = plotter(report)
            if isinstance(outcome, Skip):
                skipped.append((outcome.name, outcome.reason))
                continue
            drawn.append(RenderedPlot(outcome.name, outcome.title, outcome.caption,
                                      {fmt: _image(outcome.figure, fmt) for fmt in formats}))
    return drawn, skipped
