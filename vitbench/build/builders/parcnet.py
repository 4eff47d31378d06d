"""ParC-Net-S (position-aware circular convolution, formerly EdgeFormer-S), random init.

Zhang et al., "ParC-Net: Position Aware Circular Convolution with Merits from ConvNets
and Transformer", ECCV 2022 (arXiv:2203.03952). Written from the configuration of the
authors' ``hkzhang-git/ParC-Net`` (ml-cvnets based): ``scale_s`` in
``cvnets/models/classification/config/edgeformer.py`` with the options of
``config/classification/edgeformer/edgeformer_s.yaml`` (mode ``outer_frame_v1``, kernel
``gcc_ca``, fusion ``concat``, meta kernels resized by bilinear interpolation, position
embedding on, SiLU), the model in ``cvnets/models/classification/edgeformer.py`` and the
blocks in ``cvnets/modules/edgeformer_block.py``:

- stem: 3×3 stride-2 conv 3→16, BatchNorm, SiLU; layer 1: one MobileNetV2 block to 32;
  layer 2: three to 64 (the first stride 2); MobileNetV2 blocks expand ×4 (timm's
  ``InvertedResidual``, the same block);
- layers 3-5 (outputs 96/128/160, ParC widths 192/256/320, FFN widths 384/512/640,
  2/4/3 ParC blocks, meta kernels 32/16/8 long = the map side at 256²): a stride-2
  MobileNetV2 block, then the "outer frame": a grouped 3×3 conv-BN-SiLU widening to the
  ParC width (groups = gcd of the widths) and a 1×1 conv; the ParC blocks; BatchNorm; a
  grouped 1×1 conv-BN-SiLU back to the layer width; a 3×3 conv-BN-SiLU fusing it with the
  layer's input (concatenated);
- ParC block (``gcc_ca_mf_block``): the channels split in halves. One half goes through a
  global circular conv along H, then one along W; the other along W, then H. Each is a
  depthwise conv whose kernel (the learned "meta kernel", bilinearly resized to the map
  side) is as long as the map, over the map padded circularly by side-1: every output
  sees the whole row or column. Each half is BatchNorm'd first and added back after. The
  first block of a layer adds learned position embeddings (the meta kernel's length)
  before each of the two convs. The kernels have no bias (``bias`` is absent from the
  configuration, so ``None``). Then an FFN (BatchNorm, 1×1 conv, Hardswish, 1×1 conv)
  gated by channel attention (global pool, 1×1 conv to 1/16, BN, Hardswish, 1×1 conv,
  BN, Hardsigmoid), added to its input;
- head: 1×1 conv-BN-SiLU to 640, global mean, dropout 0.2, linear.

Checked against the source's own model (cvnets run locally, weights copied over): the
same 5,037,088 parameters, and identical outputs of layers 3-5 at 256². The source sizes
both kernels by the map's *height* and expands the position embedding to a square, so it
runs on square inputs only; here each axis uses its own side, which is the same on
squares and also runs on rectangles.

At 256² with 1000 classes: 5.037 M parameters (README: 5.0 M) and 1.657 GMACs under
``matmul-only`` (README: 1740 M MAdds). The README's figure is cvnets' own profiler (the
source's ``profile_model`` prints 1740.552 M): ``outer_frame_v1.profile_module`` adds the
FFN biases (``(C + F)·H·W`` a block) and counts the channel attention as two ``F × F/16``
1×1 convs at every pixel (``F`` the FFN width), where the layer runs them once on the
pooled ``C``-wide vector. Those two terms are 83.2 M at 256², and 1657.3 + 83.2 =
1740.5 M. The seed's 3.5 G is twice the README's MAdds (FLOPs = 2·MACs).
"""

from __future__ import annotations

from math import gcd
from typing import Sequence

import torch
import torch.nn.functional as F
from timm.layers import ConvNormAct
from timm.models._efficientnet_blocks import InvertedResidual
from torch import nn

from vitbench.build.builders import register

__all__ = [
    "circular_conv",
    "ChannelAttention",
    "ParCBlock",
    "ParCLayer",
    "ParCNet",
    "parcnet_s",
]


def circular_conv(x: torch.Tensor, kernel: torch.Tensor, dim: int) -> torch.Tensor:
    """Depthwise conv along ``dim`` (2 = H, 3 = W) with a kernel as long as that side,
    over the map padded circularly by side-1: output ``i`` sums ``x[(i + t) % side]``."""
    side = x.shape[dim]
    pad = (0, 0, 0, side - 1) if dim == 2 else (0, side - 1, 0, 0)
    return F.conv2d(F.pad(x, pad, mode="circular"), kernel, groups=x.shape[1])


def _resized(weight: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A meta kernel or position embedding resized (bilinear, corners aligned) to ``size``."""
    if tuple(weight.shape[-2:]) == size:
        return weight
    return F.interpolate(weight, size=size, mode="bilinear", align_corners=True)


class ChannelAttention(nn.Module):
    """Global pool → 1×1 conv to C/16 → BN → Hardswish → 1×1 conv → BN → Hardsigmoid gate."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = channels // reduction
        self.fc = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.Hardswish(),
            nn.Conv2d(hidden, channels, 1, bias=False), nn.BatchNorm2d(channels),
            nn.Hardsigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean(dim=(2, 3), keepdim=True))


