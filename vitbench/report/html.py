"""One self-contained HTML report: the table, its footnotes and protocol, and the plots.

Nothing is loaded from the network: styles and the few lines of sorting script are inline,
plots are embedded as SVG data URIs (sharp at any zoom, and each keeps its own ids). Click a
column header to sort by it; click again to reverse.
"""

from __future__ import annotations

import base64
import html as _html
from typing import Any, Sequence

from vitbench.report.flags import legend_text
from vitbench.report.table import (Cell, RunLike, as_report, build_table, notes_and_warnings,
                                   protocol_lines)

_CSS = """
:root { --ink:#1b1f24; --muted:#5b6570; --line:#d8dee4; --paper:#0b5c8a; --ok:#00734f;
        --bad:#b8410a; --warn:#8a5a00; --head:#f3f5f7; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--ink); margin: 0 auto; padding: 24px 28px 48px; max-width: 1500px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 32px 0 10px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
.source, .meta { color: var(--muted); margin: 0 0 16px; }
.scroll { overflow-x: auto; border: 1px solid var(--line); border-radius: 6px; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; width: 100%;
        font-size: 13px; }
th, td { padding: 4px 7px; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { background: var(--head); font-weight: 600; text-align: left; cursor: pointer;
     user-select: none; vertical-align: bottom; white-space: nowrap; font-size: 13px; }
th.group { text-align: center; cursor: default; border-bottom: 2px solid #b9c3cc;
           border-left: 1px solid var(--line); }
thead tr:last-child th { font-weight: 500; color: #39424b; white-space: normal; }
th.num, td.num { text-align: right; }
th[aria-sort="ascending"]::after { content: " ▲"; font-size: 10px; }
th[aria-sort="descending"]::after { content: " ▼"; font-size: 10px; }
tbody tr:nth-child(even) { background: #fafbfc; }
tbody tr:hover { background: #eef4fa; }
td.name { font-weight: 600; }
td.paper { color: var(--paper); }
td.ok { color: var(--ok); }
td.bad { color: var(--bad); font-weight: 600; }
td.warn { color: var(--warn); }
td.dim, tr.unavailable td { color: #8a939c; }
tr.unavailable td.paper { color: #6d8ea3; }
sup a { text-decoration: none; color: var(--bad); }
.footnotes, .protocol, .notes { color: #2c333a; font-size: 13px; max-width: 1100px; }
.footnotes li, .protocol li, .notes li { margin: 3px 0; }
.legend { color: var(--muted); font-size: 12.5px; margin: 6px 0 0; }
figure { margin: 0 0 28px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px;
             background: white; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; max-width: 1000px; }
"""

