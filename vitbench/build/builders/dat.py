"""DAT (Deformable Attention Transformer, CVPR 2022) for ImageNet classification, random init.

Xia et al., "Vision Transformer with Deformable Attention", CVPR 2022 (arXiv:2201.00520).
Not in timm; written here from the configuration of the authors' ``LeapLabTHU/DAT`` at tag
``CVPR2022`` (``configs/dat_{tiny,small}.yaml``, ``models/dat.py``, ``models/dat_blocks.py``;
the repository's main branch now holds DAT++, a different model), with timm's Swin blocks.

Configuration:

- stem: ``4×4`` stride-4 conv + LayerNorm; between stages a ``2×2`` stride-2 conv (no bias)
  doubling the width + LayerNorm; widths 96-192-384-768, heads 3-6-12-24, MLP ratio 4;
  DAT-T depths 2-2-6-2, DAT-S 2-2-18-2;
- blocks alternate by ``stage_spec``: stages 1–2 ``[L, S]`` (Swin's window attention and
  shifted window attention, window 7; the shift is ``ceil(7/2)`` = 4, not Swin's 3),
  stages 3–4 ``[L, D]`` repeated (local window attention, then deformable attention). Every
  block is pre-norm: ``x + attn(LN(x))``, ``x + MLP(LN(x))``;
- deformable attention (D), with ``groups`` 3 (stage 3) and 6 (stage 4), 128 channels a
  group either way: queries from a ``1×1`` projection; an offset network per group on the
  queries (depthwise ``k×k`` conv, ``k`` = 5 in stage 3 and 3 in stage 4, + LayerNorm + GELU
  + a bias-free ``1×1`` conv to 2 channels), squashed by ``tanh`` to at most
  ``offset_range_factor`` = 2 cells; keys and values are ``1×1`` projections of the feature
  map bilinearly sampled (``grid_sample``) at reference points + offsets (stride 1: one
  point per position, so every query attends to H·W sampled keys); the attention adds a
  relative-position bias sampled bilinearly (``grid_sample``) from a learned
  ``(2H-1)×(2W-1)`` table per head at the query–key displacements; a ``1×1`` output
  projection;
- final LayerNorm, mean over positions, linear head.

Counting: the two ``grid_sample`` calls per D block are interpolation, not counted under
``matmul-only`` (vitbench's decision, ``docs/counting.md``; fvcore's convention counts them
at 4 per sampled value). Everything else is linear layers, convs and attention products.

At 224² with 1000 classes (self-measured, matmul-only; both counters agree, no skipped op
that may carry MACs). The parameter counts and, given the same weights, the outputs are those
of the authors' own ``DAT`` at the ``CVPR2022`` tag (checked once outside the test suite, with
offsets far from zero):

=======  ==========  ======  =====================  ============
model    params (M)  GMACs   paper                  seed print
=======  ==========  ======  =====================  ============
DAT-T    28.32       4.56    --                     29, 4.5
DAT-S    49.70       8.96    50 M, 9.0 G            50, 9.0
=======  ==========  ======  =====================  ============

The source's README prints no sizes; the paper's DAT-S figures are as Papers with Code lists
them. The seed's 29 M for DAT-T lies 0.7 M above what the CVPR2022 code builds. fvcore's
convention (norms and both ``grid_sample`` calls counted) gives 4.59 / 9.01. The
relative-position tables make the parameter count depend on the input size.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath, LayerNorm2d, Mlp, trunc_normal_
from timm.models.swin_transformer import SwinTransformerBlock
from torch import nn

from vitbench.build.builders import register

__all__ = ["DeformableAttention", "DeformableBlock", "Dat", "dat_tiny", "dat_small"]


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    height, width = size
    return (int(height), int(width))


def _linear_rates(last: float, count: int) -> list[float]:
    """``count`` stochastic-depth rates from 0 to ``last`` (plain floats: builds on ``meta``)."""
    return [last * i / (count - 1) if count > 1 else 0.0 for i in range(count)]


def _reference_points(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """Cell centres of an ``H×W`` grid in ``grid_sample``'s [-1, 1] coordinates, ``(H, W, 2)``
    as (y, x)."""
    ys = (torch.arange(height, dtype=like.dtype, device=like.device) + 0.5) / height * 2 - 1
    xs = (torch.arange(width, dtype=like.dtype, device=like.device) + 0.5) / width * 2 - 1
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1)


class DeformableAttention(nn.Module):
    """DAT's deformable multi-head attention on a ``(B, H, W, C)`` map (stride 1).

    The groups share the offset network; each group's keys and values are sampled at its
    own deformed points, and each group's heads attend to them.
    """

    def __init__(self, dim: int, num_heads: int, groups: int, fmap_size: tuple[int, int],
                 offset_kernel: int, offset_range_factor: float = 2.0):
        super().__init__()
        self.num_heads, self.groups = num_heads, groups
        self.head_dim, self.group_dim = dim // num_heads, dim // groups
        self.offset_range_factor = offset_range_factor
        self.proj_q = nn.Linear(dim, dim)
        self.proj_k = nn.Linear(dim, dim)
        self.proj_v = nn.Linear(dim, dim)
        self.proj_out = nn.Linear(dim, dim)
        cg = self.group_dim
        self.conv_offset = nn.Sequential(
            nn.Conv2d(cg, cg, offset_kernel, padding=offset_kernel // 2, groups=cg),
            LayerNorm2d(cg, eps=1e-5),
            nn.GELU(),
            nn.Conv2d(cg, 2, 1, bias=False),
        )
        height, width = fmap_size
        self.rpe_table = nn.Parameter(torch.zeros(num_heads, 2 * height - 1, 2 * width - 1))
        trunc_normal_(self.rpe_table, std=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        g, cg, heads = self.groups, self.group_dim, self.num_heads
        q = self.proj_q(x)  # B, H, W, C
        q_groups = q.permute(0, 3, 1, 2).reshape(b * g, cg, h, w)
        offset = self.conv_offset(q_groups).permute(0, 2, 3, 1)  # B·g, H, W, 2 as (y, x)
        cell = torch.tensor([1.0 / h, 1.0 / w], dtype=x.dtype, device=x.device)
        offset = offset.tanh() * cell * self.offset_range_factor
        reference = _reference_points(h, w, x)
        points = offset + reference  # B·g, H, W, 2
        x_groups = x.permute(0, 3, 1, 2).reshape(b * g, cg, h, w)
        sampled = F.grid_sample(x_groups, points.flip(-1), mode="bilinear", align_corners=True)
        sampled = sampled.reshape(b, c, h * w).transpose(1, 2)  # B, Ns, C
        k = self.proj_k(sampled).reshape(b, h * w, heads, -1).transpose(1, 2)
        v = self.proj_v(sampled).reshape(b, h * w, heads, -1).transpose(1, 2)
        q = q.reshape(b, h * w, heads, -1).transpose(1, 2)
        # The bias at each query–key displacement, read off the table (half-scaled so the
        # displacement's [-2, 2] range maps onto the table's [-1, 1] coordinates).
        displacement = (reference.reshape(1, h * w, 1, 2)
                        - points.reshape(b * g, 1, h * w, 2)) * 0.5  # B·g, Nq, Ns, 2
        table = self.rpe_table.unsqueeze(0).expand(b, -1, -1, -1)
        table = table.reshape(b * g, heads // g, 2 * h - 1, 2 * w - 1)
        bias = F.grid_sample(table, displacement.flip(-1), mode="bilinear", align_corners=True)
        bias = bias.reshape(b, heads, h * w, h * w)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj_out(out.transpose(1, 2).reshape(b, h, w, c))


class DeformableBlock(nn.Module):
    """``x + D-attn(LN(x))``, ``x + MLP(LN(x))`` on a ``(B, H, W, C)`` map."""

    def __init__(self, dim: int, num_heads: int, groups: int, fmap_size: tuple[int, int],
                 offset_kernel: int, mlp_ratio: float, drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = DeformableAttention(dim, num_heads, groups, fmap_size, offset_kernel)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class Downsample(nn.Module):
    """``2×2`` stride-2 conv (no bias) doubling the width, then LayerNorm; channels last."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_dim, out_dim, 2, stride=2, bias=False)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))


