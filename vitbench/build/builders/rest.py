"""ResT (v1) and ResTv2 for ImageNet classification, random init.

Zhang & Yang, "ResT: An Efficient Transformer for Visual Recognition", NeurIPS 2021
(arXiv:2105.13677), and "ResT V2: Simpler, Faster and Stronger", NeurIPS 2022
(arXiv:2204.07366). Neither is in timm; vitbench builds both from the configurations of
the authors' ``wofmanaf/ResT`` (``models/rest.py``, ``models/rest_v2.py``).

Both are four-stage pyramids at strides 4/8/16/32 with *efficient multi-head
self-attention* (EMSA): keys and values come from the tokens downsampled by a depthwise
``(R+1)×(R+1)`` stride-``R`` conv plus LayerNorm, with R = 8, 4, 2, 1 per stage; heads
1, 2, 4, 8; qkv bias; MLP ratio 4 (GELU); pre-norm blocks; a final LayerNorm, global
average pooling and a linear head. Positions enter through *pixel attention* (PA,
``x · sigmoid(dwconv3×3(x))``) after the stem and every patch embedding (stride-2
``3×3`` convs); there is no position table (v1 takes any input size; v2 needs sides
that are multiples of 32, where every stage's map divides by its R).

- **v1**: stem ``3×3 s2 → BN → ReLU → 3×3 → BN → ReLU → 3×3 s2`` (C/2, C/2, C; no
  bias) then PA; patch embeddings conv → BatchNorm → PA. With more than one head, EMSA
  mixes the heads' attention logits with a 1×1 conv across heads, then softmax, then
  InstanceNorm. Lite: dims 64-128-256-512, depths 2-2-2-2; Small: depths 2-2-6-2;
  Base: dims 96-192-384-768, depths 2-2-6-2 (LayerNorm eps 1e-5).
- **v2**: no head mixing; instead an upsampling branch rebuilds what the downsampling
  lost: the values, as a ``H/R × W/R`` map, go through a depthwise 3×3 conv to R²·C
  channels and a PixelShuffle(R), then LayerNorm, and are added to the attention output
  before the projection. Stem ``3×3 s2 → BN → ReLU → 3×3 s2 → BN → ReLU → 1×1`` (C/2, C,
  C) then PA and LayerNorm; patch embeddings conv → PA → LayerNorm (eps 1e-6). Tiny: dims
  96-192-384-768, depths 1-2-6-2; Base: depths 1-3-16-3.

Both build exactly the authors' modules (checked once, outside the test suite, by loading
a state dict of the authors' classes into these and comparing outputs). At 224² with 1000
classes (self-measured, matmul-only): Lite 10.51 M / 1.53 GMACs, Small 13.68 M / 2.09,
Base 30.33 M / 4.63; ResTv2-T 30.43 M / 4.08, ResTv2-B 55.97 M / 7.86. The params match
the ResT README (10.5 / 13.7 / 30.3 M; it now rounds to 11 / 14 / 30 M) and the ResTv2
README (30 / 56 M); so do the v2 GMACs (README 4.1 / 7.9 G). The ``restv2_*`` source
comments' 3.92 G / 30.37 M (T) and 7.25 G / 55.75 M (B) describe neither this count nor the
published code's parameters. The v1 README's 1.4 / 1.9 / 4.3 G sit 7–9 % below this
count and stay unexplained: even without the attention matmuls (as mmcv counts) it is
1.46 / 2.00 / 4.49. The two counters agree on every variant.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp
from torch import nn

from vitbench.build.builders import register

__all__ = [
    "ResT",
    "rest_lite",
    "rest_small",
    "rest_base",
    "restv2_tiny",
    "restv2_base",
]


def _linear_rates(last: float, count: int) -> list[float]:
    """``count`` stochastic-depth rates from 0 to ``last`` (plain floats: builds on ``meta``)."""
    return [last * i / (count - 1) if count > 1 else 0.0 for i in range(count)]

#: Input sides must be multiples of this: stage i (stride 4·2^i) is reduced by 8/2^i.
SIDE_MULTIPLE = 32


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    height, width = size
    return (int(height), int(width))


class PixelAttention(nn.Module):
    """ResT's positional encoding "PA": ``x · sigmoid(dwconv3×3(x))`` on a feature map."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.conv(x))


