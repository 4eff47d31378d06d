"""Plots from small result files: what is drawn, what is skipped and why, label placement."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vitbench import report
from vitbench.report import plots
from vitbench.report.merge import load_runs, merge_runs
from vitbench.records import RunResult

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def b1_b4():
    runs, _ = load_runs([DATA / "report_cpu_b1.json", DATA / "report_cpu_b4.json"])
    return merge_runs(runs)


def test_pareto_front():
    points = [(1.0, 70.0, "a"), (2.0, 69.0, "b"), (2.0, 75.0, "c"), (3.0, 74.0, "d"),
              (4.0, 80.0, "e")]
    assert [p[2] for p in plots.pareto_front(points)] == ["a", "c", "e"]


def test_each_plot_draws_or_says_why(b1_b4):
    with plots.plot_style():
        outcomes = {p.__name__: p(b1_b4) for p in plots.PLOTTERS}
    drawn = {o.name for o in outcomes.values() if isinstance(o, plots.Plot)}
    skipped = {o.name: o.reason for o in outcomes.values() if isinstance(o, plots.Skip)}
    assert drawn == {"latency_vs_gflops", "top1_vs_latency", "top1_vs_gflops",
                     "measured_vs_printed", "throughput_vs_batch"}
    assert "two or more input sizes" in skipped["resolution_sweep"]
    fig = outcomes["plot_latency_vs_gflops"].figure
    ax = fig.axes[0]
    assert "GFLOPs" in ax.get_xlabel() and "(ms" in ax.get_ylabel()
    assert fig.get_suptitle()


def test_render_all_gives_images_and_reasons(b1_b4):
    drawn, skipped = plots.render_all(b1_b4, ("png", "svg"))
    assert [p.name for p in drawn] == ["latency_vs_gflops", "top1_vs_latency", "top1_vs_gflops",
                                       "measured_vs_printed", "throughput_vs_batch"]
    assert [name for name, _ in skipped] == ["resolution_sweep"]
    for plot in drawn:
        assert plot.images["png"][:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in plot.images["svg"][:2000]


def test_svg_bytes_are_stable():
    """No date and fixed ids: rendering the same data again gives the same file."""
    runs, _ = load_runs([DATA / "report_cpu_b4.json"])
    first, _ = plots.render_all(merge_runs(runs), ("svg",))
    again, _ = plots.render_all(merge_runs(runs), ("svg",))
    assert [p.images for p in again] == [p.images for p in first]


def test_resolution_sweep_from_rows_of_one_model():
    run = RunResult.load(DATA / "report_cpu_b4.json")
    bigger = [r.model_copy(update={"name": f"{r.name} @288", "image_size": (288, 288),
                                   "counts": r.counts.model_copy(
                                       update={"gmacs": r.gmacs * 1.65})})
              for r in run.results]
    run.results = run.results + bigger
    outcome = plots.plot_resolution_sweep(merge_runs([run]))
    assert isinstance(outcome, plots.Plot), getattr(outcome, "reason", "")


def test_labels_do_not_overlap():
    with plots.plot_style():
        fig, (ax,) = plots.new_figure()
        xs = [1.0, 1.01, 1.02, 1.0, 2.0, 1.01]
        ys = [5.0, 5.0, 5.01, 5.02, 7.0, 4.99]
        ax.scatter(xs, ys)
        ax.margins(0.3)
        texts = plots.place_labels(ax, xs, ys, [f"Model-{i}-long-name" for i in range(len(xs))])
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in texts]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b) or min(a.y1, b.y1) - max(a.y0, b.y0) < 1.0


def test_png_and_svg_files_from_a_small_result(tmp_path):
    small = RunResult.load(DATA / "report_cpu_b4.json")
    written = report.write_reports(small, tmp_path, formats=("png", "svg", "md"))
    names = {p.name for p in written}
    assert "latency_vs_gflops.png" in names and "latency_vs_gflops.svg" in names
    png = (tmp_path / "plots" / "latency_vs_gflops.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert b"<svg" in (tmp_path / "plots" / "measured_vs_printed.svg").read_bytes()[:2000]
    markdown = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert "![Measured latency vs GFLOPs](plots/latency_vs_gflops.png)" in markdown
    assert "throughput_vs_batch: not drawn" in markdown  # one batch size only


def test_plots_leave_pyplot_and_the_backend_alone():
    """The object-oriented API on an Agg canvas: drawing a report neither imports pyplot nor
    switches the process's matplotlib backend (here the SVG one, chosen by the environment)."""
    code = ("import sys, matplotlib; "
            "from vitbench.report import plots; from vitbench.report.plots import sweep; "
            "from vitbench.report.merge import load_runs, merge_runs; "
            f"runs, _ = load_runs([{str(DATA / 'report_cpu_b4.json')!r}]); "
            "plots.render_all(merge_runs(runs), ('png',)); "
            "print('matplotlib.pyplot' in sys.modules, matplotlib.get_backend().lower())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "MPLBACKEND": "svg"})
    assert result.stdout.split() == ["False", "svg"], result.stderr[-2000:]
