"""Models for tests/test_runtimes.py, referenced as ``python:tests.fixtures_runtimes:NAME``."""

from __future__ import annotations

import torch
from torch import nn


@torch.library.custom_op("vitbench_test::opaque", mutates_args=())
def opaque(x: torch.Tensor) -> torch.Tensor:
    """An operator no ONNX exporter knows: exporting a model that calls it must fail."""
    return x * 2


@opaque.register_fake
def _(x):
    return torch.empty_like(x)


class _Opaque(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)

    def forward(self, x):
        return opaque(self.conv(x)).mean(dim=(2, 3))


def unexportable() -> nn.Module:
    """A conv followed by :func:`opaque`: runs in eager PyTorch, cannot be exported."""
    return _Opaque()


class _Lies(nn.Module):
    """Exports the graph of ``x * 1`` but answers ``x * 1.5`` in eager PyTorch: a runtime's
    output differs from eager's, as a wrongly exported model's would."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)

    def forward(self, x):
        y = self.conv(x).mean(dim=(2, 3))
        if torch.compiler.is_exporting() or torch.jit.is_tracing():
            return y
        return y * 1.5


def lies() -> nn.Module:
    return _Lies()