_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.tHead.querySelectorAll("th[data-col]");
  Array.prototype.forEach.call(heads, function (th) {
    var col = parseInt(th.dataset.col, 10);
    th.addEventListener("click", function () {
      var asc = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.sort, y = b.cells[col].dataset.sort;
        if (x === undefined || x === "") return 1;      // blanks last, either way
        if (y === undefined || y === "") return -1;
        var nx = parseFloat(x), ny = parseFloat(y), r;
        r = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return asc ? r : -r;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def _esc(text: Any) -> str:
    return _html.escape(str(text), quote=True)


def _cell_html(cell: Cell, numeric: bool) -> str:
    classes = [c for c in cell.kind.split() if c] + (["num"] if numeric else [])
    attrs = []
    if classes:
        attrs.append(f'class="{" ".join(classes)}"')
    if cell.sort is not None:
        attrs.append(f'data-sort="{_esc(cell.sort)}"')
    if cell.title:
        attrs.append(f'title="{_esc(cell.title)}"')
    text = _esc(cell.text)
    if cell.bold and cell.text:
        text = f"<strong>{text}</strong>"
    if cell.note is not None:
        text += f'<sup><a href="#fn{cell.note}">[{cell.note}]</a></sup>'
    return f"<td {' '.join(attrs)}>{text}</td>" if attrs else f"<td>{text}</td>"


def table_html(run: RunLike) -> str:
    """The sortable table (group headers over sub-headers), its legend and footnotes."""
    table = build_table(run)
    top, bottom, index = [], [], 0
    count = len(table.headers)
    while index < count:
        group, numeric = table.groups[index], table.numeric[index]
        cls = ' class="num"' if numeric else ""
        if not group:
            top.append(f'<th{cls} rowspan="2" scope="col" data-col="{index}">'
                       f"{_esc(table.subheaders[index])}</th>")
            index += 1
            continue
        span = 1
        while index + span < count and table.groups[index + span] == group:
            span += 1
        top.append(f'<th class="group" colspan="{span}" scope="colgroup">{_esc(group)}</th>')
        for k in range(index, index + span):
            kcls = ' class="num"' if table.numeric[k] else ""
            bottom.append(f'<th{kcls} scope="col" data-col="{k}">'
                          f"{_esc(table.subheaders[k])}</th>")
        index += span
    head = f"<tr>{''.join(top)}</tr><tr>{''.join(bottom)}</tr>"
    body = []
    for cells in table.rows:
        status = cells[-1].text
        row_class = ' class="unavailable"' if status == "unavailable" else ""
        body.append(f"<tr{row_class}>" + "".join(
            _cell_html(c, n) for c, n in zip(cells, table.numeric)) + "</tr>")
    parts = ['<div class="scroll"><table class="sortable">', f"<thead>{head}</thead>",
             "<tbody>", *body, "</tbody></table></div>"]
    parts.append('<p class="legend">Click a header to sort. <strong>Bold</strong>: rounds to the '
                 f'printed value at its printed precision. {_esc(legend_text())} Hover a '
                 'latency for p90 and its 95 % CI, a Δ for its tolerance.</p>')
    if table.footnotes:
        parts.append('<ol class="footnotes">' + "".join(
            f'<li id="fn{n}">{_esc(reason)}</li>' for reason, n in table.footnotes.items())
            + "</ol>")
    return "\n".join(parts)


def to_html(run: RunLike, plots: Sequence[tuple[str, str, str, str]] = (),
            skipped: Sequence[tuple[str, str]] = ()) -> str:
    """The report page. ``plots``: (name, title, caption, SVG text) for each drawn plot;
    ``skipped``: (name, reason) for each plot the data did not allow."""
    report = as_report(run)
    suite = report.suite
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{_esc(report.title)} — vitbench</title>", f"<style>{_CSS}</style></head>",
           "<body>", f"<h1>{_esc(report.title)}</h1>"]
    if suite.get("source"):
        out.append(f'<p class="source">Printed values from {_esc(suite["source"])}.</p>')
    out.append(table_html(report))
    out.append("<h2>How this was measured</h2>")
    out.append('<ul class="protocol">' + "".join(
        f"<li>{_esc(line)}</li>"
        for line in protocol_lines(report)) + "</ul>")
    notes, warnings = notes_and_warnings(report)
    if notes or warnings:
        out.append("<h2>Notes and warnings</h2>")
        out.append('<ul class="notes">' + "".join(
            f"<li><strong>{_esc(n)}</strong>: {_esc(t)}</li>" for n, t in notes) + "".join(
            f'<li><strong>{_esc(n)}</strong>: <span style="color:var(--warn)">⚠ {_esc(t)}'
            f"</span></li>" for n, t in warnings) + "</ul>")
    if plots or skipped:
        out.append("<h2>Plots</h2>")
    for name, title, caption, svg in plots:
        data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
        out.append(f'<figure id="{_esc(name)}"><img alt="{_esc(title)}" '
                   f'src="data:image/svg+xml;base64,{data}">'
                   f"<figcaption>{_esc(caption)}</figcaption></figure>")
    if skipped:
        out.append('<ul class="notes">' + "".join(
            f"<li>{_esc(name)}: not drawn ({_esc(reason)}).</li>" for name, reason in skipped)
            + "</ul>")
    runs = "; ".join(f"{_esc(r.created_utc)} → {_esc(r.finished_utc or 'unfinished')}"
                     for r in report.runs)
    out.append(f'<p class="meta">{len(report.runs)} run{"s" if len(report.runs) > 1 else ""}: '
               f"{runs}; schema {_esc(report.runs[0].file_schema)}; canonical data in "
               "results.json. Generated by vitbench.</p>")
    out.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(out) + "\n"
