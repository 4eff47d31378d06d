"""Tiny models for the timing and isolation tests, referenced as ``python:tests.fixtures_models:NAME``.

Each callable returns an ``nn.Module``. The misbehaving ones misbehave in ``forward`` (which
the FLOP counter calls too), so a worker meets the problem whichever stage comes first.
"""

from __future__ import annotations

import os
import signal
import time

import torch
from torch import nn


class _Tiny(nn.Module):
    def __init__(self, width: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, stride=2, padding=1)
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        return self.head(self.conv(x).mean(dim=(2, 3)))


def tiny(width: int = 4) -> nn.Module:
    """A conv and a linear layer: a forward pass takes well under a millisecond at 32 px."""
    return _Tiny(width)


class _Hangs(_Tiny):
    def forward(self, x):
        time.sleep(3600)
        return super().forward(x)


def hangs() -> nn.Module:
    """Forward never returns (sleeps an hour): the worker must be killed by ``timeout_s``."""
    return _Hangs()


class _Raises(_Tiny):
    def forward(self, x):
        raise RuntimeError("fixture forward failed on purpose")


def raises() -> nn.Module:
    """Forward raises ``RuntimeError``: the row must be ``failed`` with that message."""
    return _Raises()


class _Exits(_Tiny):
    def forward(self, x):
        os._exit(3)


def exits() -> nn.Module:
    """Forward ends the process with ``os._exit(3)``: no row file, a readable reason."""
    return _Exits()


class _Killed(_Tiny):
    def forward(self, x):
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)


def killed() -> nn.Module:
    """Forward SIGKILLs its own process (what the OOM killer does)."""
    return _Killed()


def not_a_module():
    """Returns something that is not an ``nn.Module``."""
    return torch.zeros(1)


class _Spins(_Tiny):
    """Busy-waits a fixed wall-clock time per call: two of them have a known latency ratio
    whatever the machine's speed (the reference-relative tests)."""

    def __init__(self, ms: float):
        super().__init__()
        self.ms = ms

    def forward(self, x):
        end = time.perf_counter() + self.ms / 1000
        while time.perf_counter() < end:
            pass
        return super().forward(x)


def spins_2ms() -> nn.Module:
    return _Spins(2.0)


def spins_4ms() -> nn.Module:
    return _Spins(4.0)


def spins_6ms() -> nn.Module:
    return _Spins(6.0)


class _Repeats(_Tiny):
    """``n`` 128×128 matrix products per call: compute-bound work that scales with ``n``, so
    two of them keep their latency ratio on a machine whose speed drifts (both slow down)."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n
        self.register_buffer("a", torch.randn(128, 128))

    def forward(self, x):
        y = self.a
        for _ in range(self.n):
            y = torch.tanh(y @ self.a)
        return super().forward(x) + y.mean()


def matmuls_20() -> nn.Module:
    return _Repeats(20)


def matmuls_40() -> nn.Module:
    return _Repeats(40)
