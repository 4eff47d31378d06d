"""The one vocabulary every report marks its rows with: the terminal
(:mod:`vitbench.cli.console`), Markdown and HTML (through :mod:`vitbench.report.table`) read
their symbols, status words and legend from here, so a state looks the same in all three.

Symbols go on the cell they judge: ✓/✗ on a Δ, ``~`` on an unstable latency. The Status
column names the row's state in words: ``ok``, or ``ok ⚠`` followed by what to be wary of
(``unstable``, ``drift``, ``busy``, ``other``), or why there is no number (``failed``,
``timeout``, ``unavailable``, ``interrupted``, ``pending``, with the reason as a footnote).
Pure data: imports the result records only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

from vitbench.records import ModelResult
from vitbench.stats import UNSTABLE_CI_PCT


@dataclass(frozen=True)
class Flag:
    """One state: the symbol on the cell it judges, the word in the Status column, and what
    it means (the legend's text)."""

    mark: str
    word: str
    meaning: str


#: Every mark a report puts on a row, in legend order.
FLAGS: dict[str, Flag] = {
    "within": Flag("✓", "within", "Δ within the row's tolerance"),
    "outside": Flag("✗", "outside", "Δ outside the row's tolerance"),
    "unstable": Flag("~", "unstable",
                     f"unstable latency (the median's 95 % CI wider than ±{UNSTABLE_CI_PCT:g} %, "
                     "or the worker processes disagree)"),
    "drift": Flag("⚠", "drift", "the machine's speed changed while the row was timed"),
    "busy": Flag("⚠", "busy", "other processes used the CPU while the row was timed"),
    "other": Flag("⚠", "other", "another warning"),
}

#: The kinds of warning the Status column names after ``ok ⚠``, in that order.
WARNING_KINDS: tuple[str, ...] = ("unstable", "drift", "busy", "other")

#: Status words that mean "no number here", and why; the reason itself is a footnote.
STATUSES: dict[str, str] = {
    "failed": "the row raised an error",
    "timeout": "the row ran past its time limit",
    "unavailable": "the model cannot be built",
    "interrupted": "the run stopped before the row finished",
    "pending": "not measured yet",
}

#: How a warning's text starts, by kind (see vitbench.measure.row and vitbench.measure.job).
_PREFIXES = {"unstable": ("unstable latency", "between processes"), "drift": ("drift:",),
             "busy": ("contended:", "machine busy:")}


def warning_kind(text: str) -> str:
    """The :data:`WARNING_KINDS` entry a warning's text belongs to (``other`` if none)."""
    for kind, prefixes in _PREFIXES.items():
        if text.startswith(prefixes):
            return kind
    return "other"


def warning_kinds(results: Iterable[ModelResult]) -> list[str]:
    """What to be wary of in these results (one row, or its cells in a merged report), in
    :data:`WARNING_KINDS` order: from the stored flags and the warnings' texts."""
    found = set()
    for result in results:
        summary = result.latency_summary
        if summary is not None and summary.unstable:
            found.add("unstable")
        if result.telemetry is not None and result.telemetry.contended:
            found.add("busy")
        found.update(warning_kind(w) for w in result.warnings)
    return [kind for kind in WARNING_KINDS if kind in found]


def delta_mark(within: Optional[bool]) -> str:
    """✓ or ✗ for a Δ judged within or outside its tolerance; nothing when not judged."""
    if within is None:
        return ""
    return FLAGS["within" if within else "outside"].mark


def status_text(status: str, kinds: Iterable[str] = ()) -> str:
    """``ok``, ``ok ⚠ unstable, drift``, or the status word itself for a row without a number."""
    kinds = list(kinds)
    if status != "ok" or not kinds:
        return status
    return f"ok {FLAGS['other'].mark} " + ", ".join(FLAGS[k].word for k in kinds)


def legend_text() -> str:
    """The legend printed under every table (terminal, Markdown, HTML), one line."""
    within, outside, unstable = FLAGS["within"], FLAGS["outside"], FLAGS["unstable"]
    words = ", ".join(FLAGS[k].word + ("" if k == "unstable" else f" ({FLAGS[k].meaning})")
                      for k in WARNING_KINDS)
    return (f"Legend: {within.mark} {within.meaning}, {outside.mark} outside it; "
            f"{unstable.mark} {unstable.meaning}; ok {FLAGS['other'].mark} names the row's "
            f"warnings: {words}, each spelled out under the table; {', '.join(STATUSES)}: no "
            "number, the reason in a footnote.")
