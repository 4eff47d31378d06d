"""Shunted Transformer (Shunted-T) for ImageNet classification, random init.

Ren et al., "Shunted Self-Attention via Multi-Scale Token Aggregation", CVPR 2022
(arXiv:2111.15193). Not in timm; vitbench builds it from the configuration of the
authors' ``OliverRensu/Shunted-Transformer`` (``SSA.py``, ``shunted_t``).

Configuration (Shunted-T):

- four stages at strides 4/8/16/32, dims 64-128-256-512, heads 2-4-8-16, MLP ratios
  8-8-4-4, depths 1-2-4-1, reduction rates 8-4-2-1, qkv bias, block LayerNorm eps 1e-6;
- stem (``num_conv`` 0): ``7×7`` stride-2 conv (no bias) → BatchNorm → ReLU → ``2×2``
  stride-2 conv → LayerNorm; stages 2–4 open with an overlapping ``3×3`` stride-2 conv
  and LayerNorm;
- *shunted self-attention* (SSA): where the rate R > 1, half the heads take keys/values
  from the tokens reduced by an ``R×R`` stride-R conv and the other half from an
  ``R/2×R/2`` stride-R/2 conv (each followed by LayerNorm and GELU, then a linear layer to
  that half's keys and values); each half's values get a depthwise 3×3 conv added on
  their reduced map. At R = 1 all heads attend to all tokens and the depthwise conv of the
  values is added to the attention output;
- MLP: ``fc1 → GELU(h + dwconv3×3(h)) → fc2``;
- a LayerNorm after every stage, mean pooling over tokens and a linear head.

At 224² with 1000 classes (self-measured; the modules equal the authors', checked once
outside the test suite by loading their state dict and comparing outputs): 11.55 M params
(README and paper 11.5 M, truncated) and 2.15 GMACs (paper 2.1 GFLOPs). The two counters
agree and no op is left uncounted.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath
from torch import nn

from vitbench.build.builders import register

__all__ = ["ShuntedTransformer", "shunted_t"]


def _linear_rates(last: float, count: int) -> list[float]:
    """``count`` stochastic-depth rates from 0 to ``last`` (plain floats: builds on ``meta``)."""
    return [last * i / (count - 1) if count > 1 else 0.0 for i in range(count)]


def _tokens_to_map(x: torch.Tensor, hw: Sequence[int]) -> torch.Tensor:
    """``(B, N, C)`` tokens → ``(B, C, H, W)`` map."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *hw)


def _map_to_tokens(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).transpose(1, 2)


class DepthwiseMlp(nn.Module):
    """``fc1 → GELU(h + dwconv3×3(h)) → fc2`` on tokens of an ``H×W`` map."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.dwconv = nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1, groups=hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        x = self.fc1(x)
        x = self.act(x + _map_to_tokens(self.dwconv(_tokens_to_map(x, hw))))
        return self.fc2(x)


class KeyValueBranch(nn.Module):
    """Keys and values for half of the heads from tokens reduced ``rate``× per side."""

    def __init__(self, dim: int, rate: int):
        super().__init__()
        half = dim // 2
        self.reduce = nn.Conv2d(dim, dim, kernel_size=rate, stride=rate)
        self.norm = nn.LayerNorm(dim)
        self.act = nn.GELU()
        self.kv = nn.Linear(dim, dim)  # half the width for keys, half for values
        self.local_conv = nn.Conv2d(half, half, 3, padding=1, groups=half)

    def forward(self, x_map: torch.Tensor, heads: int) -> tuple[torch.Tensor, torch.Tensor]:
        reduced = self.reduce(x_map)
        hw = reduced.shape[-2:]
        tokens = self.act(self.norm(_map_to_tokens(reduced)))
        batch, length, dim = tokens.shape
        k, v = self.kv(tokens).reshape(batch, length, 2, heads, dim // 2 // heads) \
            .permute(2, 0, 3, 1, 4).unbind(0)
        # The values, back on their reduced map (channels head-major), get a local conv.
        v_map = v.transpose(1, 2).reshape(batch, length, dim // 2).transpose(1, 2)
        v_local = self.local_conv(v_map.reshape(batch, dim // 2, *hw))
        v = v + v_local.reshape(batch, heads, dim // 2 // heads, length).transpose(-1, -2)
        return k, v


class ShuntedAttention(nn.Module):
    """Shunted self-attention: two key/value granularities (R and R/2) over two head
    halves when ``sr_ratio > 1``, plain attention plus a local value conv at R = 1."""

    def __init__(self, dim: int, num_heads: int, sr_ratio: int):
        super().__init__()
        if dim % num_heads or num_heads % 2:
            raise ValueError(f"dim {dim} and heads {num_heads}: heads must be even and divide dim")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.sr_ratio = sr_ratio
        self.q = nn.Linear(dim, dim)
        if sr_ratio > 1:
            self.coarse = KeyValueBranch(dim, sr_ratio)
            self.fine = KeyValueBranch(dim, sr_ratio // 2)
        else:
            self.kv = nn.Linear(dim, dim * 2)
            self.local_conv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        batch, tokens, dim = x.shape
        q = self.q(x).reshape(batch, tokens, self.num_heads, self.head_dim).transpose(1, 2)
        if self.sr_ratio > 1:
            x_map = _tokens_to_map(x, hw)
            half = self.num_heads // 2
            outs = [F.scaled_dot_product_attention(q_half, *branch(x_map, half))
                    for q_half, branch in ((q[:, :half], self.coarse), (q[:, half:], self.fine))]
            out = torch.cat(outs, dim=1)
            out = out.transpose(1, 2).reshape(batch, tokens, dim)
        else:
            k, v = self.kv(x).reshape(batch, tokens, 2, self.num_heads, self.head_dim) \
                .permute(2, 0, 3, 1, 4).unbind(0)
            out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, tokens, dim)
            v_map = v.transpose(1, 2).reshape(batch, tokens, dim).transpose(1, 2).reshape(batch, dim, *hw)
            out = out + _map_to_tokens(self.local_conv(v_map))
        return self.proj(out)


class Block(nn.Module):
    """Pre-norm block: shunted attention and the depthwise MLP, each residual."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, sr_ratio: int,
                 drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = ShuntedAttention(dim, num_heads, sr_ratio)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = DepthwiseMlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), hw))
        return x + self.drop_path(self.mlp(self.norm2(x), hw))


