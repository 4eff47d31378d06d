"""LIT and LITv2 (Less attention vIsion Transformers) for ImageNet classification, random init.

Pan et al., "Less is More: Pay Less Attention in Vision Transformers", AAAI 2022
(arXiv:2105.14217), and Pan et al., "Fast Vision Transformers with HiLo Attention",
NeurIPS 2022 (arXiv:2205.13213). Not in timm; written here from the configurations of the
authors' ``ziplab/LIT`` (LIT-Ti: ``classification/code_for_lit_ti/lit.py`` ``lit_ti``; LIT-S:
``code_for_lit_s_m_b/configs/lit-small.yaml`` with ``config.py``'s defaults) and
``ziplab/LITv2`` (``classification/configs/litv2-{small,medium}.yaml``, HiLo in
``models/attentions.py``, DTM in ``models/patch_embed.py``), with timm's layers.

Configuration shared by all: no attention in the first two stages (MLP-only blocks), global
attention in the last two; the stages are joined by a *deformable* patch merging (LIT's DPM,
LITv2's DTM): a ``2×2`` stride-2 deformable conv (``torchvision.ops.deform_conv2d``, bias)
whose offsets come from an ordinary ``2×2`` stride-2 conv (bias, zero-initialised as the
source does, so it starts as a plain strided conv), then BatchNorm and GELU.

- **LIT-Ti** (PVT-style): ``4×4`` stride-4 conv + LayerNorm, dims 64-128-320-512, heads
  1-2-5-8, MLP ratios 8-8-4-4, depths 3-4-6-3, a learned absolute position embedding per
  stage, the class token joining in stage 4, plain multi-head attention (qkv bias),
  LayerNorm eps 1e-6, head on the class token.
- **LIT-S** (Swin-style): ``4×4`` stride-4 conv + LayerNorm, width 96 doubling per stage,
  heads 3-6-12-24, depths 2-2-6-2, MLP ratio 4, qkv bias; stages 3–4 attend over the whole
  map with a Swin-style relative-position bias table as large as the map
  (``(2H-1)(2W-1)`` entries per head, so the parameter count depends on the input size);
  final LayerNorm, mean over tokens, linear head.
- **LITv2-S/M** (LIT-S's layout): depths 2-2-6-2 / 2-2-18-2; every MLP has a ``3×3``
  depthwise conv after ``fc1`` (PVTv2's); stages 3–4 use *HiLo* attention with
  ``alpha`` 0.9 and local window sizes 2 and 1: ``int(alpha·heads)`` Lo-Fi heads attend
  from every token to the map average-pooled ``s×s``, the rest (Hi-Fi) attend inside
  non-overlapping ``s×s`` windows, each group with its own projection, outputs concatenated
  (Hi-Fi first). With ``s = 1`` HiLo is plain multi-head attention.

Counting: the deformable convs are ``torchvision::deform_conv2d``, counted by vitbench's
handle as the ordinary conv they replace (as the authors' own ``flops()`` counts them; the
bilinear sampling is not counted under ``matmul-only``, see ``docs/counting.md``).

At 224² with 1000 classes (self-measured, matmul-only; both counters agree, no skipped op
that may carry MACs). The parameter counts and, given the same weights, the outputs are those
of the authors' own models (checked once outside the test suite, their deformable conv
replaced by ``torchvision.ops.deform_conv2d`` with the same parameters):

=========  ==========  ======  =============  ==============  ============
model      params (M)  GMACs   README         authors' flops  seed print
=========  ==========  ======  =============  ==============  ============
LIT-Ti     19.89       3.61    19 M, 3.6 G    --              19.0, 3.6
LIT-S      27.97       4.08    27 M, 4.1 G    4.08            27.0/27, 4.1
LITv2-S    27.84       3.72    28 M, 3.7 G    3.73            28.0/28, 3.7
LITv2-M    48.83       7.46    49 M, 7.5 G    7.48            49, 7.5
=========  ==========  ======  =============  ==============  ============

LIT's README truncates its parameter counts (19.89 → 19, 27.97 → 27; LITv2's rounds). The
authors' ``flops()`` methods add norms and biases at one per element; fvcore's convention
gives 3.63 / 4.09 / 3.74 / 7.49.
"""

from __future__ import annotations

from functools import partial
from typing import Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, trunc_normal_
from timm.models.pvt_v2 import MlpWithDepthwiseConv
from timm.models.swin_transformer import WindowAttention
from timm.models.vision_transformer import Block as VitBlock
from torch import nn

from vitbench.build.builders import register

