"""How well measured params and GFLOPs agree with the printed ones, over one or more runs.

A row is *built* when vitbench measured it (status ``ok``); unavailable and failed rows
are counted separately. A built row is *within tolerance* for a quantity when its
comparison (:func:`vitbench.records.compare`: the row's tolerance widened to the printed
precision) says so; rows with no printed value for the quantity are not counted for it.
Every built row outside tolerance is listed with its note, so a reader sees whether the
miss is explained (a slide error) or not. Pure data; no torch. The Markdown rendering is
:func:`vitbench.report.markdown.render_agreement`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional, Union

from vitbench.records import ModelResult, RunResult

#: The quantities whose agreement is summarised, with the label each gets in a report.
QUANTITIES: dict[str, str] = {"params_m": "params", "gflops": "GFLOPs"}


@dataclass
class Miss:
    """One built row outside tolerance for one quantity."""

    suite: str
    name: str
    quantity: str
    printed: float
    measured: Optional[float]
    delta_pct: Optional[float]
    tolerance_pct: float
    note: str = ""
    source: Optional[str] = None
    flops_convention: Optional[str] = None


@dataclass
class SuiteAgreement:
    """Counts for one suite (one RunResult)."""

    suite: str
    rows: int = 0
    built: int = 0
    unavailable: int = 0
    failed: int = 0
    #: per quantity: built rows with a printed value, and how many of them are within tolerance
    compared: dict[str, int] = field(default_factory=lambda: {q: 0 for q in QUANTITIES})
    within: dict[str, int] = field(default_factory=lambda: {q: 0 for q in QUANTITIES})
    counters_disagree: list[str] = field(default_factory=list)
    misses: list[Miss] = field(default_factory=list)

    def share(self, quantity: str) -> Optional[float]:
        """Fraction of compared rows within tolerance, or None when nothing was compared."""
        return self.within[quantity] / self.compared[quantity] if self.compared[quantity] else None


@dataclass
class Agreement:
    """One summary per suite plus the total over all of them."""

    suites: list[SuiteAgreement]
    total: SuiteAgreement

    @property
    def misses(self) -> list[Miss]:
        return self.total.misses

    @property
    def unexplained(self) -> list[Miss]:
        """Misses whose row carries no note."""
        return [m for m in self.total.misses if not m.note.strip()]


def _comparisons(row: ModelResult):
    if row.comparisons or not row.reference:
        return row.comparisons
    copy = row.model_copy(deep=True)
    copy.compare_to_reference()
    return copy.comparisons


def _add_row(summary: SuiteAgreement, suite: str, row: ModelResult) -> None:
    summary.rows += 1
    if row.status == "unavailable":
        summary.unavailable += 1
        return
    if row.status != "ok":
        summary.failed += 1
        return
    summary.built += 1
    if row.counts is not None and row.counts.counters_agree is False:
        summary.counters_disagree.append(f"{suite}: {row.name}")
    comparisons = _comparisons(row)
    for quantity in QUANTITIES:
        comparison = comparisons.get(quantity)
        if comparison is None or comparison.measured is None:
            continue
        summary.compared[quantity] += 1
        if comparison.within_tolerance:
            summary.within[quantity] += 1
        else:
            summary.misses.append(Miss(
                suite=suite, name=row.name, quantity=quantity, printed=comparison.printed,
                measured=comparison.measured, delta_pct=comparison.delta_pct,
                tolerance_pct=comparison.tolerance_pct, note=row.note, source=row.source,
                flops_convention=row.flops_convention))


def _merge(into: SuiteAgreement, part: SuiteAgreement) -> None:
    into.rows += part.rows
    into.built += part.built
    into.unavailable += part.unavailable
    into.failed += part.failed
    for quantity in QUANTITIES:
        into.compared[quantity] += part.compared[quantity]
        into.within[quantity] += part.within[quantity]
    into.counters_disagree += part.counters_disagree
    into.misses += part.misses


def summarize_agreement(results: Union[RunResult, Iterable[RunResult]]) -> Agreement:
    """Rows measured, rows within tolerance for params and GFLOPs, and the rows outside it.

    ``results`` is one :class:`RunResult` or several (e.g. one per seed suite); the
    summary has one entry per run and a total.
    """
    runs = [results] if isinstance(results, RunResult) else list(results)
    total = SuiteAgreement(suite="all")
    suites = []
    for run in runs:
        name = str(run.suite.get("name") or run.suite.get("path") or "?")
        summary = SuiteAgreement(suite=name)
        for row in run.results:
            _add_row(summary, name, row)
        suites.append(summary)
        _merge(total, summary)
    return Agreement(suites=suites, total=total)


def agreement_sentence(agreement: Agreement) -> Optional[str]:
    """One line for the end of a run: built rows within tolerance, per quantity."""
    total = agreement.total
    parts = [f"{label} {total.within[q]}/{total.compared[q]}"
             for q, label in QUANTITIES.items() if total.compared[q]]
    if not parts:
        return None
    misses = len(total.misses)
    tail = (f"; {misses} outside tolerance ({len(agreement.unexplained)} without a note)"
            if misses else "")
    return (f"Agreement with the printed values: {' and '.join(parts)} built rows within "
            f"tolerance{tail}.")
