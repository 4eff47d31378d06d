"""Markdown: the one table helper every vitbench Markdown table goes through, and the documents
built with it (``results.md`` and the agreement summary).

:func:`markdown_grid` is the shared renderer (the report table, the agreement tables and
``vitbench profile --format md`` use it): one escaping rule (:func:`md_escape`) and one rule
for bare numbers, so a ``|`` in a failure reason or a ``<`` in a note cannot break a table.
Every text from a suite or a results file (title, source, names, notes, reasons, warnings)
goes through :func:`md_escape`, in tables and in prose: ``results.md`` never carries HTML.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Optional, Sequence

from tabulate import tabulate

from vitbench.report.agreement import QUANTITIES, Agreement, SuiteAgreement, summarize_agreement
from vitbench.report.flags import legend_text
from vitbench.report.table import (RunLike, as_report, build_table, fmt, fmt_measured,
                                   notes_and_warnings, protocol_lines)

_SEPARATORS = {"left": "---", "right": "---:", "center": ":---:"}


#: An ``&`` that does not start a character reference (``&nbsp;``, ``&#38;``, ``&#x26;``).
_BARE_AMPERSAND = re.compile(r"&(?![A-Za-z][A-Za-z0-9]{1,31};|#[0-9]{1,7};|#[xX][0-9A-Fa-f]{1,6};)")


def md_escape(text: str) -> str:
    """Text safe inside a Markdown table cell or list item: ``|`` escaped, line breaks as
    spaces, ``<``/``>`` and a bare ``&`` as entities (GitHub would read them as HTML). An
    entity is kept as written, so a cell may carry one on purpose (``&nbsp;`` indents the
    profile's module names); it shows as its character, never as markup."""
    return (_BARE_AMPERSAND.sub("&amp;", text).replace("|", "\\|").replace("\r\n", " ")
            .replace("\n", " ").replace("\r", " ").replace("<", "&lt;").replace(">", "&gt;"))


def _cell_text(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return fmt(value)
    return md_escape(str(value))


def markdown_grid(headers: Sequence[str], rows: Iterable[Sequence[Any]],
                  align: Optional[Sequence[str]] = None, *, padded: bool = True) -> str:
    """A GitHub Markdown table (no trailing newline).

    ``rows`` hold strings (escaped with :func:`md_escape`; bold ``**x**`` and footnote
    ``[^n]`` markup pass through), ints, floats (:func:`~vitbench.report.table.fmt`: two
    decimals; format the number yourself for another precision) or None (``–``).
    ``align``: ``"left"``, ``"right"`` or ``"center"`` per column; default left.
    ``padded=True`` pads every column to one width (tabulate's ``github`` format: reads well
    as plain text); ``padded=False`` writes ``| a | b |`` with one space around each cell
    (small diffs, for tables that are read rendered).
    """
    head = [md_escape(h) for h in headers]
    body = [[_cell_text(value) for value in row] for row in rows]
    if padded:
        return tabulate(body, headers=head, tablefmt="github", disable_numparse=True,
                        colalign=list(align) if align is not None else None)
    align = list(align) if align is not None else ["left"] * len(head)
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join(_SEPARATORS[a] for a in align) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines)


# --- results.md ----------------------------------------------------------------------------

def markdown_table(run: RunLike) -> str:
    """The table as GitHub Markdown; failure reasons become footnotes ``[^n]``."""
    table = build_table(run)
    body = []
    for cells in table.rows:
        line = []
        for cell in cells:
            text = f"**{cell.text}**" if cell.bold and cell.text else cell.text
            if cell.note is not None:
                text += f"[^{cell.note}]"
            line.append(text)
        body.append(line)
    align = ["right" if numeric else "left" for numeric in table.numeric]
    text = markdown_grid(table.headers, body, align)
    if table.footnotes:
        text += "\n\n" + "\n".join(f"[^{n}]: {md_escape(reason)}"
                                   for reason, n in table.footnotes.items())
    return text


def to_markdown(run: RunLike, plots: Sequence[tuple[str, str]] = (),
                skipped_plots: Sequence[tuple[str, str]] = ()) -> str:
    """The Markdown report; ``plots`` are (title, relative image path) pairs to embed."""
    report = as_report(run)
    suite = report.suite
    parts = [f"# {md_escape(report.title)}", ""]
    if suite.get("source"):
        parts += [f"Printed values from {md_escape(str(suite['source']))}.", ""]
    parts += [markdown_table(report), ""]
    parts += ["- **Bold**: the measured value rounds to the printed one at the printed "
              "precision (it matches the paper).", f"- {md_escape(legend_text())}"]
    parts += [f"- {md_escape(line)}" for line in protocol_lines(report)]
    notes, warnings = notes_and_warnings(report)
    if notes:
        parts += ["", "Notes:", ""] + [f"- **{md_escape(name)}**: {md_escape(note)}"
                                       for name, note in notes]
    if warnings:
        parts += ["", "Warnings:", ""] + [f"- **{md_escape(name)}**: {md_escape(w)}"
                                          for name, w in warnings]
    if any(r.comparisons for run_ in report.runs for r in run_.results):
        parts += [""] + render_agreement(summarize_agreement(report.runs[0]))
    if plots or skipped_plots:
        parts += ["", "## Plots", ""]
        for title, path in plots:
            parts += [f"![{title}]({path})", ""]
        for name, reason in skipped_plots:
            parts += [f"- {name}: not drawn ({reason})."]
        if skipped_plots:
            parts.append("")
    parts.append("")
    if len(report.runs) == 1:
        run_ = report.runs[0]
        parts += [f"Run {md_escape(run_.created_utc)} → "
                  f"{md_escape(run_.finished_utc or 'unfinished')}; schema "
                  f"{run_.file_schema}; canonical data in results.json.", ""]
    else:
        listed = "; ".join(f"{md_escape(r.created_utc)} → "
                           f"{md_escape(r.finished_utc or 'unfinished')}"
                           for r in report.runs)
        parts += [f"Merged from {len(report.runs)} runs ({listed}); schema "
                  f"{report.runs[0].file_schema}; canonical data in each run's results.json.", ""]
    return "\n".join(parts)


# --- the agreement summary -----------------------------------------------------------------

def _within_text(summary: SuiteAgreement, quantity: str) -> str:
    share = summary.share(quantity)
    if share is None:
        return "–"
    return f"{summary.within[quantity]}/{summary.compared[quantity]} ({share * 100:.0f} %)"


def render_agreement(agreement: Agreement, *, title: str = "Agreement with printed values") -> list[str]:
    """Markdown lines: the per-suite table, the total, then every row outside tolerance."""
    lines = [f"## {title}", "",
             "Within tolerance: |Δ| ≤ the row's tolerance_pct, widened to half a unit of the "
             "last printed digit (0.4 stands for 0.35–0.45). Rows = all rows in the suite; "
             "built = measured by vitbench; params/GFLOPs columns count built rows that "
             "have a printed value.", ""]
    totals = [agreement.total] if len(agreement.suites) != 1 else []
    lines += markdown_grid(
        ["suite", "rows", "built", "unavailable", "failed", "params within", "GFLOPs within"],
        [["**all**" if summary is agreement.total else summary.suite, summary.rows,
          summary.built, summary.unavailable, summary.failed,
          _within_text(summary, "params_m"), _within_text(summary, "gflops")]
         for summary in [*agreement.suites, *totals]],
        ["left"] + ["right"] * 6, padded=False).splitlines()
    lines.append("")
    disagree = agreement.total.counters_disagree
    lines.append(f"Counters (fvcore+SDPA vs FlopCounterMode+CPU-SDPA) disagree by more than 1 % "
                 f"on {len(disagree)} built row(s)"
                 f"{': ' + md_escape(', '.join(disagree)) if disagree else '.'}")
    lines.append("")
    misses = agreement.misses
    if not misses:
        lines.append("Every built row with a printed value is within tolerance.")
        return lines
    lines += [f"### Rows outside tolerance ({len(misses)}; {len(agreement.unexplained)} without a note)",
              ""]
    rows = []
    for miss in misses:
        quantity = QUANTITIES[miss.quantity]
        if miss.quantity == "gflops" and miss.flops_convention:
            quantity += f" ({miss.flops_convention})"
        rows.append([miss.suite, miss.name, quantity, f"{miss.printed:g}",
                     fmt_measured(miss.measured),
                     "–" if miss.delta_pct is None else f"{miss.delta_pct:+.1f}",
                     f"{miss.tolerance_pct:.1f}", miss.note or "**no note**"])
    lines += markdown_grid(
        ["suite", "row", "quantity", "printed", "measured", "Δ %", "allowed %", "note"], rows,
        ["left"] * 3 + ["right"] * 4 + ["left"], padded=False).splitlines()
    return lines
