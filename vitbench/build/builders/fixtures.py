"""Test fixtures for the regression gate (``vitbench:gate_fixture``, ``vitbench:gate_calibration``).

``gate_fixture`` is a small CNN whose cost can be changed on purpose, so the gate can be
checked end to end against changes of known size (see ``vitbench gate-selftest``):

* ``extra_work`` — re-runs the last of the ``blocks`` identical conv blocks
  ``round(extra_work * blocks)`` more times per forward, output discarded. With the default
  20 blocks, 0.05 / 0.10 / 0.20 add 1 / 2 / 4 blocks, i.e. about +5 / +10 / +20 % latency
  (slightly less: the stem and head are not repeated). The extra work is real compute, so
  a FLOP counter that traces it may count it too.
* ``hold_mb`` — allocates (and writes) a tensor of that many MiB on the first forward and
  keeps it referenced: peak memory grows by that much, latency does not.
* ``extra_linear`` — adds that many ``nn.Linear(width, width)`` layers before the head:
  params and GFLOPs grow by a known, tiny amount.

``gate_calibration`` is the fixed machine-speed probe timed in every gate run: one fp32
GEMM (``gemm`` × ``gemm``) and one 3×3 convolution (``channels`` → ``channels`` on a
``spatial``² map) per forward, on internal tensors, independent of the input size.
"""

from __future__ import annotations

import torch
from torch import nn

from vitbench.build.builders import register


class GateFixture(nn.Module):
    def __init__(self, blocks: int = 20, width: int = 16, extra_work: float = 0.0,
                 hold_mb: float = 0.0, extra_linear: int = 0, num_classes: int = 10):
        super().__init__()
        if blocks < 1 or width < 1:
            raise ValueError("blocks and width must be at least 1")
        if extra_work < 0 or hold_mb < 0 or extra_linear < 0:
            raise ValueError("extra_work, hold_mb and extra_linear must be >= 0")
        self.stem = nn.Conv2d(3, width, kernel_size=4, stride=4)
        self.blocks = nn.Sequential(*[
            nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
            for _ in range(blocks)])
        self.extra_repeats = int(round(extra_work * blocks))
        self.extra = nn.Sequential(*[nn.Linear(width, width) for _ in range(extra_linear)])
        self.head = nn.Linear(width, num_classes)
        self.hold_bytes = int(hold_mb * 2**20)
        self._held = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        for _ in range(self.extra_repeats):
            self.blocks[-1](x)  # injected extra work, result discarded
        if self.hold_bytes and self._held is None:
            self._held = torch.ones(self.hold_bytes, dtype=torch.uint8)  # written: resident
        x = x.mean(dim=(2, 3))
        return self.head(self.extra(x))


@register
def gate_fixture(blocks: int = 20, width: int = 16, extra_work: float = 0.0,
                 hold_mb: float = 0.0, extra_linear: int = 0, num_classes: int = 10) -> nn.Module:
    """Gate test fixture: a 20-block CNN with injectable extra latency, memory and layers."""
    return GateFixture(blocks=blocks, width=width, extra_work=extra_work, hold_mb=hold_mb,
                       extra_linear=extra_linear, num_classes=num_classes)


class GateCalibration(nn.Module):
    def __init__(self, gemm: int = 256, channels: int = 32, spatial: int = 56):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.register_buffer("a", torch.randn(gemm, gemm, generator=generator))
        self.register_buffer("b", torch.randn(gemm, gemm, generator=generator))
        self.register_buffer("feature", torch.randn(1, channels, spatial, spatial,
                                                    generator=generator))
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.mm(self.a, self.b)
        z = self.conv(self.feature)
        return y.mean() + z.mean() + x.mean()


@register
def gate_calibration(gemm: int = 256, channels: int = 32, spatial: int = 56) -> nn.Module:
    """Machine-speed probe: one fp32 GEMM and one 3×3 conv per forward (fixed shapes)."""
    return GateCalibration(gemm=gemm, channels=channels, spatial=spatial)