class TokenEmbed(nn.Module):
    """A conv projection (stem or stride-2 patch embedding), PA, then tokens.

    Returns ``(tokens, (H, W))``; ``token_norm`` (v2's LayerNorm) runs on the tokens.
    """

    def __init__(self, proj: nn.Module, dim: int, token_norm: Optional[nn.Module] = None):
        super().__init__()
        self.proj = proj
        self.pos = PixelAttention(dim)
        self.norm = token_norm if token_norm is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        x = self.pos(self.proj(x))
        height, width = x.shape[-2:]
        return self.norm(x.flatten(2).transpose(1, 2)), (height, width)


def _conv_bn_relu(in_dim: int, out_dim: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(in_dim, out_dim, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_dim), nn.ReLU(inplace=True)]


def _patch_conv(in_dim: int, out_dim: int) -> nn.Conv2d:
    """Stride-2 patch embedding conv: kernel 3 (= stride + 1), padding 1."""
    return nn.Conv2d(in_dim, out_dim, kernel_size=3, stride=2, padding=1)


class EfficientAttention(nn.Module):
    """EMSA: attention whose keys/values come from a depthwise-reduced token map.

    ``version=1`` mixes the heads' logits (1×1 conv across heads, softmax, InstanceNorm)
    when there is more than one head; ``version=2`` adds the upsampled values (depthwise
    3×3 to R²·C channels, PixelShuffle(R), LayerNorm) to the attention output.
    """

    def __init__(self, dim: int, num_heads: int, sr_ratio: int, version: int, eps: float):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.sr_ratio = sr_ratio
        self.version = version
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, dim * 2)
        self.proj = nn.Linear(dim, dim)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio + 1, stride=sr_ratio,
                                padding=sr_ratio // 2, groups=dim)
            self.sr_norm = nn.LayerNorm(dim, eps=eps)
        self.mix_heads = version == 1 and num_heads > 1
        if self.mix_heads:
            self.transform_conv = nn.Conv2d(num_heads, num_heads, kernel_size=1)
            self.transform_norm = nn.InstanceNorm2d(num_heads)
        if version == 2:
            self.up = nn.Sequential(
                nn.Conv2d(dim, sr_ratio * sr_ratio * dim, kernel_size=3, padding=1, groups=dim),
                nn.PixelShuffle(sr_ratio))
            self.up_norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        batch, tokens, dim = x.shape
        q = self.q(x).reshape(batch, tokens, self.num_heads, self.head_dim).transpose(1, 2)
        kv_hw = hw
        if self.sr_ratio > 1:
            x = self.sr(x.transpose(1, 2).reshape(batch, dim, *hw))
            kv_hw = x.shape[-2:]
            x = self.sr_norm(x.flatten(2).transpose(1, 2))
        kv = self.kv(x).reshape(batch, -1, 2, self.num_heads, self.head_dim)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)

        if self.version == 2:
            out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        else:
            attn = (q @ k.transpose(-2, -1)) * self.scale
            if self.mix_heads:
                attn = self.transform_norm(self.transform_conv(attn).softmax(dim=-1))
            else:
                attn = attn.softmax(dim=-1)
            out = attn @ v
        out = out.transpose(1, 2).reshape(batch, tokens, dim)
        if self.version == 2:
            values = v.transpose(-1, -2).reshape(batch, dim, *kv_hw)
            out = out + self.up_norm(self.up(values).flatten(2).transpose(1, 2))
        return self.proj(out)


class Block(nn.Module):
    """Pre-norm block: EMSA and a 4× GELU MLP, each residual."""

    def __init__(self, dim: int, num_heads: int, sr_ratio: int, version: int, eps: float,
                 mlp_ratio: float = 4.0, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = EfficientAttention(dim, num_heads, sr_ratio, version, eps)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), hw))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def _embeds(version: int, in_chans: int, dims: Sequence[int], eps: float) -> nn.ModuleList:
    """The stem (stride 4) and the three stride-2 patch embeddings of ResT v1 or v2."""
    half = dims[0] // 2
    if version == 1:
        stem = nn.Sequential(*_conv_bn_relu(in_chans, half, 2), *_conv_bn_relu(half, half, 1),
                             nn.Conv2d(half, dims[0], 3, stride=2, padding=1, bias=False))
        embeds = [TokenEmbed(stem, dims[0])]
        embeds += [TokenEmbed(nn.Sequential(_patch_conv(a, b), nn.BatchNorm2d(b)), b)
                   for a, b in zip(dims[:-1], dims[1:])]
    else:
        stem = nn.Sequential(*_conv_bn_relu(in_chans, half, 2),
                             *_conv_bn_relu(half, dims[0], 2), nn.Conv2d(dims[0], dims[0], 1))
        embeds = [TokenEmbed(stem, dims[0], nn.LayerNorm(dims[0], eps=eps))]
        embeds += [TokenEmbed(_patch_conv(a, b), b, nn.LayerNorm(b, eps=eps))
                   for a, b in zip(dims[:-1], dims[1:])]
    return nn.ModuleList(embeds)