__all__ = ["DeformablePatchMerging", "HiLoAttention", "LitTiny", "Lit", "LitV2",
           "lit_ti", "lit_s", "litv2_s", "litv2_m"]


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    height, width = size
    return (int(height), int(width))


def _check_size(img_size: tuple[int, int]) -> None:
    """Four stride-2 steps after the stride-4 stem need sides divisible by 32."""
    if img_size[0] % 32 or img_size[1] % 32:
        raise ValueError(f"LIT needs an input whose sides are multiples of 32, got {img_size}")


def _linear_rates(last: float, count: int) -> list[float]:
    """``count`` stochastic-depth rates from 0 to ``last`` (plain floats: builds on ``meta``)."""
    return [last * i / (count - 1) if count > 1 else 0.0 for i in range(count)]


def _tokens_to_map(x: torch.Tensor, hw: Sequence[int]) -> torch.Tensor:
    """``(B, N, C)`` tokens → ``(B, C, H, W)`` map."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *hw)


def _map_to_tokens(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).transpose(1, 2)


class DeformablePatchMerging(nn.Module):
    """LIT's DPM / LITv2's DTM: ``k×k`` stride-``k`` deformable conv, BatchNorm, GELU.

    The offsets (2 per kernel tap) come from an ordinary ``k×k`` stride-``k`` conv, zero-
    initialised so the module starts as a plain patch-merging conv.
    """

    def __init__(self, in_dim: int, out_dim: int, patch_size: int = 2):
        super().__init__()
        from torchvision.ops import DeformConv2d

        self.conv_offset = nn.Conv2d(in_dim, 2 * patch_size * patch_size, patch_size,
                                     stride=patch_size)
        self.dconv = DeformConv2d(in_dim, out_dim, patch_size, stride=patch_size)
        self.norm = nn.BatchNorm2d(out_dim)
        self.act = nn.GELU()
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` → ``(B, C', H/k, W/k)``."""
        return self.act(self.norm(self.dconv(x, self.conv_offset(x))))


class Stem(nn.Module):
    """``4×4`` stride-4 patch conv, then LayerNorm over the tokens."""

    def __init__(self, embed_dim: int, eps: float = 1e-5):
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, 4, stride=4)
        self.norm = nn.LayerNorm(embed_dim, eps=eps)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        x = self.proj(x)
        return self.norm(_map_to_tokens(x)), (x.shape[2], x.shape[3])


class MlpBlock(nn.Module):
    """LIT's attention-free block: ``x + MLP(LN(x))``; LITv2's MLP has a depthwise conv."""

    def __init__(self, dim: int, mlp_ratio: float, drop_path: float, *, depthwise: bool = False,
                 eps: float = 1e-5):
        super().__init__()
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        hidden = int(dim * mlp_ratio)
        self.mlp = MlpWithDepthwiseConv(dim, hidden) if depthwise else Mlp(dim, hidden)
        self.depthwise = depthwise
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        y = self.norm2(x)
        return x + self.drop_path(self.mlp(y, hw) if self.depthwise else self.mlp(y))