class ConvTokens(nn.Module):
    """A conv projection to a map, then its tokens through LayerNorm; returns ``(tokens, hw)``."""

    def __init__(self, proj: nn.Module, dim: int):
        super().__init__()
        self.proj = proj
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        x = self.proj(x)
        height, width = x.shape[-2:]
        return self.norm(_map_to_tokens(x)), (height, width)


class ShuntedTransformer(nn.Module):
    """Four-stage Shunted Transformer classifier (stem with ``num_conv`` 0, as Shunted-T).

    Any input whose stage-1 map (side / 4) divides by the largest reduction rate works;
    ``img_size`` is accepted for the zoo and only checked.
    """

    def __init__(
        self,
        img_size: int | Sequence[int] = 224,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dims: Sequence[int] = (64, 128, 256, 512),
        num_heads: Sequence[int] = (2, 4, 8, 16),
        mlp_ratios: Sequence[float] = (8, 8, 4, 4),
        depths: Sequence[int] = (1, 2, 4, 1),
        sr_ratios: Sequence[int] = (8, 4, 2, 1),
        drop_path_rate: float = 0.0,
    ):
        super().__init__()
        sides = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        multiple = 4 * sr_ratios[0]
        if any(int(side) % multiple for side in sides):
            raise ValueError(f"Shunted Transformer needs input sides that are multiples of "
                             f"{multiple}, got {sides[0]}x{sides[1]}")
        self.num_classes = num_classes
        self.num_features = embed_dims[-1]
        stem = nn.Sequential(
            nn.Conv2d(in_chans, embed_dims[0], 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(embed_dims[0]), nn.ReLU(inplace=True),
            nn.Conv2d(embed_dims[0], embed_dims[0], kernel_size=2, stride=2))
        self.embeds = nn.ModuleList([ConvTokens(stem, embed_dims[0])])
        self.embeds.extend(ConvTokens(nn.Conv2d(a, b, 3, stride=2, padding=1), b)
                           for a, b in zip(embed_dims[:-1], embed_dims[1:]))
        drop_path_rates = _linear_rates(drop_path_rate, sum(depths))
        self.stages = nn.ModuleList()
        self.norms = nn.ModuleList()
        cursor = 0
        for i, (dim, depth) in enumerate(zip(embed_dims, depths)):
            self.stages.append(nn.ModuleList(
                Block(dim, num_heads[i], mlp_ratios[i], sr_ratios[i], drop_path_rates[cursor + j])
                for j in range(depth)))
            self.norms.append(nn.LayerNorm(dim, eps=1e-6))
            cursor += depth
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
        for i, (embed, blocks, norm) in enumerate(zip(self.embeds, self.stages, self.norms)):
            if i > 0:
                x = _tokens_to_map(x, hw)
            x, hw = embed(x)
            for block in blocks:
                x = block(x, hw)
            x = norm(x)
        return x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.mean(dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register
def shunted_t(**kwargs) -> nn.Module:
    """Shunted-T (depths 1-2-4-1): 11.55 M params (README 11.5 M), 2.15 GMACs at 224²."""
    return ShuntedTransformer(**kwargs)
