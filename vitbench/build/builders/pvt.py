"""PVT v1 (Pyramid Vision Transformer) for ImageNet classification, random init.

Wang et al., "Pyramid Vision Transformer: A Versatile Backbone for Dense Prediction
without Convolutions", ICCV 2021 (arXiv:2102.12122). timm only ships PVTv2, so vitbench
builds v1 itself, written from the paper's description.

Configuration (paper Table 1 / Sec. 3, confirmed against the authors' public
``whai362/PVT`` ``classification/pvt.py``):

- four stages, non-overlapping patch embeddings with patch sizes 4, 2, 2, 2
  (a strided conv + LayerNorm), so the stages run at strides 4, 8, 16, 32;
- embed dims 64, 128, 320, 512; heads 1, 2, 5, 8; MLP ratios 8, 8, 4, 4; qkv bias;
- spatial-reduction attention (SRA) with reduction ratios 8, 4, 2, 1: keys and values
  come from the tokens downsampled by a ``R×R`` stride-``R`` conv followed by LayerNorm;
- depths: Tiny 2-2-2-2, Small 3-4-6-3, Medium 3-4-18-3, Large 3-8-27-3;
- a learned absolute position embedding per stage (bilinearly resized when the input
  differs from the size the model was built for); a class token joins in the last stage;
- pre-norm blocks with LayerNorm (eps 1e-6), GELU MLPs, a final LayerNorm and a linear
  head on the class token.

At 224² with 1000 classes: Tiny 13.23 M, Small 24.49 M, Medium 44.21 M, Large 61.37 M
parameters (paper: 13.2 / 24.5 / 44.2 / 61.4 M) and about 1.93 / 3.82 / 6.66 / 9.81
GMACs (paper: 1.9 / 3.8 / 6.7 / 9.8 GFLOPs, counted as multiply-adds).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vitbench.build.builders import register

__all__ = [
    "PyramidVisionTransformer",
    "pvt_v1_tiny",
    "pvt_v1_small",
    "pvt_v1_medium",
    "pvt_v1_large",
]


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    height, width = size
    return (int(height), int(width))


def _layer_norm(dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=1e-6)


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample while training."""

    def __init__(self, prob: float = 0.0):
        super().__init__()
        self.prob = prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"prob={self.prob}"


