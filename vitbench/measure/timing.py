"""The timed loop: warm-up that is one, a first call timed on its own, and stopping rules.

Protocol, per model and batch size:

1. the **first call** (cold: allocator, oneDNN/cuDNN kernel selection, lazy init,
   ``torch.compile``) is timed and reported separately, never mixed into the steady state;
2. **warm-up**: at least ``warmup`` further untimed calls *and* at least ``warmup_s`` seconds;
3. **timed samples** until at least ``repeat`` samples *and* ``min_time_s`` seconds, or
   ``max_time_s`` has passed; with ``target_ci_pct`` set, on past the minimums until the
   median's 95 % CI half-width is within that percentage of the median (or ``max_time_s``).

A sample is ``calls_per_sample`` back-to-back calls (1 by default) timed together and
divided by their number:

* ``calls_per_sample == 1`` — **latency**: the timer starts, one call, the device is
  synchronised, the timer stops; every queued kernel is inside its own sample.
* ``calls_per_sample > 1`` — **throughput**: the device is synchronised only at the ends of
  the block, so the GPU's queue stays full across calls (no per-call sync bubble), and the
  per-call value is the block's time divided by the calls in it.

Timers are pluggable: :class:`HostTimer` (a clock, default ``perf_counter_ns``, plus a
``sync`` callable) and :class:`CudaEventTimer` (a pair of CUDA events around the block;
the time is the GPU's own). The clock is injectable so the statistics can be tested exactly.

Two primitives do the timing: :func:`time_call` (one timer start/stop around back-to-back
calls: the first call, warm-up) and :func:`time_block` (timed samples with the garbage
collector off, since a collection inside a sample is the harness's cost, not the model's).
:func:`time_calls` runs the protocol above with them; the lockstep worker
(:mod:`vitbench.measure.lockstep_worker`) calls them on the parent's command.
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Iterator, Optional

from vitbench.records import Latency, LatencySummary
from vitbench.stats import relative_ci_halfwidth_pct, summarize, window_spread

ClockNs = Callable[[], int]

#: ``calls_per_sample=0`` (throughput mode's default) picks blocks of at least this long ...
AUTO_BLOCK_S = 0.05
#: ... and at most this many calls.
AUTO_BLOCK_MAX_CALLS = 1000


@dataclass(frozen=True)
class Protocol:
    """How long to warm up and how long to time."""

    warmup: int = 10
    warmup_s: float = 0.0
    repeat: int = 50
    min_time_s: float = 1.0
    max_time_s: float = 60.0
    target_ci_pct: Optional[float] = None
    calls_per_sample: int = 1  # 0: auto (blocks of >= AUTO_BLOCK_S), for throughput mode


@dataclass
class Timing:
    """Raw outcome of the timed loop; milliseconds per call."""

    samples_ms: list[float]
    first_call_ms: float
    warmup_calls: int
    warmup_ms_total: float
    stopped_by: str  # "minimums" | "ci-target" | "max-time"
    calls_per_sample: int = 1
    timer: str = "host"
    timed_s: float = 0.0  # sum of the timed samples (the loop's busy time)
    extra: dict = field(default_factory=dict)

    def latency(self) -> Latency:
        """The typed outcome: these samples with their summary and window spread, exact (the
        row rounds what it stores: :func:`vitbench.measure.row.apply_latency`)."""
        return Latency(samples_ms=list(self.samples_ms),
                       summary=LatencySummary.of(summarize(self.samples_ms),
                                                 window_spread=window_spread(self.samples_ms)),
                       first_call_ms=self.first_call_ms, warmup_calls=self.warmup_calls,
                       stopped_by=self.stopped_by, timer=self.timer,
                       calls_per_sample=self.calls_per_sample)


def _no_sync() -> None:
    return None


class HostTimer:
    """Host clock around the block, with a device sync before start and before stop."""

    name = "host perf_counter"

    def __init__(self, clock: ClockNs = time.perf_counter_ns, sync: Callable[[], None] = _no_sync):
        self.clock, self.sync = clock, sync

    def start(self) -> Any:
        return self.clock()

    def stop(self, token: Any) -> int:
        self.sync()
        return self.clock() - token


class CudaEventTimer:
    """CUDA events recorded on the current stream around the block; GPU time in ns.

    ``start`` records an event, the block enqueues its kernels, ``stop`` records a second
    event and waits for it (``Event.synchronize``), then reads ``elapsed_time`` (ms, about
    0.5 µs resolution). The host does not wait between the calls of a block.
    """

    name = "cuda events"

    def __init__(self):
        import torch

        self._torch = torch

    def start(self) -> Any:
        event = self._torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def stop(self, token: Any) -> int:
        end = self._torch.cuda.Event(enable_timing=True)
        end.record()
        end.synchronize()
        return int(round(token.elapsed_time(end) * 1e6))


def time_call(fn: Callable[[], object], timer, calls: int = 1) -> int:
    """Nanoseconds for ``calls`` back-to-back calls of ``fn`` between one start and one stop
    of ``timer``. The garbage collector is left as it is (the first call, warm-up)."""
    token = timer.start()
    for _ in range(calls):
        fn()
    return timer.stop(token)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The garbage collector off inside the block, back as it was after (nests)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def time_block(fn: Callable[[], object], samples: int, timer, *,
               calls_per_sample: int = 1) -> list[int]:
    """``samples`` timed samples of ``calls_per_sample`` calls each, with the garbage
    collector off; nanoseconds per sample (the whole sample, not per call).

    Allocations made meanwhile still count towards the collector's thresholds, so the
    collection they trigger runs after the block, outside every sample.
    """
    with gc_paused():
        return [time_call(fn, timer, calls_per_sample) for _ in range(samples)]


def time_calls(fn: Callable[[], object], protocol: Protocol, *, clock: ClockNs = time.perf_counter_ns,
               sync: Callable[[], None] = _no_sync, timer=None,
               around_timed: Optional[Callable[[], ContextManager]] = None) -> Timing:
    """Run ``fn`` under ``protocol`` and return the raw per-call samples.

    ``timer`` (default: a :class:`HostTimer` built from ``clock`` and ``sync``) times each
    block; the budget (warm-up seconds, min/max time) is counted in the timer's time.
    ``around_timed`` makes a context manager entered just before the first timed sample and
    left after the last (power sampling, CPU-contention accounting): warm-up is outside it.
    """
    timer = timer or HostTimer(clock, sync)

    sync()
    first_ns = time_call(fn, timer)

    warm_calls, warm_ns = 0, 0
    while warm_calls < protocol.warmup or warm_ns < protocol.warmup_s * 1e9:
        warm_ns += time_call(fn, timer)
        warm_calls += 1

    per_sample = int(protocol.calls_per_sample)
    if per_sample <= 0:  # auto: blocks of at least AUTO_BLOCK_S, at least 2 calls
        per_call_ns = warm_ns / warm_calls if warm_calls else first_ns
        per_sample = int(min(AUTO_BLOCK_MAX_CALLS,
                             max(2, math.ceil(AUTO_BLOCK_S * 1e9 / max(per_call_ns, 1)))))

    samples_ns: list[float] = []
    state = {"elapsed_ns": 0, "stopped_by": "minimums"}
    min_ns, max_ns = protocol.min_time_s * 1e9, protocol.max_time_s * 1e9

    def timed_loop() -> None:
        while True:
            spent = time_block(fn, 1, timer, calls_per_sample=per_sample)[0]
            samples_ns.append(spent / per_sample)
            state["elapsed_ns"] += spent
            if state["elapsed_ns"] >= max_ns:
                state["stopped_by"] = "max-time"
                return
            n = len(samples_ns)
            if n < protocol.repeat or state["elapsed_ns"] < min_ns:
                continue
            if protocol.target_ci_pct is None:
                return
            if n > 100 and n % max(1, n // 50):
                continue  # re-check the CI every ~2 % more samples, not on every one
            halfwidth = relative_ci_halfwidth_pct(samples_ns)
            if halfwidth is not None and halfwidth <= protocol.target_ci_pct:
                state["stopped_by"] = "ci-target"
                return

    gc.collect()
    context = around_timed() if around_timed is not None else contextlib.nullcontext()
    with gc_paused(), context:  # off for the whole loop, the stopping rules' work included
        timed_loop()
    return Timing(
        samples_ms=[s / 1e6 for s in samples_ns],
        first_call_ms=first_ns / 1e6,
        warmup_calls=warm_calls,
        warmup_ms_total=warm_ns / 1e6,
        stopped_by=state["stopped_by"],
        calls_per_sample=per_sample,
        timer=getattr(timer, "name", type(timer).__name__),
        timed_s=state["elapsed_ns"] / 1e9,
    )


def find_max_batch(fits: Callable[[int], bool], *, start: int = 1, limit: int = 4096
                   ) -> tuple[int, list[tuple[int, bool]]]:
    """Largest batch ``b`` in [start, limit] with ``fits(b)`` True: doubling, then bisection.

    ``fits`` must return False on out-of-memory (and clean up after itself); any other
    exception propagates. Returns ``(best, tries)`` where ``tries`` lists ``(batch, fitted)``
    in order; ``best`` is 0 when even ``start`` does not fit. Assumes fitting is monotone.
    """
    tries: list[tuple[int, bool]] = []

    def attempt(batch: int) -> bool:
        ok = bool(fits(batch))
        tries.append((batch, ok))
        return ok

    if not attempt(start):
        return 0, tries
    good, bad = start, None
    while bad is None:
        if good >= limit:
            return good, tries
        nxt = min(good * 2, limit)
        if attempt(nxt):
            good = nxt
        else:
            bad = nxt
    while bad - good > 1:
        mid = (good + bad) // 2
        if attempt(mid):
            good = mid
        else:
            bad = mid
    return good, tries
