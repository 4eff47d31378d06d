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