class ParCBlock(nn.Module):
    """Two halves through H-then-W and W-then-H global circular convs, then a gated FFN."""

    def __init__(self, dim: int, meta_kernel_size: int, ffn_dim: int, use_pe: bool):
        super().__init__()
        half = dim // 2
        size = meta_kernel_size
        self.norm_h, self.norm_w = nn.BatchNorm2d(half), nn.BatchNorm2d(half)
        # Depthwise kernels [C, 1, K, 1] (along H) and [C, 1, 1, K] (along W).
        self.kernel_1_h = nn.Parameter(torch.empty(half, 1, size, 1))
        self.kernel_1_w = nn.Parameter(torch.empty(half, 1, 1, size))
        self.kernel_2_h = nn.Parameter(torch.empty(half, 1, size, 1))
        self.kernel_2_w = nn.Parameter(torch.empty(half, 1, 1, size))
        for kernel in (self.kernel_1_h, self.kernel_1_w, self.kernel_2_h, self.kernel_2_w):
            nn.init.kaiming_uniform_(kernel, a=5 ** 0.5)
        self.use_pe = use_pe
        if use_pe:
            self.pe_1_h = nn.Parameter(torch.randn(1, half, size, 1))
            self.pe_1_w = nn.Parameter(torch.randn(1, half, 1, size))
            self.pe_2_h = nn.Parameter(torch.randn(1, half, size, 1))
            self.pe_2_w = nn.Parameter(torch.randn(1, half, 1, size))
        self.ffn = nn.Sequential(
            nn.BatchNorm2d(dim), nn.Conv2d(dim, ffn_dim, 1), nn.Hardswish(),
            nn.Conv2d(ffn_dim, dim, 1), nn.Dropout(0.1))
        self.ca = ChannelAttention(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        along_h, along_w = (height, 1), (1, width)
        x_h, x_w = torch.chunk(x, 2, dim=1)
        y_h, y_w = x_h, x_w
        if self.use_pe:
            y_h = y_h + _resized(self.pe_1_h, along_h)
            y_w = y_w + _resized(self.pe_1_w, along_w)
        y_h = circular_conv(self.norm_h(y_h), _resized(self.kernel_1_h, along_h), dim=2)
        y_w = circular_conv(self.norm_w(y_w), _resized(self.kernel_1_w, along_w), dim=3)
        if self.use_pe:
            y_h = y_h + _resized(self.pe_2_w, along_w)
            y_w = y_w + _resized(self.pe_2_h, along_h)
        y_h = circular_conv(y_h, _resized(self.kernel_2_w, along_w), dim=3)
        y_w = circular_conv(y_w, _resized(self.kernel_2_h, along_h), dim=2)
        x = torch.cat((x_h + y_h, x_w + y_w), dim=1)
        return x + self.ca(self.ffn(x))


class ParCLayer(nn.Module):
    """The "outer frame": widen, ParC blocks, BN, narrow, fuse with the input (concat)."""

    def __init__(self, channels: int, parc_channels: int, ffn_channels: int, depth: int,
                 meta_kernel_size: int, act_layer=nn.SiLU):
        super().__init__()
        groups = gcd(parc_channels, channels)
        self.widen = nn.Sequential(
            ConvNormAct(channels, parc_channels, 3, groups=groups, act_layer=act_layer),
            nn.Conv2d(parc_channels, parc_channels, 1, bias=False))
        self.blocks = nn.Sequential(
            *[ParCBlock(parc_channels, meta_kernel_size, ffn_channels, use_pe=index == 0)
              for index in range(depth)],
            nn.BatchNorm2d(parc_channels))
        self.narrow = ConvNormAct(parc_channels, channels, 1, groups=groups, act_layer=act_layer)
        self.fuse = ConvNormAct(2 * channels, channels, 3, act_layer=act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.narrow(self.blocks(self.widen(x)))
        return self.fuse(torch.cat((y, x), dim=1))


class ParCNet(nn.Module):
    """ParC-Net: MobileNetV2 layers 1-2, three MobileNetV2 + ParC layers, 1×1 head conv."""

    def __init__(self, widths: Sequence[int] = (32, 64, 96, 128, 160),
                 parc_widths: Sequence[int] = (192, 256, 320),
                 ffn_widths: Sequence[int] = (384, 512, 640),
                 parc_depths: Sequence[int] = (2, 4, 3),
                 meta_kernel_sizes: Sequence[int] = (32, 16, 8),
                 stem_width: int = 16, layer2_depth: int = 3, expand_ratio: float = 4.0,
                 head_width_factor: int = 4, drop_rate: float = 0.2,
                 num_classes: int = 1000, in_chans: int = 3,
                 img_size: int | Sequence[int] = 256):
        super().__init__()
        # img_size is accepted for the zoo; meta kernels are resized to any input.
        del img_size
        act = nn.SiLU

        def mv2(in_chs: int, out_chs: int, stride: int) -> nn.Module:
            return InvertedResidual(in_chs, out_chs, stride=stride, exp_ratio=expand_ratio,
                                    act_layer=act)

        self.stem = ConvNormAct(in_chans, stem_width, 3, stride=2, act_layer=act)
        layers = [mv2(stem_width, widths[0], 1),
                  nn.Sequential(*[mv2(widths[0] if i == 0 else widths[1], widths[1],
                                      2 if i == 0 else 1) for i in range(layer2_depth)])]
        for index, width in enumerate(widths[2:]):
            layers.append(nn.Sequential(
                mv2(widths[index + 1], width, 2),
                ParCLayer(width, parc_widths[index], ffn_widths[index], parc_depths[index],
                          meta_kernel_sizes[index], act_layer=act)))
        self.layers = nn.Sequential(*layers)
        head_width = min(head_width_factor * widths[-1], 960)
        self.head_conv = ConvNormAct(widths[-1], head_width, 1, act_layer=act)
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(head_width, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head_conv(self.layers(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.forward_features(x).mean(dim=(2, 3))))


@register
def parcnet_s(**kwargs) -> nn.Module:
    """ParC-Net-S: 5.037 M params, 1.657 GMACs at 256² (README: 5.0 M, 1740 M MAdds)."""
    return ParCNet(**kwargs)
