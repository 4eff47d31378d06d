"""Reference-relative latency: a row's latency as a multiple of one reference model's, both
timed in alternating short blocks (lockstep), so that the machine's drift cancels.

On a shared machine a process's speed is partly the machine's mood: the same row's absolute
median moves by 10–15 % between runs, while the ratio of two models timed block by block
moves by a few percent (:mod:`vitbench.run.reference`). The row keeps both figures; the
run records the reference and its absolute latency once (:class:`ReferenceRecord`).
"""

from __future__ import annotations

from typing import Optional

from pydantic import Field

from vitbench.records.parts import LatencySummary, Part


class RelativeLatency(Part):
    """This row's latency divided by the reference's, from lockstep block pairs.

    ``ratio`` is the geometric mean of the lockstep processes' own ratios, each the median
    of its block pairs' row block median / reference block median (a process, a fresh pair
    of workers, is the unit that repeats); the CI is the median's distribution-free 95 %
    interval over all block pairs, widened to cover every process's own ratio.
    """

    reference: str = Field(description="the reference's model name, e.g. timm:resnet18")
    ratio: float = Field(description="row latency / reference latency (1.0: as fast)")
    ci_low: float
    ci_high: float
    ci_level: float = 0.95
    block_pairs: int = Field(description="adjacent (row, reference) block pairs pooled")
    block_calls: list[int] = Field(default_factory=list,
                                   description="calls per block, per lockstep process")
    process_ratios: list[float] = Field(
        default_factory=list, description="each lockstep process's own median ratio")
    stopped_by: list[str] = Field(
        default_factory=list, description="per process: ci-target | max-pairs | max-time")

    @property
    def ci_halfwidth_pct(self) -> float:
        """Half the CI's width as a percentage of the ratio."""
        return 50 * (self.ci_high - self.ci_low) / self.ratio if self.ratio else float("inf")


class ReferenceRecord(Part):
    """The run's reference model: what it is and its absolute latency, reported once."""

    model: str
    image_size: tuple[int, int]
    batch_size: int
    device: str
    dtype: str
    threads: Optional[int] = None
    #: its latency over every block it ran in this run (all lockstep processes pooled)
    latency: Optional[LatencySummary] = None
    processes: int = 0
    rows: int = Field(0, description="rows timed against it")
    error: Optional[str] = Field(None, description="why it could not be timed (no relative "
                                                   "figures then)")
