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
    assert [name for name, _ in skipped] == ["resolution_sweep", "speedup_vs_eager"]
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


# --- measured vs printed: each row against its own tolerance -------------------------------

def many_rows(count: int = 33) -> RunResult:
    """``count`` rows cycling the real run's built rows (each keeps its printed precision, so
    its own widened tolerance); row 3 measures 52 % under its printed GFLOPs, row 5 9 % over
    its printed params: one far off the scale, one just outside its band."""
    run = RunResult.load(DATA / "report_cpu_b1.json")
    built = [r for r in run.results if r.status == "ok"]
    rows = [built[i % len(built)].model_copy(deep=True) for i in range(count)]
    for i, row in enumerate(rows):
        row.name = f"{row.name} #{i}"
    for index, key, attr, factor in ((3, "gflops", "gmacs", 0.48), (5, "params_m", "params", 1.09)):
        row = rows[index]
        value = row.reference[key] * factor * (1e6 if attr == "params" else 1)
        row.counts = row.counts.model_copy(update={attr: value})
        row.compare_to_reference()
    run.results = rows
    return run


def _bars(ax):
    from matplotlib.container import BarContainer

    (bars,) = [c for c in ax.containers if isinstance(c, BarContainer)]
    return list(bars)


@pytest.fixture(scope="module")
def dot_plot():
    run = many_rows()
    with plots.plot_style():
        outcome = plots.plot_measured_vs_printed(merge_runs([run]))
        outcome.figure.canvas.draw()
    return run, outcome


def test_measured_vs_printed_bands_are_each_rows_own_tolerance(dot_plot):
    run, outcome = dot_plot
    assert outcome.name == "measured_vs_printed"
    fig = outcome.figure
    params_ax, gflops_ax = fig.axes[:2]
    assert [t.get_text() for t in params_ax.get_yticklabels()] == [r.name for r in run.results]
    for ax, key in ((params_ax, "params_m"), (gflops_ax, "gflops")):
        tolerances = [r.comparisons[key].tolerance_pct for r in run.results]
        bars = _bars(ax)
        assert len(bars) == len(run.results)
        for bar, row, tolerance in zip(bars, run.results, tolerances):
            assert bar.get_width() == pytest.approx(2 * tolerance), row.name
            assert bar.get_x() == pytest.approx(-tolerance)
    # one decimal on small GFLOPs widens their bands: 0.4 allows ±12.5 %, not the 5 % default
    assert len({round(r.comparisons["gflops"].tolerance_pct, 3) for r in run.results}) == 4
    first = run.results[0]
    assert first.reference["gflops"] == 0.4
    assert _bars(gflops_ax)[0].get_width() == pytest.approx(25.0)


def test_measured_vs_printed_marks_outside_and_clips_far_deltas(dot_plot):
    run, outcome = dot_plot
    params_ax, gflops_ax = outcome.figure.axes[:2]
    left, right = gflops_ax.get_xlim()
    assert left == -right and 12.5 < right < 52.0  # room for ±12.5 %; −52 % does not set it
    texts = [t.get_text() for t in gflops_ax.texts]
    assert "-52.0 %" in texts
    edge = [c for c in gflops_ax.collections
            if len(c.get_offsets()) and c.get_offsets()[0][0] == pytest.approx(left)]
    assert edge and edge[0].get_offsets()[0][1] == 3  # row 3, on the left edge
    crosses = [c for c in params_ax.collections if c.get_label() == "Δ outside tolerance"]
    assert [tuple(o) for o in crosses[0].get_offsets()] == [pytest.approx((9.0, 5))]
    legend = [t.get_text() for t in outcome.figure.legends[0].get_texts()]
    assert "Δ within tolerance" in legend and "Δ outside tolerance" in legend
    assert any("allowed Δ" in label for label in legend)


def test_measured_vs_printed_is_readable_at_33_rows(dot_plot):
    """The figure grows with the rows: names do not overlap and nothing leaves the figure."""
    _, outcome = dot_plot
    fig = outcome.figure
    assert fig.get_size_inches()[1] >= 0.25 * 33
    renderer = fig.canvas.get_renderer()
    labels = [t.get_window_extent(renderer) for t in fig.axes[0].get_yticklabels()]
    for a, b in zip(labels, labels[1:]):
        assert a.y0 >= b.y1 - 0.5 or b.y0 >= a.y1 - 0.5  # stacked, not overlapping
    tight = fig.get_tightbbox(renderer)
    width, height = fig.get_size_inches()
    assert tight.x0 >= -0.01 and tight.y0 >= -0.01
    assert tight.x1 <= width + 0.01 and tight.y1 <= height + 0.01


# --- latency plots: the median's CI as whiskers, unstable rows hollow ----------------------

@pytest.mark.parametrize("plotter,axis", [(plots.plot_latency_vs_gflops, 1),
                                          (plots.plot_top1_vs_latency, 0)])
def test_latency_plots_draw_the_ci_and_hollow_unstable_rows(plotter, axis):
    from matplotlib.container import ErrorbarContainer

    run = RunResult.load(DATA / "report_cpu_b1.json")
    timed = {r.latency_summary.median: r.latency_summary for r in run.results
             if r.latency_summary}
    with plots.plot_style():
        outcome = plotter(merge_runs([run]))
    assert "95 % confidence interval of the median" in outcome.caption
    bars = [c for c in outcome.figure.axes[0].containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == len(timed) == 7
    hollow = set()
    for container in bars:
        line, _, (whisker,) = container.lines
        median = line.get_xydata()[0][axis]
        summary = timed[median]
        (start, end), = whisker.get_segments()
        assert (start[axis], end[axis]) == pytest.approx((summary.ci_low, summary.ci_high))
        if line.get_markerfacecolor() == "white":
            hollow.add(median)
    assert hollow == {m for m, s in timed.items() if s.unstable} and len(hollow) == 2
    legend = [t.get_text() for t in outcome.figure.legends[0].get_texts()]
    assert "unstable latency (hollow)" in legend and any("95 % CI" in t for t in legend)