class RelPosBlock(nn.Module):
    """LIT-S/M/B's attention block: global attention with a relative-position bias over the
    whole ``H×W`` map (timm's Swin window attention with the window = the map)."""

    def __init__(self, dim: int, num_heads: int, resolution: tuple[int, int], mlp_ratio: float,
                 drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, window_size=resolution, qkv_bias=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class HiLoAttention(nn.Module):
    """HiLo: Lo-Fi heads attend to the ``s×s``-average-pooled map, Hi-Fi heads inside
    ``s×s`` windows; ``int(alpha·heads)`` heads are Lo-Fi (all of them when ``s`` is 1)."""

    def __init__(self, dim: int, num_heads: int, window_size: int, alpha: float,
                 qkv_bias: bool = True):
        super().__init__()
        self.head_dim = dim // num_heads
        self.window_size = window_size
        self.lo_heads = num_heads if window_size == 1 else int(num_heads * alpha)
        self.hi_heads = num_heads - self.lo_heads
        lo_dim, hi_dim = self.lo_heads * self.head_dim, self.hi_heads * self.head_dim
        if self.lo_heads:
            self.l_q = nn.Linear(dim, lo_dim, bias=qkv_bias)
            self.l_kv = nn.Linear(dim, 2 * lo_dim, bias=qkv_bias)
            self.l_proj = nn.Linear(lo_dim, lo_dim)
        if self.hi_heads:
            self.h_qkv = nn.Linear(dim, 3 * hi_dim, bias=qkv_bias)
            self.h_proj = nn.Linear(hi_dim, hi_dim)

    def hifi(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        b, _, c = x.shape
        (h, w), s, heads = hw, self.window_size, self.hi_heads
        windows = x.reshape(b, h // s, s, w // s, s, c).transpose(2, 3).reshape(b, -1, s * s, c)
        qkv = self.h_qkv(windows).reshape(b, windows.shape[1], s * s, 3, heads, self.head_dim)
        q, k, v = qkv.permute(3, 0, 1, 4, 2, 5).unbind(0)  # B, windows, heads, s², d
        out = F.scaled_dot_product_attention(q, k, v).transpose(2, 3)  # B, windows, s², heads, d
        out = out.reshape(b, h // s, w // s, s, s, -1).transpose(2, 3).reshape(b, h * w, -1)
        return self.h_proj(out)

    def lofi(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        b, n, _ = x.shape
        heads, d = self.lo_heads, self.head_dim
        q = self.l_q(x).reshape(b, n, heads, d).transpose(1, 2)
        pooled = x
        if self.window_size > 1:
            pooled = _map_to_tokens(F.avg_pool2d(_tokens_to_map(x, hw), self.window_size))
        k, v = self.l_kv(pooled).reshape(b, -1, 2, heads, d).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, heads * d)
        return self.l_proj(out)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        if not self.hi_heads:
            return self.lofi(x, hw)
        if not self.lo_heads:
            return self.hifi(x, hw)
        return torch.cat((self.hifi(x, hw), self.lofi(x, hw)), dim=-1)


class HiLoBlock(nn.Module):
    """LITv2's attention block: ``x + HiLo(LN(x))``, then the depthwise-conv MLP."""

    def __init__(self, dim: int, num_heads: int, window_size: int, alpha: float,
                 mlp_ratio: float, drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = HiLoAttention(dim, num_heads, window_size, alpha)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MlpWithDepthwiseConv(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), hw))
        return x + self.drop_path(self.mlp(self.norm2(x), hw))


class _Hierarchical(nn.Module):
    """Stem, four stages joined by deformable patch merging, LayerNorm, mean, head."""

    def __init__(self, embed_dim: int, stages: list[nn.ModuleList], num_classes: int):
        super().__init__()
        dims = [embed_dim * 2 ** i for i in range(4)]
        self.stem = Stem(embed_dim)
        self.stages = nn.ModuleList(stages)
        self.merges = nn.ModuleList(DeformablePatchMerging(dims[i], dims[i + 1]) for i in range(3))
        self.norm = nn.LayerNorm(dims[-1])
        self.head = nn.Linear(dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.apply(_init_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x, hw = self.stem(x)
        for index, stage in enumerate(self.stages):
            for block in stage:
                x = block(x, hw)
            if index < len(self.merges):
                merged = self.merges[index](_tokens_to_map(x, hw))
                x, hw = _map_to_tokens(merged), (merged.shape[2], merged.shape[3])
        return self.norm(x).mean(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class Lit(_Hierarchical):
    """LIT-S/M/B: MLP-only stages 1–2, global relative-position attention in stages 3–4."""

    def __init__(self, img_size: int | Sequence[int] = 224, num_classes: int = 1000,
                 embed_dim: int = 96, depths: Sequence[int] = (2, 2, 6, 2),
                 num_heads: Sequence[int] = (3, 6, 12, 24), mlp_ratio: float = 4.0,
                 drop_path_rate: float = 0.2):
        img_size = _pair(img_size)
        _check_size(img_size)
        rates = iter(_linear_rates(drop_path_rate, sum(depths)))
        stages = []
        for i, depth in enumerate(depths):
            dim = embed_dim * 2 ** i
            resolution = (img_size[0] // 2 ** (i + 2), img_size[1] // 2 ** (i + 2))
            stages.append(nn.ModuleList(
                MlpBlock(dim, mlp_ratio, next(rates)) if i < 2 else
                RelPosBlock(dim, num_heads[i], resolution, mlp_ratio, next(rates))
                for _ in range(depth)))
        super().__init__(embed_dim, stages, num_classes)


class LitV2(_Hierarchical):
    """LITv2: depthwise-conv MLPs everywhere, HiLo attention in stages 3–4."""

    def __init__(self, img_size: int | Sequence[int] = 224, num_classes: int = 1000,
                 embed_dim: int = 96, depths: Sequence[int] = (2, 2, 6, 2),
                 num_heads: Sequence[int] = (3, 6, 12, 24), mlp_ratio: float = 4.0,
                 alpha: float = 0.9, local_window_sizes: Sequence[int] = (0, 0, 2, 1),
                 drop_path_rate: float = 0.2):
        _check_size(_pair(img_size))
        rates = iter(_linear_rates(drop_path_rate, sum(depths)))
        stages = []
        for i, depth in enumerate(depths):
            dim = embed_dim * 2 ** i
            stages.append(nn.ModuleList(
                MlpBlock(dim, mlp_ratio, next(rates), depthwise=True) if i < 2 else
                HiLoBlock(dim, num_heads[i], local_window_sizes[i], alpha, mlp_ratio, next(rates))
                for _ in range(depth)))
        super().__init__(embed_dim, stages, num_classes)


class LitTiny(nn.Module):
    """LIT-Ti: PVT's layout (position embeddings, class token in stage 4) with MLP-only
    stages 1–2, plain multi-head attention in stages 3–4 and deformable patch merging."""

    def __init__(self, img_size: int | Sequence[int] = 224, num_classes: int = 1000,
                 dims: Sequence[int] = (64, 128, 320, 512), num_heads: Sequence[int] = (1, 2, 5, 8),
                 mlp_ratios: Sequence[float] = (8, 8, 4, 4), depths: Sequence[int] = (3, 4, 6, 3),
                 drop_path_rate: float = 0.1):
        super().__init__()
        img_size = _pair(img_size)
        _check_size(img_size)
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.stem = Stem(dims[0], eps=1e-5)
        self.merges = nn.ModuleList(DeformablePatchMerging(dims[i], dims[i + 1]) for i in range(3))
        tokens = [(img_size[0] // 2 ** (i + 2)) * (img_size[1] // 2 ** (i + 2)) for i in range(4)]
        tokens[3] += 1  # the class token
        self.pos_embeds = nn.ParameterList(nn.Parameter(torch.zeros(1, n, d))
                                           for n, d in zip(tokens, dims))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dims[3]))
        rates = iter(_linear_rates(drop_path_rate, sum(depths)))
        self.stages = nn.ModuleList()
        for i, depth in enumerate(depths):
            self.stages.append(nn.ModuleList(
                MlpBlock(dims[i], mlp_ratios[i], next(rates), eps=1e-6) if i < 2 else
                VitBlock(dims[i], num_heads[i], mlp_ratios[i], qkv_bias=True,
                         drop_path=next(rates), norm_layer=norm)
                for _ in range(depth)))
        self.norm = norm(dims[3])
        self.head = nn.Linear(dims[3], num_classes) if num_classes > 0 else nn.Identity()
        for embedding in (*self.pos_embeds, self.cls_token):
            trunc_normal_(embedding, std=0.02)
        self.apply(_init_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x, hw = self.stem(x)
        for index, stage in enumerate(self.stages):
            if index > 0:
                merged = self.merges[index - 1](_tokens_to_map(x, hw))
                x, hw = _map_to_tokens(merged), (merged.shape[2], merged.shape[3])
            if index == 3:
                x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
            x = x + self.pos_embeds[index]
            for block in stage:
                x = block(x) if isinstance(block, VitBlock) else block(x, hw)
        return self.norm(x)[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


@register
def lit_ti(img_size: int | Sequence[int] = 224, num_classes: int = 1000, **kwargs) -> LitTiny:
    """LIT-Ti (``ziplab/LIT`` ``lit_ti``): 19.89 M, 3.61 GMACs at 224² (README 19 M, 3.6 G)."""
    return LitTiny(img_size=img_size, num_classes=num_classes, **kwargs)


@register
def lit_s(img_size: int | Sequence[int] = 224, num_classes: int = 1000, **kwargs) -> Lit:
    """LIT-S (``lit-small.yaml``): 27.97 M, 4.08 GMACs at 224² (README 27 M, 4.1 G)."""
    return Lit(img_size=img_size, num_classes=num_classes, **kwargs)


@register
def litv2_s(img_size: int | Sequence[int] = 224, num_classes: int = 1000, **kwargs) -> LitV2:
    """LITv2-S (``litv2-small.yaml``): 27.84 M, 3.72 GMACs at 224² (README 28 M, 3.7 G)."""
    return LitV2(img_size=img_size, num_classes=num_classes, **kwargs)


@register
def litv2_m(img_size: int | Sequence[int] = 224, num_classes: int = 1000, **kwargs) -> LitV2:
    """LITv2-M (``litv2-medium.yaml``): 48.83 M, 7.46 GMACs at 224² (README 49 M, 7.5 G)."""
    return LitV2(img_size=img_size, num_classes=num_classes, depths=(2, 2, 18, 2),
                 drop_path_rate=0.3, **kwargs)