class Dat(nn.Module):
    """DAT: Swin-style window stages 1–2, window + deformable attention in stages 3–4."""

    def __init__(self, img_size: int | Sequence[int] = 224, num_classes: int = 1000,
                 dims: Sequence[int] = (96, 192, 384, 768), depths: Sequence[int] = (2, 2, 6, 2),
                 num_heads: Sequence[int] = (3, 6, 12, 24), groups: Sequence[int] = (-1, -1, 3, 6),
                 window_size: int = 7, mlp_ratio: float = 4.0, drop_path_rate: float = 0.2):
        super().__init__()
        height, width = _pair(img_size)
        offset_kernels = (9, 7, 5, 3)  # the source's per-stage offset-network kernel sizes
        self.stem = nn.Conv2d(3, dims[0], 4, stride=4)
        self.stem_norm = nn.LayerNorm(dims[0])
        rates = iter(_linear_rates(drop_path_rate, sum(depths)))
        self.stages = nn.ModuleList()
        for i, depth in enumerate(depths):
            fmap = (height // 2 ** (i + 2), width // 2 ** (i + 2))
            blocks = []
            for j in range(depth):
                rate = next(rates)
                if j % 2 == 0 or i < 2:  # L (even) or S (odd, stages 1–2)
                    shift = math.ceil(window_size / 2) if j % 2 else 0
                    blocks.append(SwinTransformerBlock(
                        dims[i], fmap, num_heads[i], window_size=window_size, shift_size=shift,
                        mlp_ratio=mlp_ratio, drop_path=rate))
                else:  # D
                    blocks.append(DeformableBlock(dims[i], num_heads[i], groups[i], fmap,
                                                  offset_kernels[i], mlp_ratio, rate))
            self.stages.append(nn.Sequential(*blocks))
        self.downsamples = nn.ModuleList(Downsample(dims[i], dims[i + 1]) for i in range(3))
        self.norm = nn.LayerNorm(dims[-1])
        self.head = nn.Linear(dims[-1], num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem_norm(self.stem(x).permute(0, 2, 3, 1))  # B, H, W, C
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index < len(self.downsamples):
                x = self.downsamples[index](x)
        return self.norm(x).mean(dim=(1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


@register
def dat_tiny(img_size: int | Sequence[int] = 224, num_classes: int = 1000, **kwargs) -> Dat:
    """DAT-T (``configs/dat_tiny.yaml`` at ``CVPR2022``): 28.32 M, 4.56 GMACs at 224²."""
    return Dat(img_size=img_size, num_classes=num_classes, **kwargs)


@register
def dat_small(img_size: int | Sequence[int] = 224, num_classes: int = 1000, **kwargs) -> Dat:
    """DAT-S (``configs/dat_small.yaml`` at ``CVPR2022``): DAT-T with depths 2-2-18-2;
    49.70 M, 8.96 GMACs at 224² (paper 50 M, 9.0 G)."""
    return Dat(img_size=img_size, num_classes=num_classes, depths=(2, 2, 18, 2),
               drop_path_rate=0.3, **kwargs)
