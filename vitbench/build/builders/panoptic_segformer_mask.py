"""Panoptic SegFormer's mask decoder: attention maps over the encoder memory become masks.

Li et al., "Panoptic SegFormer: Delving Deeper into Panoptic Segmentation with
Transformers", CVPR 2022 (arXiv:2109.03814), as the authors' released code defines it
(``zhiqi-li/Panoptic-SegFormer``, ``easymd/models/panformer/mask_head.py``, ``MaskHead``;
written here from that definition, not copied). No model is registered here:
:mod:`vitbench.build.builders.panoptic_segformer` assembles the whole network.

Each decoder block is post-norm (LayerNorm eps 1e-6): optional query self-attention (the
*stuff* decoder only), cross-attention from the queries into the memory of the first three
feature levels (strides 8, 16, 32; qkv bias; 8 heads of 32), then a GELU MLP of ratio 4.
The cross-attention's pre-softmax logits, (B, heads, N, S), also make a mask: per level a
``Linear(heads, heads)`` + ReLU over the head axis, the stride-16 and stride-32 maps
resized (bilinear) to stride 8, the three concatenated and mapped by ``Linear(3·heads, 1)``
+ ReLU to one value per stride-8 pixel. Every block makes such a mask (deep supervision);
after the last block a lighter ``AttentionTail`` (query and key projections only) makes
the mask that inference keeps. Queries get their position added before every block.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from timm.layers import Mlp

__all__ = ["MaskDecoder", "MaskAttention"]


def _norm(dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=1e-6)


class _MaskFromLogits(nn.Module):
    """Attention logits (B, heads, N, S) over three levels → a mask (B, N, H0·W0, 1)."""

    def __init__(self, heads: int):
        super().__init__()
        self.per_level = nn.ModuleList(nn.Sequential(nn.Linear(heads, heads), nn.ReLU())
                                       for _ in range(3))
        self.fuse = nn.Sequential(nn.Linear(3 * heads, 1), nn.ReLU())

    def forward(self, logits: torch.Tensor, shapes: Sequence[tuple[int, int]]) -> torch.Tensor:
        batch, heads, queries, _ = logits.shape
        logits = logits.permute(0, 2, 3, 1)  # B, N, S, heads
        (h0, w0), sizes = shapes[0], [h * w for h, w in shapes[:3]]
        maps = []
        for level, (chunk, layer) in enumerate(zip(logits.split(sizes, dim=2), self.per_level)):
            mapped = layer(chunk)
            if level:
                height, width = shapes[level]
                mapped = mapped.permute(0, 1, 3, 2).reshape(batch * queries, heads, height, width)
                mapped = F.interpolate(mapped, size=(h0, w0), mode="bilinear")
                mapped = mapped.permute(0, 2, 3, 1).reshape(batch, queries, h0 * w0, heads)
            maps.append(mapped)
        return self.fuse(torch.cat(maps, -1))


class MaskAttention(nn.Module):
    """Cross-attention that also returns the mask read off its logits.

    ``with_value=False`` is the released ``AttentionTail``: no value or output projection,
    only the mask.
    """

    def __init__(self, dim: int, heads: int, with_value: bool = True):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim) if with_value else None
        self.proj = nn.Linear(dim, dim) if with_value else None
        self.mask = _MaskFromLogits(heads)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        return x.view(batch, tokens, self.heads, dim // self.heads).transpose(1, 2)

    def forward(self, query, key, value, shapes, with_mask: bool = True):
        q, k = self._split(self.q(query)), self._split(self.k(key))
        logits = (q @ k.transpose(-2, -1)) * self.scale  # B, heads, N, S
        mask = self.mask(logits, shapes) if with_mask else None
        if self.v is None:
            return None, mask
        attended = logits.softmax(-1) @ self._split(self.v(value))
        return self.proj(attended.transpose(1, 2).flatten(2)), mask


class _SelfAttention(nn.Module):
    """Plain multi-head self-attention (fused qkv with bias, output projection)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).view(batch, tokens, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attended = ((q @ k.transpose(-2, -1)) * self.scale).softmax(-1) @ v
        return self.proj(attended.transpose(1, 2).flatten(2))


class _MaskBlock(nn.Module):
    def __init__(self, dim: int, heads: int, self_attn: bool):
        super().__init__()
        if self_attn:
            self.self_attention = _SelfAttention(dim, heads)
            self.norm3 = _norm(dim)
        else:
            self.self_attention = None
        self.attn = MaskAttention(dim, heads)
        self.head_norm1 = _norm(dim)
        self.mlp = Mlp(dim, 4 * dim, act_layer=nn.GELU)
        self.head_norm2 = _norm(dim)

    def forward(self, query, memory, shapes, with_mask: bool):
        if self.self_attention is not None:
            query = self.norm3(query + self.self_attention(query))
        attended, mask = self.attn(query, memory, memory, shapes, with_mask)
        query = self.head_norm1(query + attended)
        return self.head_norm2(query + self.mlp(query)), mask


class MaskDecoder(nn.Module):
    """``layers`` mask blocks and the attention tail (the released ``MaskHead``).

    ``forward`` returns the tail's mask (B, N, H0·W0, 1), every block's mask, and every
    block's query (the class branches read the last). The blocks' masks are deep
    supervision: made only in training mode (an empty list in eval), so they count in
    params but not in GFLOPs, as vitbench treats auxiliary heads. The released code makes
    them at inference too and drops them: 1.5 GMACs at 1280×800 (R50).
    """

    def __init__(self, dim: int = 256, heads: int = 8, layers: int = 6, self_attn: bool = False):
        super().__init__()
        self.blocks = nn.ModuleList(_MaskBlock(dim, heads, self_attn) for _ in range(layers))
        self.tail = MaskAttention(dim, heads, with_value=False)

    def forward(self, memory: torch.Tensor, query: torch.Tensor,
                query_pos: Optional[torch.Tensor], shapes: Sequence[tuple[int, int]]):
        masks, states = [], []
        for block in self.blocks:
            located = query if query_pos is None else query + query_pos
            query, mask = block(located, memory, shapes, self.training)
            if mask is not None:
                masks.append(mask)
            states.append(query)
        located = query if query_pos is None else query + query_pos
        return self.tail(located, memory, None, shapes)[1], masks, states