class ResT(nn.Module):
    """ResT (``version=1``) or ResTv2 (``version=2``) classifier.

    ``img_size`` is only checked: v2's upsampling branch needs every stage's map to divide
    by its reduction ratio, so its sides must be multiples of :data:`SIDE_MULTIPLE`.
    """

    def __init__(
        self,
        version: int = 1,
        img_size: int | Sequence[int] = 224,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dims: Sequence[int] = (64, 128, 256, 512),
        num_heads: Sequence[int] = (1, 2, 4, 8),
        depths: Sequence[int] = (2, 2, 2, 2),
        sr_ratios: Sequence[int] = (8, 4, 2, 1),
        drop_path_rate: float = 0.0,
    ):
        super().__init__()
        if version not in (1, 2):
            raise ValueError(f"ResT version must be 1 or 2, not {version!r}")
        size = _pair(img_size)
        if version == 2 and any(side % SIDE_MULTIPLE for side in size):
            raise ValueError(f"ResTv2 needs input sides that are multiples of {SIDE_MULTIPLE}, "
                             f"got {size[0]}x{size[1]}")
        eps = 1e-5 if version == 1 else 1e-6
        self.num_classes = num_classes
        self.num_features = embed_dims[-1]
        self.embeds = _embeds(version, in_chans, embed_dims, eps)
        drop_path_rates = _linear_rates(drop_path_rate, sum(depths))
        self.stages = nn.ModuleList()
        cursor = 0
        for dim, heads, depth, sr_ratio in zip(embed_dims, num_heads, depths, sr_ratios):
            self.stages.append(nn.ModuleList(
                Block(dim, heads, sr_ratio, version, eps, drop_path=drop_path_rates[cursor + j])
                for j in range(depth)))
            cursor += depth
        self.norm = nn.LayerNorm(embed_dims[-1], eps=eps)
        self.head = nn.Linear(embed_dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The four stages; returns the normalised last-stage tokens."""
        batch = x.shape[0]
        for i, (embed, blocks) in enumerate(zip(self.embeds, self.stages)):
            if i > 0:
                x = x.transpose(1, 2).reshape(batch, -1, *hw)
            x, hw = embed(x)
            for block in blocks:
                x = block(x, hw)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.mean(dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


_V1_SMALL_DIMS = (64, 128, 256, 512)
_WIDE_DIMS = (96, 192, 384, 768)


@register
def rest_lite(**kwargs) -> nn.Module:
    """ResT-Lite (dims 64…512, depths 2-2-2-2): 10.51 M params; README 10.5 M, 1.4 G."""
    return ResT(**{"version": 1, "embed_dims": _V1_SMALL_DIMS, "depths": (2, 2, 2, 2), **kwargs})


@register
def rest_small(**kwargs) -> nn.Module:
    """ResT-Small (dims 64…512, depths 2-2-6-2): 13.68 M params; README 13.7 M, 1.9 G."""
    return ResT(**{"version": 1, "embed_dims": _V1_SMALL_DIMS, "depths": (2, 2, 6, 2), **kwargs})


@register
def rest_base(**kwargs) -> nn.Module:
    """ResT-Base (dims 96…768, depths 2-2-6-2): 30.33 M params; README 30.3 M, 4.3 G."""
    return ResT(**{"version": 1, "embed_dims": _WIDE_DIMS, "depths": (2, 2, 6, 2), **kwargs})


@register
def restv2_tiny(**kwargs) -> nn.Module:
    """ResTv2-T (dims 96…768, depths 1-2-6-2): 30.43 M, 4.08 GMACs; README 30 M, 4.1 G."""
    return ResT(**{"version": 2, "embed_dims": _WIDE_DIMS, "depths": (1, 2, 6, 2), **kwargs})


@register
def restv2_base(**kwargs) -> nn.Module:
    """ResTv2-B (dims 96…768, depths 1-3-16-3): 55.97 M, 7.86 GMACs; README 56 M, 7.9 G."""
    return ResT(**{"version": 2, "embed_dims": _WIDE_DIMS, "depths": (1, 3, 16, 3), **kwargs})
