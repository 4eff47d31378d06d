"""The trend dashboard: one self-contained HTML page over a suite's history — a small chart
per model and metric (each run's CI as a band, change points flagged), the change points as
a table, and the runs with links to their folders.

Nothing is loaded from the network: the style is inline and the charts are SVG data URIs.
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

from vitbench.history.changes import ChangePoint
from vitbench.history.trendplot import LABELS, plot_small, render, run_axis
from vitbench.report.plots.style import plot_style

if TYPE_CHECKING:
    import pandas as pd

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: #1b1f24; margin: 0; padding: 20px 28px 48px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 10px; border-bottom: 1px solid #d8dee4; }
.meta, .note { color: #5b6570; margin: 0 0 12px; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: 13px; }
th, td { padding: 4px 8px; border-bottom: 1px solid #d8dee4; text-align: left;
         white-space: nowrap; vertical-align: top; }
th { background: #f3f5f7; }
td.num { text-align: right; }
.grid td { padding: 4px; border: none; }
.grid th.model { text-align: right; background: none; padding-right: 10px; }
.cell img { width: 250px; height: auto; border: 1px solid #d8dee4; border-radius: 5px; }
.cell.regression img { border: 2px solid #D55E00; }
.cell.improvement img { border: 2px solid #009E73; }
.badge { font-size: 11.5px; font-weight: 600; white-space: normal; max-width: 250px; }
.regression, .regression a { color: #b8410a; }
.improvement { color: #00734f; }
"""


def _e(text: Any) -> str:
    return html.escape("" if text is None else str(text))


def _svg_uri(data: bytes) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(data).decode("ascii")


def _run_label(change: ChangePoint) -> str:
    return (change.commit or "")[:7] or change.created_utc[:16].replace("T", " ")


def change_rows(changes: Sequence[ChangePoint], window: int) -> str:
    """The change-point table's body."""
    from vitbench.history.changes import in_latest_window

    if not changes:
        return "<tr><td colspan=8>no change point</td></tr>"
    lines = []
    for c in changes:
        latest = " (latest window)" if in_latest_window(c, window) else ""
        lines.append(
            f"<tr class='{c.direction}'><td>{_e(c.model)}</td><td>{_e(c.metric)}</td>"
            f"<td>{_e(c.env_key[:6])}</td><td>{_e(_run_label(c))} · run {c.index + 1} of "
            f"{c.runs}</td><td class=num>{c.before:.4g} → {c.after:.4g}</td>"
            f"<td class=num>{c.change_pct:+.1f} % [{c.ci_low_pct:+.1f}, {c.ci_high_pct:+.1f}]"
            f"</td><td class=num>{c.p_value:.3g}</td><td>{_e(c.direction)}{latest}</td></tr>")
    return "\n".join(lines)


def _href(source: Any, out: Path) -> Optional[str]:
    """A relative link from the dashboard to a run's folder, when its source is a local path."""
    if not isinstance(source, str) or "://" in source:
        return None
    folder = Path(source).parent
    try:
        return Path(os.path.relpath(folder.resolve(), out.resolve())).as_posix() + "/"
    except ValueError:
        return folder.resolve().as_uri()


def run_rows(runs: "pd.DataFrame", out: Path) -> str:
    """The runs table's body: newest first, each linked to its folder."""
    lines = []
    for r in runs.iloc[::-1].itertuples(index=False):
        href = _href(getattr(r, "source", None), out)
        name = f"<a href='{_e(href)}'>{_e(r.run_id)}</a>" if href else _e(r.run_id)
        commit = (r.commit or "")[:10] + ("+" if r.commit and r.dirty is True else "")
        lines.append(f"<tr><td>{name}</td><td>{_e(r.created_utc)}</td><td>{_e(commit)}</td>"
                     f"<td>{_e(r.kind)}</td><td class=num>{r.ok}/{r.rows}</td>"
                     f"<td>{_e(r.environments)}</td></tr>")
    return "\n".join(lines)


def chart_grid(frame: "pd.DataFrame", metrics: Sequence[str],
               changes: Sequence[ChangePoint]) -> str:
    """Rows of models, columns of metrics, each cell a small SVG chart."""
    positions, labels = run_axis(frame)
    models = list(dict.fromkeys(frame.sort_values("row_index", kind="stable")["model"]))
    head = "".join(f"<th>{_e(LABELS.get(m, m))}</th>" for m in metrics)
    lines = [f"<table class=grid><tr><th></th>{head}</tr>"]
    with plot_style():
        for model in models:
            cells = []
            for metric in metrics:
                points = frame[(frame["model"] == model) & (frame["metric"] == metric)]
                if points["value"].notna().sum() == 0:
                    cells.append("<td class=cell></td>")
                    continue
                mine = [c for c in changes if c.model == model and c.metric == metric]
                kind = ("regression" if any(c.direction == "regression" for c in mine)
                        else "improvement" if mine else "")
                badge = "".join(f"<div class='badge {c.direction}'>{c.direction} "
                                f"{c.change_pct:+.1f} % at {_e(_run_label(c))} "
                                f"(p {c.p_value:.2g})</div>" for c in mine)
                fig = plot_small(points, positions, labels, mine, f"{model} · {metric}")
                cells.append(f"<td class='cell {kind}'><img alt='{_e(model)} {_e(metric)}' "
                             f"src='{_svg_uri(render(fig, 'svg'))}'>{badge}</td>")
            lines.append(f"<tr><th class=model>{_e(model)}</th>{''.join(cells)}</tr>")
    lines.append("</table>")
    return "\n".join(lines)


def dashboard_html(frame: "pd.DataFrame", runs: "pd.DataFrame", metrics: Sequence[str],
                   changes: Sequence[ChangePoint], out: Path, *, title: str, window: int,
                   source: str) -> str:
    """The whole page (module docstring)."""
    envs = frame.drop_duplicates("env_key")[["env_key", "env_label"]]
    env_list = "".join(f"<li><code>{_e(k[:6])}</code> {_e(v)}</li>"
                       for k, v in envs.itertuples(index=False))
    first, last = (str(runs["created_utc"].iloc[i])[:16] for i in (0, -1))
    regressions = sum(c.direction == "regression" for c in changes)
    return f"""<!doctype html>
<html lang=en><head><meta charset=utf-8><title>{_e(title)}</title><style>{CSS}</style></head>
<body><h1>{_e(title)}</h1>
<p class=meta>{len(runs)} runs from {_e(first)} to {_e(last)} · {_e(source)} ·
{len(changes)} change points, {regressions} regressions</p>
<p class=note>Each chart: one model's metric over the runs (x: commit, or date for runs without
one); the band is each run's 95 % CI of the median; a dashed line marks a change point where the
new level starts (orange: regression, green: improvement). Environments are never joined:</p>
<ul class=note>{env_list}</ul>
<h2>Change points</h2>
<p class=note>Per (model, metric, environment): a permutation test on ranks (p below 0.01) and
ruptures' binary segmentation; size = medians after/before with a bootstrap 95 % CI. Latest
window: the last {window} runs of the series.</p>
<table><tr><th>model</th><th>metric</th><th>env</th><th>starts at</th><th>median</th>
<th>change [95 % CI]</th><th>p</th><th>direction</th></tr>
{change_rows(changes, window)}</table>
<h2>Charts</h2>
{chart_grid(frame, metrics, changes)}
<h2>Runs</h2>
<table><tr><th>run</th><th>created (UTC)</th><th>commit</th><th>kind</th><th>rows ok</th>
<th>environments</th></tr>
{run_rows(runs, out)}</table>
</body></html>
"""
