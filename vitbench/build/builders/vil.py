"""ViL (Multi-Scale Vision Longformer) for ImageNet classification, random init.

Zhang et al., "Multi-Scale Vision Longformer: A New Vision Transformer for High-Resolution
Image Encoding", ICCV 2021 (arXiv:2103.15358). Source: ``microsoft/vision-longformer``
``src/models/msvit.py`` (the skeleton, :class:`vitbench.build.builders.msvit.MsViT` here),
``layers/longformer2d.py`` and ``slidingchunk_2d.py`` (the attention). Written here from
those configuration facts.

ViL attention (``s1`` stages, window ``w = f = 7``): local tokens attend to the global
tokens and to a local neighbourhood; global tokens attend to everything. q/k/v/proj weights
are shared between local and global tokens (``SHARE_W``), so k and v are computed once. Two
neighbourhoods:

- ``exact`` (the default): the conv-like ``(2w+1)² = 15×15`` window around each query, keys
  outside the map masked. This is the paper's count: ViL-Small/Medium-Deep/Base-Deep give
  4.88/8.74/13.43 GMACs (paper 4.86/8.7/13.4, the seed's 4.9/8.7/13.4). The windows are
  gathered with ``Tensor.unfold`` (225 copies of K and V per query map), which costs memory
  a custom kernel would not;
- ``sliding_chunk=True``: the released implementation (``SW_EXACT 0``): 7×7 query chunks
  attend to their 3×3 neighbourhood of chunks (441 keys, outside-map keys masked); 5.14 /
  9.13 GMACs, the README's 5.12 / 9.1 G.

Configurations (README table; ``s1`` in stages 1-2, full attention in 3-4, one global token
in stages 1-3 and none in 4, as in ViL-LS's scripts and the detection repository):
d 96/192/384/768, h 3/3/6/12, p 4/2/2/2; Small n1/n2/n8/n1, Medium-Deep n1/n4/n16/n1,
Base-Deep n1/n8/n24/n1. At 224² with 1000 classes: 24.66 / 39.78 / 55.80 M parameters
(README and paper 24.6 / 39.7 / 55.7 M, which is the count without the relative-position
tables: 24.61 / 39.70 / 55.67 M). Parameters and outputs (weights loaded) equal the source's
``MsViT`` with ``SW_EXACT 1`` (exact) or ``0`` (sliding chunk).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vitbench.build.builders import register
from vitbench.build.builders.msvit import (MsViT, SparseFactory, StageSpec, neighbourhoods,
                                           relative_index)

__all__ = [
    "LongformerAttention",
    "vil_arch",
    "longformer_factory",
    "vil_small",
    "vil_medium_deep",
    "vil_base_deep",
]


class LongformerAttention(nn.Module):
    """ViL's local+global attention (module docstring): exact ``(2w+1)²`` windows, or
    ``sliding_chunk`` 3×3 neighbourhoods of ``w×w`` chunks; global tokens see everything."""

    def __init__(self, dim: int, num_heads: int, window: int, global_tokens: int,
                 sliding_chunk: bool = False, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.window = window
        self.global_tokens = global_tokens
        self.sliding_chunk = sliding_chunk
        self.query = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.local_bias_table = nn.Parameter(torch.zeros((4 * window - 1) ** 2, num_heads))
        group, size = (window, 3 * window) if sliding_chunk else (1, 2 * window + 1)
        self.group, self.size = group, size
        self.register_buffer("relative_index", relative_index(
            group, size, offset=window, span=2 * window - 1, stride=4 * window - 1),
            persistent=False)
        if global_tokens:
            self.g2l_bias = nn.Parameter(torch.zeros(2, num_heads, global_tokens))
            self.g2g_bias = nn.Parameter(torch.zeros(num_heads, global_tokens, global_tokens))
        self._outside: dict[tuple, torch.Tensor] = {}

    def _pads(self, height: int, width: int) -> tuple[int, int, int, int]:
        w = self.window
        if not self.sliding_chunk:
            return (w, w, w, w)
        return (w, w + (-width) % w, w, w + (-height) % w)

    def _step(self) -> int:
        return self.window if self.sliding_chunk else 1

    def outside(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        """``(groups, 1, size²)``: True where a window's key lies outside the map."""
        key = (height, width, str(device))
        if key not in self._outside:
            inside = neighbourhoods(torch.ones(1, 1, height, width, device=device), self.size,
                                    self._step(), self._pads(height, width))
            self._outside[key] = inside[0] == 0
        return self._outside[key]

    def _group_queries(self, q: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """``(BH, L, d)`` → ``(BH, groups, group², d)``."""
        if not self.sliding_chunk:
            return q[:, :, None, :]
        g = self.group
        img = F.pad(q.transpose(1, 2).reshape(q.shape[0], -1, height, width),
                    (0, (-width) % g, 0, (-height) % g))
        return neighbourhoods(img, g, g, (0, 0, 0, 0)).transpose(-1, -2)

    def _ungroup(self, out: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Inverse of :meth:`_group_queries`: ``(BH, L, d)``."""
        if not self.sliding_chunk:
            return out[:, :, 0]
        g, bh, d = self.group, out.shape[0], out.shape[-1]
        rows, cols = -(-height // g), -(-width // g)
        out = out.reshape(bh, rows, cols, g, g, d).permute(0, 1, 3, 2, 4, 5)
        return out.reshape(bh, rows * g, cols * g, d)[:, :height, :width].reshape(bh, -1, d)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        batch, tokens, dim = x.shape
        heads, glob, (height, width) = self.num_heads, self.global_tokens, hw
        bh = batch * heads
        q = (self.query(x) * self.scale).reshape(batch, tokens, heads, -1).transpose(1, 2)
        k, v = self.kv(x).reshape(batch, tokens, 2, heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = (t.reshape(bh, tokens, -1) for t in (q, k, v))
        q_loc, k_loc, v_loc = q[:, glob:], k[:, glob:], v[:, glob:]

        # Local queries: keys of their neighbourhood, then the global tokens.
        q_groups = self._group_queries(q_loc, height, width)
        pads, step = self._pads(height, width), self._step()
        k_win = neighbourhoods(k_loc.transpose(1, 2).reshape(bh, -1, height, width),
                               self.size, step, pads)
        v_win = neighbourhoods(v_loc.transpose(1, 2).reshape(bh, -1, height, width),
                               self.size, step, pads).transpose(-1, -2)
        bias = self.local_bias_table[self.relative_index.view(-1)]
        bias = bias.view(self.group ** 2, self.size ** 2, heads).permute(2, 0, 1)
        local = (q_groups @ k_win).view(batch, heads, *q_groups.shape[1:3], -1)
        local = (local + bias[None, :, None]).masked_fill(
            self.outside(height, width, x.device), float("-inf"))
        scores = local.view(bh, *local.shape[2:])
        if glob:
            to_global = q_groups @ k[:, None, :glob].transpose(-1, -2)
            to_global = to_global.view(batch, heads, *to_global.shape[1:])
            to_global = to_global + self.g2l_bias[1][None, :, None, None, :]
            scores = torch.cat([to_global.view(bh, *to_global.shape[2:]), scores], dim=-1)
        attn = scores.softmax(dim=-1)
        out = attn[..., glob:] @ v_win
        if glob:
            out = out + attn[..., :glob] @ v[:, None, :glob]
        out = self._ungroup(out, height, width)

        if glob:  # global queries attend to every token
            g_bias = torch.cat([self.g2g_bias, self.g2l_bias[0][..., None].expand(
                heads, glob, tokens - glob)], dim=-1)
            g_scores = (q[:, :glob] @ k.transpose(-1, -2)).view(batch, heads, glob, tokens)
            g_attn = (g_scores + g_bias[None]).softmax(dim=-1).view(bh, glob, tokens)
            out = torch.cat([g_attn @ v, out], dim=1)
        out = out.view(batch, heads, tokens, -1).transpose(1, 2).reshape(batch, tokens, dim)
        return self.proj(out)


def vil_arch(depths: Sequence[int], window: int = 7) -> str:
    """The ViL ARCH string for ``depths`` (module docstring)."""
    stages = ((3, 96, 1, 1, 4), (3, 192, 1, 1, 2), (6, 384, 0, 1, 2), (12, 768, 0, 0, 2))
    return "_".join(f"l{i},h{h},d{d},n{n},s{s},g{g},p{p},f{window},a0"
                    for i, ((h, d, s, g, p), n) in enumerate(zip(stages, depths), start=1))


def longformer_factory(sliding_chunk: bool = False) -> SparseFactory:
    """The ``s1`` attention of ViL: :class:`LongformerAttention` with the stage's window."""
    def make(spec: StageSpec, resolution: tuple[int, int]) -> nn.Module:
        return LongformerAttention(spec.dim, spec.heads, spec.window, spec.global_tokens,
                                   sliding_chunk=sliding_chunk)
    return make


def _vil(depths: Sequence[int], sliding_chunk: bool, **kwargs) -> MsViT:
    return MsViT(vil_arch(depths), longformer_factory(sliding_chunk), **kwargs)


@register
def vil_small(sliding_chunk: bool = False, **kwargs) -> MsViT:
    """ViL-Small (n1/n2/n8/n1): 24.66 M; 4.88 GMACs exact (paper 4.86), 5.14 chunked
    (README 5.12)."""
    return _vil((1, 2, 8, 1), sliding_chunk, **kwargs)


@register
def vil_medium_deep(sliding_chunk: bool = False, **kwargs) -> MsViT:
    """ViL-Medium-Deep (n1/n4/n16/n1): 39.78 M; 8.74 GMACs exact (paper 8.7), 9.13
    chunked (README 9.1)."""
    return _vil((1, 4, 16, 1), sliding_chunk, **kwargs)


@register
def vil_base_deep(sliding_chunk: bool = False, **kwargs) -> MsViT:
    """ViL-Base-Deep (n1/n8/n24/n1): 55.80 M; 13.43 GMACs exact (paper 13.4)."""
    return _vil((1, 8, 24, 1), sliding_chunk, **kwargs)
