"""DFvT (Doubly-Fused ViT) for ImageNet classification, random init.

Gao et al., "Doubly-Fused ViT: Fuse Information from Vision Transformer Doubly with Local
Representation", ECCV 2022. Source: ``ginobilinie/DFvT`` ``models/DFvT.py`` and
``configs/{tiny,small}.yaml``. Written here from those configuration facts; timm supplies the
window attention (Swin's, with its relative position bias).

Architecture (width ``C_i = E·2^i``):

- stem: 3×3 stride-2 conv to E/2, BatchNorm, SiLU, 3×3 stride-2 conv to E, BatchNorm, SiLU;
- every stage ``i`` runs a conv branch on its input map: 1×1 conv, two 3×3 depthwise convs
  ("local", each conv bias-free + BatchNorm + SiLU), then a 3×3 depthwise conv (stride 2 in
  stages 1-3, 1 in stage 4) and a 1×1 conv ("inter", same pattern);
- stages 1-3: the transformer tokens are the 3×3 stride-2 max-pooled input plus "inter", at
  half the map size; the fusion input is "local" folded space-to-depth (4C) and brought back
  to C by a separable conv (3×3 depthwise + BN, 1×1 + BN). Stage 4 keeps the 7×7 map: tokens
  are the input plus "inter", the fusion input is the input itself;
- transformer blocks: LayerNorm → Swin window attention (window 7, shifted by 3 in odd blocks
  unless the map fits one window, where the window shrinks to the map) → residual; DANE
  fusion; LayerNorm → GELU MLP → residual. DANE mixes the fusion input ``c`` into the tokens
  ``t`` by ``c·m + t·(1-m)``, ``m = σ(spatial(c) + channel(t))``: spatial is LayerNorm + a
  bias-free linear to 1, channel is the token mean through a bias-free C→C/16 linear, SiLU,
  LayerNorm, a bias-free C/16→C linear;
- after each of stages 1-3 a "patch merging" that only widens: LayerNorm + bias-free
  linear C→2C (the stride-2 pooling already halved the map);
- head: LayerNorm, token mean, linear.

Configurations: Tiny E 48, MLP ratio 4; Small E 96, MLP ratio 2; both depths 1-1-2-1, heads
3-6-12-24, window 7. The model is built for one input size: every stage map must be a whole
number of windows (224² gives 28, 14, 7, 7).

At 224² with 1000 classes (self-measured; parameters and, with the same weights, outputs
equal the source's own ``DFvT``; matmul-only MACs, both counters agree, no op skipped):

======  ==========  ======  =========================  ====================
model   params (M)  GMACs   README (params, FLOPs)     source's ``flops()``
======  ==========  ======  =========================  ====================
DFvT-T  3.968       0.306   4.0 M, 0.3 G               0.271 G
DFvT-S  11.225      0.941   11.2 M, 0.8 G              0.814 G
======  ==========  ======  =========================  ====================

The README's FLOPs are the repository's analytic ``DFvT.flops()``, which evaluates the two
stem convs at a quarter of their output side (``Ho/2·Wo/2`` and ``Ho/4·Wo/4`` with ``Ho`` the
56-pixel token map, where the convs output 112² and 56²): 0.137 GMACs short for DFvT-S, 0.038
for DFvT-T. Counted, DFvT-S is 0.94 G, 18 % above its printed 0.8.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, to_2tuple, trunc_normal_
from timm.models.swin_transformer import WindowAttention, window_partition, window_reverse
from torch import nn

from vitbench.build.builders import register
from vitbench.build.builders.stm_micro import shifted_window_mask

__all__ = ["DFvT", "DANE", "DFvTBlock", "ConvBranch", "dfvt_tiny", "dfvt_small"]


def _conv_bn_silu(in_chans: int, out_chans: int, kernel: int, stride: int = 1,
                  depthwise: bool = False) -> list[nn.Module]:
    return [nn.Conv2d(in_chans, out_chans, kernel, stride=stride, padding=kernel // 2,
                      groups=in_chans if depthwise else 1, bias=False),
            nn.BatchNorm2d(out_chans), nn.SiLU()]


class ConvBranch(nn.Module):
    """``local``: 1×1, 3×3 dw, 3×3 dw; ``inter``: 3×3 dw (``stride``), 1×1 (all + BN + SiLU)."""

    def __init__(self, dim: int, stride: int):
        super().__init__()
        self.local = nn.Sequential(*_conv_bn_silu(dim, dim, 1),
                                   *_conv_bn_silu(dim, dim, 3, depthwise=True),
                                   *_conv_bn_silu(dim, dim, 3, depthwise=True))
        self.inter = nn.Sequential(*_conv_bn_silu(dim, dim, 3, stride, depthwise=True),
                                   *_conv_bn_silu(dim, dim, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        local = self.local(x)
        return local, self.inter(local)


class DANE(nn.Module):
    """Fuse conv features ``c`` into tokens ``t`` (``(B, L, C)``): ``c·m + t·(1-m)``."""

    def __init__(self, dim: int, reduction: int = 16):
        super().__init__()
        self.fc_spatial = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 1, bias=False))
        self.fc_channel = nn.Sequential(nn.Linear(dim, dim // reduction, bias=False), nn.SiLU(),
                                        nn.LayerNorm(dim // reduction),
                                        nn.Linear(dim // reduction, dim, bias=False))

    def forward(self, tokens: torch.Tensor, conv: torch.Tensor) -> torch.Tensor:
        mask = torch.sigmoid(self.fc_spatial(conv) + self.fc_channel(tokens.mean(1, keepdim=True)))
        return conv * mask + tokens * (1 - mask)


class DFvTBlock(nn.Module):
    """(Shifted) window attention, DANE fusion with the conv branch, then the MLP."""

    def __init__(self, dim: int, num_heads: int, resolution: tuple[int, int], window: int,
                 shifted: bool, mlp_ratio: float, drop_path: float = 0.0):
        super().__init__()
        self.resolution = resolution
        self.window, self.shift = window, window // 2 if shifted else 0
        if min(resolution) <= window:  # the map fits one window: no partition, no shift
            self.window, self.shift = min(resolution), 0
        if resolution[0] % self.window or resolution[1] % self.window:
            raise ValueError(f"a {resolution} map is no whole number of {self.window}-windows")
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads=num_heads, window_size=self.window)
        self.select = DANE(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        mask = shifted_window_mask(*resolution, self.window, self.shift) if self.shift else None
        self.register_buffer("attn_mask", mask, persistent=False)

    def _attend(self, x: torch.Tensor) -> torch.Tensor:
        height, width = self.resolution
        x = x.view(x.shape[0], height, width, -1)
        if self.shift:
            x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
        window = (self.window, self.window)
        windows = window_partition(x, window).flatten(1, 2)
        mask = None if self.attn_mask is None else self.attn_mask.to(x.dtype)
        windows = self.attn(windows, mask=mask).view(-1, *window, x.shape[-1])
        x = window_reverse(windows, window, height, width)
        if self.shift:
            x = torch.roll(x, shifts=(self.shift, self.shift), dims=(1, 2))
        return x.flatten(1, 2)

    def forward(self, x: torch.Tensor, conv: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self._attend(self.norm1(x)))
        x = self.select(x, conv)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class DFvT(nn.Module):
    """Stem, four conv-branch + transformer stages, head (module docstring)."""

    def __init__(self, embed_dim: int, depths: Sequence[int], num_heads: Sequence[int],
                 mlp_ratio: float, window: int = 7, img_size: int | Sequence[int] = 224,
                 in_chans: int = 3, num_classes: int = 1000, drop_path_rate: float = 0.0):
        super().__init__()
        self.num_classes = num_classes
        height, width = (side // 4 for side in to_2tuple(img_size))
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, embed_dim // 2, 3, stride=2, padding=1),
            nn.BatchNorm2d(embed_dim // 2), nn.SiLU(),
            nn.Conv2d(embed_dim // 2, embed_dim, 3, stride=2, padding=1),
            nn.BatchNorm2d(embed_dim), nn.SiLU())
        last = len(depths) - 1
        total = sum(depths)  # linearly rising drop-path rates (plain floats: meta-safe)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        self.conv_branches, self.fusion_convs = nn.ModuleList(), nn.ModuleList()
        self.stages, self.merges = nn.ModuleList(), nn.ModuleList()
        for i, (depth, heads) in enumerate(zip(depths, num_heads)):
            dim = embed_dim * 2 ** i
            self.conv_branches.append(ConvBranch(dim, stride=1 if i == last else 2))
            if i < last:
                height, width = -(-height // 2), -(-width // 2)
                self.fusion_convs.append(nn.Sequential(  # space-to-depth 4C → C
                    nn.Conv2d(4 * dim, 4 * dim, 3, padding=1, groups=4 * dim, bias=False),
                    nn.BatchNorm2d(4 * dim), nn.Conv2d(4 * dim, dim, 1, bias=False),
                    nn.BatchNorm2d(dim)))
                self.merges.append(nn.Sequential(nn.LayerNorm(dim),
                                                 nn.Linear(dim, 2 * dim, bias=False)))
            first = sum(depths[:i])
            self.stages.append(nn.ModuleList(
                DFvTBlock(dim, heads, (height, width), window, shifted=j % 2 == 1,
                          mlp_ratio=mlp_ratio, drop_path=rates[first + j])
                for j in range(depth)))
        self.num_features = embed_dim * 2 ** last
        self.norm = nn.LayerNorm(self.num_features)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the normed last-stage tokens ``(B, L, 8E)``."""
        x = self.stem(x)
        last = len(self.stages) - 1
        for i, (branch, blocks) in enumerate(zip(self.conv_branches, self.stages)):
            local, inter = branch(x)
            if i < last:
                pooled = F.max_pool2d(x, 3, stride=2, padding=1)
                folded = torch.cat([local[..., 0::2, 0::2], local[..., 1::2, 0::2],
                                    local[..., 0::2, 1::2], local[..., 1::2, 1::2]], dim=1)
                conv = self.fusion_convs[i](folded).flatten(2).transpose(1, 2)
                tokens = (pooled + inter).flatten(2).transpose(1, 2)
            else:
                conv = x.flatten(2).transpose(1, 2)
                tokens = conv + inter.flatten(2).transpose(1, 2)
            for block in blocks:
                tokens = block(tokens, conv)
            if i < last:
                tokens = self.merges[i](tokens)
                height, width = blocks[0].resolution
                tokens = tokens.transpose(1, 2).reshape(tokens.shape[0], -1, height, width)
            x = tokens
        return self.norm(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.mean(dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register
def dfvt_tiny(**kwargs) -> DFvT:
    """DFvT-T (``configs/tiny.yaml``): E 48, MLP ratio 4; 3.97 M, 0.31 GMACs."""
    return DFvT(embed_dim=48, depths=(1, 1, 2, 1), num_heads=(3, 6, 12, 24), mlp_ratio=4.0,
                **kwargs)


@register
def dfvt_small(**kwargs) -> DFvT:
    """DFvT-S (``configs/small.yaml``): E 96, MLP ratio 2; 11.23 M, 0.94 GMACs."""
    return DFvT(embed_dim=96, depths=(1, 1, 2, 1), num_heads=(3, 6, 12, 24), mlp_ratio=2.0,
                **kwargs)
