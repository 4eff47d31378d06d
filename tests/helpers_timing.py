"""A fake nanosecond clock for the timed loop's tests: exact numbers, no real time."""

from __future__ import annotations


class FakeClock:
    """A nanosecond clock that moves only when the fake model is called."""

    def __init__(self, durations_ms):
        self.now = 0
        self.durations = list(durations_ms)
        self.calls = 0
        self.syncs = 0

    def __call__(self) -> int:
        return self.now

    def fn(self) -> None:
        index = min(self.calls, len(self.durations) - 1)
        self.now += int(round(self.durations[index] * 1e6))
        self.calls += 1

    def sync(self) -> None:
        self.syncs += 1
