"""CSWin Transformer (cross-shaped window self-attention) for ImageNet classification, random init.

Dong et al., "CSWin Transformer: A General Vision Transformer Backbone with Cross-Shaped
Windows", CVPR 2022 (arXiv:2107.00652). Not in timm; written here from the configuration in
the authors' ``microsoft/CSWin-Transformer`` (``models/cswin.py``: ``CSWin_64_12211_tiny_224``,
``CSWin_64_24322_small_224``, ``CSWin_96_24322_base_224``), with timm's layers.

Configuration:

- stem: ``7×7`` stride-4 conv (padding 2) + LayerNorm; between stages a ``3×3`` stride-2 conv
  (padding 1) doubling the width + LayerNorm; stages at strides 4/8/16/32;
- CSWin-T: width 64, depths 1-2-21-1; CSWin-S: width 64, depths 2-4-32-2; CSWin-B: width
  96, depths 2-4-32-2; heads 2-4-8-16 (B: 4-8-16-32); stripe widths 1-2-7-7; MLP ratio 4;
- block: pre-norm; one ``qkv`` linear (bias) over all channels; the first half of the
  channels (and heads) attend inside full-height stripes ``sw`` tokens wide, the second half
  inside full-width stripes ``sw`` tokens high; each half adds *LePE*, a ``3×3`` depthwise
  conv (bias) of its values run inside each stripe (zero padding at the stripe's border);
  the halves are concatenated and projected by a linear layer. The last stage, and any stage
  whose map is a single ``sw×sw`` stripe, attends over the whole map with all heads;
- final LayerNorm, mean over tokens, linear head.

The classification code asserts maps divisible by the stripe width; other inputs are
zero-padded symmetrically around ``q``/``k``/``v`` and cropped back, as the authors'
segmentation backbone does (224² needs none).

At 224² with 1000 classes (self-measured; matmul-only MACs, both counters agree, no
uncounted op). The parameter counts and, given the same weights, the outputs are those of the
source's own ``CSWinTransformer``:

=======  ==========  ======  ============  ============
model    params (M)  GMACs   README        seed print
=======  ==========  ======  ============  ============
CSWin-T  22.32       4.32    23 M, 4.3 G   23 M, 4.5 G
CSWin-S  34.64       6.80    35 M, 6.9 G   35 M, 6.9 G
CSWin-B  77.38       14.96   78 M, 15.0 G  --
=======  ==========  ======  ============  ============

The README's 23 M and 78 M lie 0.7 M and 0.6 M above what its own code builds (CSWin-L's
173.26 M does round to its printed 173 M). The README names no FLOP counter; with fvcore's
default convention (norms counted) the counts are 4.34 / 6.83 / 15.00, so CSWin-S stays
1 % under its printed 6.9 G. The seed's 4.5 G for CSWin-T is neither the README's 4.3 G nor
this count.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, to_2tuple, trunc_normal_
from torch import nn

from vitbench.build.builders import register

__all__ = ["CSWinTransformer", "LePEStripeAttention", "cswin_tiny", "cswin_small", "cswin_base"]

#: Stripe orientations: full-height stripes, full-width stripes, one window over the map.
STRIPES = ("vertical", "horizontal", "full")


def _linear_rates(last: float, count: int) -> list[float]:
    """``count`` stochastic-depth rates from 0 to ``last`` (plain floats: builds on ``meta``)."""
    return [last * i / (count - 1) if count > 1 else 0.0 for i in range(count)]


class LePEStripeAttention(nn.Module):
    """Multi-head self-attention inside stripes of a channels-last map, plus LePE.

    ``orientation`` picks the stripe: ``vertical`` is ``H×width``, ``horizontal`` is
    ``width×W``, ``full`` the whole map. LePE (locally-enhanced positional encoding) adds a
    ``3×3`` depthwise conv of the values, run inside each stripe, to the attention output.
    """

    def __init__(self, dim: int, num_heads: int, orientation: str, width: int):
        super().__init__()
        if orientation not in STRIPES:
            raise ValueError(f"orientation {orientation!r} is not one of {STRIPES}")
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.orientation = orientation
        self.width = width
        self.lepe = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim)

    def stripe_shape(self, height: int, width: int) -> tuple[int, int]:
        if self.orientation == "vertical":
            return height, self.width
        if self.orientation == "horizontal":
            return self.width, width
        return height, width

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        batch, height, width, dim = q.shape
        rows, cols = self.stripe_shape(height, width)
        pad_h, pad_w = -height % rows, -width % cols
        top, left = pad_h // 2, pad_w // 2
        if pad_h or pad_w:
            pad = (0, 0, left, pad_w - left, top, pad_h - top)
            q, k, v = (F.pad(t, pad) for t in (q, k, v))
        padded_h, padded_w = height + pad_h, width + pad_w
        grid_h, grid_w = padded_h // rows, padded_w // cols

        def to_stripes(t: torch.Tensor) -> torch.Tensor:
            """``(B, H, W, C)`` → ``(B·stripes, rows·cols, C)``."""
            t = t.reshape(batch, grid_h, rows, grid_w, cols, dim).permute(0, 1, 3, 2, 4, 5)
            return t.reshape(-1, rows * cols, dim)

        def to_heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(t.shape[0], t.shape[1], self.num_heads, -1).transpose(1, 2)

        q, k, v = (to_stripes(t) for t in (q, k, v))
        lepe = self.lepe(v.transpose(1, 2).reshape(-1, dim, rows, cols))
        lepe = lepe.flatten(2).transpose(1, 2)
        out = F.scaled_dot_product_attention(to_heads(q), to_heads(k), to_heads(v))
        out = out.transpose(1, 2).reshape(-1, rows * cols, dim) + lepe
        out = out.reshape(batch, grid_h, grid_w, rows, cols, dim).permute(0, 1, 3, 2, 4, 5)
        out = out.reshape(batch, padded_h, padded_w, dim)
        return out[:, top:top + height, left:left + width]


class CSWinBlock(nn.Module):
    """Pre-norm block: cross-shaped window attention (two stripe halves) and an MLP."""

    def __init__(self, dim: int, num_heads: int, stripe_width: int, full: bool,
                 mlp_ratio: float = 4.0, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, dim * 3)
        if full:
            self.attns = nn.ModuleList([LePEStripeAttention(dim, num_heads, "full", stripe_width)])
        else:
            self.attns = nn.ModuleList(
                LePEStripeAttention(dim // 2, num_heads // 2, orientation, stripe_width)
                for orientation in ("vertical", "horizontal"))
        self.proj = nn.Linear(dim, dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        if len(self.attns) == 1:
            out = self.attns[0](q, k, v)
        else:
            half = x.shape[-1] // 2
            parts = (slice(None, half), slice(half, None))
            out = torch.cat([attn(q[..., part], k[..., part], v[..., part])
                             for attn, part in zip(self.attns, parts)], dim=-1)
        x = x + self.drop_path(self.proj(out))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class ConvDownsample(nn.Module):
    """Strided conv on a channels-last map, then LayerNorm (the stem and the stage merges)."""

    def __init__(self, in_dim: int, out_dim: int, kernel_size: int, stride: int, padding: int):
        super().__init__()
        self.conv = nn.Conv2d(in_dim, out_dim, kernel_size, stride, padding)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: torch.Tensor, channels_last: bool = True) -> torch.Tensor:
        if channels_last:
            x = x.permute(0, 3, 1, 2)
        return self.norm(self.conv(x).permute(0, 2, 3, 1))


class CSWinTransformer(nn.Module):
    """CSWin classifier: conv stem, four stages of cross-shaped window attention, mean pool.

    ``img_size`` (int or ``(h, w)``) decides which stages attend over their whole map: the
    last one always, an earlier one when its map is exactly one ``sw×sw`` stripe (as in the
    source). Tokens stay channels-last ``(B, H, W, C)`` throughout.
    """

    def __init__(
        self,
        img_size: int | Sequence[int] = 224,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 64,
        depths: Sequence[int] = (1, 2, 21, 1),
        num_heads: Sequence[int] = (2, 4, 8, 16),
        stripe_widths: Sequence[int] = (1, 2, 7, 7),
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.0,
    ):
        super().__init__()
        height, width = to_2tuple(img_size)
        self.num_classes = num_classes
        self.stem = ConvDownsample(in_chans, embed_dim, kernel_size=7, stride=4, padding=2)
        height, width = (height + 4 - 7) // 4 + 1, (width + 4 - 7) // 4 + 1
        rates = _linear_rates(drop_path_rate, sum(depths))
        self.merges = nn.ModuleList()
        self.stages = nn.ModuleList()
        dim, cursor = embed_dim, 0
        for i, (depth, heads, stripe) in enumerate(zip(depths, num_heads, stripe_widths)):
            if i > 0:
                self.merges.append(ConvDownsample(dim, dim * 2, kernel_size=3, stride=2, padding=1))
                dim *= 2
                height, width = (height - 1) // 2 + 1, (width - 1) // 2 + 1
            full = i == len(depths) - 1 or (height, width) == (stripe, stripe)
            self.stages.append(nn.Sequential(*(
                CSWinBlock(dim, heads, stripe, full, mlp_ratio, rates[cursor + j])
                for j in range(depth))))
            cursor += depth
        self.num_features = dim
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the normalised last-stage map, channels-last ``(B, H, W, C)``."""
        x = self.stages[0](self.stem(x, channels_last=False))
        for merge, stage in zip(self.merges, self.stages[1:]):
            x = stage(merge(x))
        return self.norm(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.mean(dim=(1, 2)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register
def cswin_tiny(**kwargs) -> nn.Module:
    """CSWin-T (``CSWin_64_12211_tiny_224``): 22.3 M params, 4.32 GMACs at 224².

    README: 23 M, 4.3 G.
    """
    return CSWinTransformer(**{"embed_dim": 64, "depths": (1, 2, 21, 1), **kwargs})


@register
def cswin_small(**kwargs) -> nn.Module:
    """CSWin-S (``CSWin_64_24322_small_224``): 34.6 M params, 6.80 GMACs at 224².

    README: 35 M, 6.9 G.
    """
    return CSWinTransformer(**{"embed_dim": 64, "depths": (2, 4, 32, 2), **kwargs})


@register
def cswin_base(**kwargs) -> nn.Module:
    """CSWin-B (``CSWin_96_24322_base_224``): 77.4 M params, 14.96 GMACs at 224².

    README: 78 M, 15.0 G.
    """
    return CSWinTransformer(**{"embed_dim": 96, "depths": (2, 4, 32, 2),
                               "num_heads": (4, 8, 16, 32), **kwargs})