class PatchEmbed(nn.Module):
    """Non-overlapping ``P×P`` patches projected by a stride-``P`` conv, then LayerNorm."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = _layer_norm(embed_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        x = self.proj(x)
        height, width = x.shape[-2:]
        x = self.norm(x.flatten(2).transpose(1, 2))
        return x, (height, width)


class SpatialReductionAttention(nn.Module):
    """Multi-head attention whose keys/values come from a spatially reduced token map.

    With ``sr_ratio > 1`` the ``H×W`` token map is downsampled by an ``R×R`` stride-``R``
    conv and LayerNorm before the key/value projection, so attention costs
    ``(HW)²/R²`` instead of ``(HW)²`` (paper Sec. 3.3, Eq. 3-4).
    """

    def __init__(self, dim: int, num_heads: int, sr_ratio: int = 1, qkv_bias: bool = True,
                 attn_drop: float = 0.0, proj_drop: float = 0.0, fused_attn: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.fused_attn = fused_attn
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm = _layer_norm(dim)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        batch, tokens, dim = x.shape
        q = self.q(x).reshape(batch, tokens, self.num_heads, self.head_dim).transpose(1, 2)
        if self.sr_ratio > 1:
            height, width = hw
            reduced = x.transpose(1, 2).reshape(batch, dim, height, width)
            reduced = self.norm(self.sr(reduced).flatten(2).transpose(1, 2))
        else:
            reduced = x
        kv = self.kv(reduced).reshape(batch, -1, 2, self.num_heads, self.head_dim)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)

        if self.fused_attn:
            x = F.scaled_dot_product_attention(
                q, k, v, dropout_p=self.attn_drop.p if self.training else 0.0, scale=self.scale)
        else:
            attn = (q @ k.transpose(-2, -1)) * self.scale
            attn = self.attn_drop(attn.softmax(dim=-1))
            x = attn @ v
        x = x.transpose(1, 2).reshape(batch, tokens, dim)
        return self.proj_drop(self.proj(x))


class Mlp(nn.Module):
    """Linear → GELU → Linear feed-forward network."""

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Block(nn.Module):
    """Pre-norm transformer encoder block with spatial-reduction attention."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, sr_ratio: int,
                 qkv_bias: bool = True, drop: float = 0.0, attn_drop: float = 0.0,
                 drop_path: float = 0.0, fused_attn: bool = True):
        super().__init__()
        self.norm1 = _layer_norm(dim)
        self.attn = SpatialReductionAttention(dim, num_heads, sr_ratio, qkv_bias, attn_drop,
                                              drop, fused_attn)
        self.drop_path = DropPath(drop_path)
        self.norm2 = _layer_norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), hw))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PyramidVisionTransformer(nn.Module):
    """PVT v1 classifier: four SRA transformer stages at strides 4/8/16/32.

    ``img_size`` (int or ``(h, w)``) sizes the per-stage position embeddings; inputs of
    another size get them bilinearly resized on the fly. ``fused_attn`` picks
    :func:`torch.nn.functional.scaled_dot_product_attention` (default) or the explicit
    ``softmax(q kᵀ · scale) v`` path, which compute the same function.
    """

    def __init__(
        self,
        img_size: int | Sequence[int] = 224,
        in_chans: int = 3,
        num_classes: int = 1000,
        patch_sizes: Sequence[int] = (4, 2, 2, 2),
        embed_dims: Sequence[int] = (64, 128, 320, 512),
        num_heads: Sequence[int] = (1, 2, 5, 8),
        mlp_ratios: Sequence[float] = (8, 8, 4, 4),
        depths: Sequence[int] = (2, 2, 2, 2),
        sr_ratios: Sequence[int] = (8, 4, 2, 1),
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        fused_attn: bool = True,
    ):
        super().__init__()
        self.img_size = _pair(img_size)
        self.num_classes = num_classes
        self.num_stages = len(depths)
        self.embed_dims = tuple(embed_dims)
        self.num_features = embed_dims[-1]

        drop_path_rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        grid = self.img_size
        in_dim = in_chans
        self.patch_embeds = nn.ModuleList()
        self.pos_embeds = nn.ParameterList()
        self.pos_grids: list[tuple[int, int]] = []
        self.stages = nn.ModuleList()
        cursor = 0
        for i, (patch, dim, depth) in enumerate(zip(patch_sizes, embed_dims, depths)):
            grid = (grid[0] // patch, grid[1] // patch)
            is_last = i == self.num_stages - 1
            self.patch_embeds.append(PatchEmbed(patch, in_dim, dim))
            # The last stage's embedding has one extra slot for the class token.
            self.pos_embeds.append(nn.Parameter(torch.zeros(1, grid[0] * grid[1] + is_last, dim)))
            self.pos_grids.append(grid)
            self.stages.append(nn.ModuleList(
                Block(dim, num_heads[i], mlp_ratios[i], sr_ratios[i], qkv_bias, drop_rate,
                      attn_drop_rate, drop_path_rates[cursor + j], fused_attn)
                for j in range(depth)))
            cursor += depth
            in_dim = dim
        self.pos_drop = nn.Dropout(drop_rate)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dims[-1]))
        self.norm = _layer_norm(embed_dims[-1])
        self.head = nn.Linear(embed_dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        for param in self.pos_embeds:
            nn.init.trunc_normal_(param, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def set_fused_attn(self, enabled: bool) -> None:
        """Switch every attention layer between SDPA and the explicit matmul path."""
        for module in self.modules():
            if isinstance(module, SpatialReductionAttention):
                module.fused_attn = enabled

    def _pos_embed(self, stage: int, hw: tuple[int, int]) -> torch.Tensor:
        pos = self.pos_embeds[stage]
        grid = self.pos_grids[stage]
        if tuple(hw) == grid:
            return pos
        extra = pos.shape[1] - grid[0] * grid[1]
        prefix, patch_pos = pos[:, :extra], pos[:, extra:]
        patch_pos = patch_pos.reshape(1, grid[0], grid[1], -1).permute(0, 3, 1, 2)
        patch_pos = F.interpolate(patch_pos, size=tuple(hw), mode="bilinear", align_corners=False)
        patch_pos = patch_pos.flatten(2).transpose(1, 2)
        return torch.cat((prefix, patch_pos), dim=1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Run the four stages; returns the normalised last-stage tokens (class token first)."""
        batch = x.shape[0]
        for i, (embed, blocks) in enumerate(zip(self.patch_embeds, self.stages)):
            x, hw = embed(x)
            if i == self.num_stages - 1:
                x = torch.cat((self.cls_token.expand(batch, -1, -1), x), dim=1)
            x = self.pos_drop(x + self._pos_embed(i, hw))
            # The last stage has sr_ratio 1, so its class token never has to fit a grid.
            for block in blocks:
                x = block(x, hw)
            if i < self.num_stages - 1:
                x = x.transpose(1, 2).reshape(batch, -1, hw[0], hw[1])
        return self.norm(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x[:, 0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


_COMMON = dict(
    patch_sizes=(4, 2, 2, 2),
    embed_dims=(64, 128, 320, 512),
    num_heads=(1, 2, 5, 8),
    mlp_ratios=(8, 8, 4, 4),
    sr_ratios=(8, 4, 2, 1),
    qkv_bias=True,
)


def _build(depths: tuple[int, int, int, int], kwargs: dict) -> PyramidVisionTransformer:
    return PyramidVisionTransformer(**{**_COMMON, "depths": depths, **kwargs})


@register
def pvt_v1_tiny(**kwargs) -> nn.Module:
    """PVT-Tiny (depths 2-2-2-2): 13.23 M params, ~1.9 GMACs at 224² (paper Table 1/2)."""
    return _build((2, 2, 2, 2), kwargs)


@register
def pvt_v1_small(**kwargs) -> nn.Module:
    """PVT-Small (depths 3-4-6-3): 24.49 M params, ~3.8 GMACs at 224² (paper Table 1/2)."""
    return _build((3, 4, 6, 3), kwargs)


@register
def pvt_v1_medium(**kwargs) -> nn.Module:
    """PVT-Medium (depths 3-4-18-3): 44.21 M params, ~6.7 GMACs at 224² (paper Table 1/2)."""
    return _build((3, 4, 18, 3), kwargs)


@register
def pvt_v1_large(**kwargs) -> nn.Module:
    """PVT-Large (depths 3-8-27-3): 61.37 M params, ~9.8 GMACs at 224² (paper Table 1/2)."""
    return _build((3, 8, 27, 3), kwargs)
