"""The timed loop: warm-up that is one, a first call timed on its own, and stopping rules.

Protocol, per model and batch size:

1. the **first call** (cold: allocator, oneDNN/cuDNN kernel selection, lazy init) is timed
   and reported separately, never mixed into the steady state;
2. **warm-up**: at least ``warmup`` further untimed calls *and* at least ``warmup_s`` seconds;
3. **timed calls** until at least ``repeat`` samples *and* ``min_time_s`` seconds, or
   ``max_time_s`` has passed; with ``target_ci_pct`` set, on past the minimums until the
   median's 95 % CI half-width is within that percentage (or ``max_time_s``).

Each sample is one call: ``clock`` before, the call, ``sync`` (CUDA synchronise on GPU, so
queued kernels are inside the sample), ``clock`` after. The clock is injectable so the
statistics can be tested exactly with a fake one.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from .stats import relative_ci_halfwidth_pct

Clock = Callable[[], int]  # nanoseconds


@dataclass(frozen=True)
class Protocol:
    """How long to warm up and how long to time."""

    warmup: int = 10
    warmup_s: float = 0.0
    repeat: int = 50
    min_time_s: float = 1.0
    max_time_s: float = 60.0
    target_ci_pct: Optional[float] = None


@dataclass
class Timing:
    """Raw outcome of the timed loop; milliseconds."""

    samples_ms: list[float]
    first_call_ms: float
    warmup_calls: int
    warmup_ms_total: float
    stopped_by: str  # "minimums" | "ci-target" | "max-time"
    extra: dict = field(default_factory=dict)


def _no_sync() -> None:
    return None


def time_calls(fn: Callable[[], object], protocol: Protocol, *, clock: Clock = time.perf_counter_ns,
               sync: Callable[[], None] = _no_sync) -> Timing:
    """Run ``fn`` under ``protocol`` and return the raw samples."""
    def one_call() -> int:
        start = clock()
        fn()
        sync()
        return clock() - start

    sync()
    first_ns = one_call()

    warm_calls, warm_ns = 0, 0
    while warm_calls < protocol.warmup or warm_ns < protocol.warmup_s * 1e9:
        warm_ns += one_call()
        warm_calls += 1

    samples_ns: list[int] = []
    elapsed_ns = 0
    min_ns, max_ns = protocol.min_time_s * 1e9, protocol.max_time_s * 1e9
    stopped_by = "minimums"
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection inside a sample is the harness's cost, not the model's
    try:
        while True:
            sample = one_call()
            samples_ns.append(sample)
            elapsed_ns += sample
            if elapsed_ns >= max_ns:
                stopped_by = "max-time"
                break
            if len(samples_ns) < protocol.repeat or elapsed_ns < min_ns:
                continue
            if protocol.target_ci_pct is None:
                break
            halfwidth = relative_ci_halfwidth_pct([s / 1e6 for s in samples_ns])
            if halfwidth is not None and halfwidth <= protocol.target_ci_pct:
                stopped_by = "ci-target"
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    return Timing(
        samples_ms=[s / 1e6 for s in samples_ns],
        first_call_ms=first_ns / 1e6,
        warmup_calls=warm_calls,
        warmup_ms_total=warm_ns / 1e6,
        stopped_by=stopped_by,
    )
