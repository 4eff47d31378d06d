"""ViL-LS: the multi-scale ViL skeleton with Transformer-LS long-short attention, random init.

Zhu et al., "Long-Short Transformer: Efficient Transformers for Language and Vision",
NeurIPS 2021 (arXiv:2107.02192). Source: ``NVIDIA/transformer-ls`` ``imagenet/models/
msvit.py`` (ViL's skeleton, :class:`vitbench.build.builders.msvit.MsViT` here) and
``imagenet/models/layers/transformer_ls.py`` (the attention), configured by the ARCH strings
of ``imagenet/launch/train/train_{medium_224,base_224,medium_384}.sh``. Written here from
those configuration facts.

Long-short attention (``s1`` stages, segment ``w = f``, rank ``r = 8``): one qkv projection;
keys and values pass a LayerNorm (the "full" half of DualLN). Each local query attends at
once to

- **short-term**: its ``w×w`` segment's neighbourhood of ``(w + 2⌊w/2⌋)²`` tokens (13×13 for
  w=7, 16×16 for w=8; keys beyond the map masked) with a relative position bias (the
  source's table of ``2(w+⌊w/2⌋-1)(w+2⌊w/2⌋+1)+1`` rows and its index, collisions included);
- **long-range**: ``r`` keys/values per head from a dynamic projection, a softmax over the
  tokens of ``Linear(C, r·heads)(x)``, each passed through the second LayerNorm of DualLN;
- the global token(s), whose keys/values come from the same projection.

The global token then attends to itself (its key) and to the local tokens' *outputs*
(the source's "post_cls" variant), and one output projection follows. The source multiplies
the local-to-global weights into the global values element-wise (valid for one global token);
here that is a matmul, the same numbers and ``L·C`` MACs per block more (<0.01 GMACs).

Configurations (full attention in stages 3-4, one global token in stages 1-3, none in 4):
Medium n1/n4/n16/n1, Base n1/n8/n24/n1; d 96/192/384/768, h 3/3/6/12, p 4/2/2/2, w 7
(w 8 for Medium at 384²), r 8. At 1000 classes:

=================  ==========  ======  ==========================
model              params (M)  GMACs   README (params, FLOPs)
=================  ==========  ======  ==========================
ViL-LS-Medium 224  39.80       8.69    39.8 M, 8.7 G
ViL-LS-Base 224    55.83       13.35   55.8 M, 13.4 G
ViL-LS-Medium 384  39.95       28.65   39.8 M, 28.7 G (seed 39.9)
=================  ==========  ======  ==========================

The 384² model's bias tables for its 24×24 and 12×12 full-attention maps hold 0.15 M more
than at 224²; the README repeats the 224² count, the seed prints 39.9. Parameters and outputs
(weights loaded) equal the source's ``MsViT`` with ``ATTN_TYPE ls``.
"""

from __future__ import annotations

import torch
from torch import nn

from vitbench.build.builders import register
from vitbench.build.builders.msvit import MsViT, StageSpec, neighbourhoods, relative_index

__all__ = [
    "LongShortAttention",
    "vil_ls_arch",
    "long_short_factory",
    "vil_ls_medium",
    "vil_ls_base",
    "vil_ls_medium_384",
]


class LongShortAttention(nn.Module):
    """Transformer-LS attention on ``(B, G + L, C)`` tokens of an ``H×W`` map (module
    docstring); ``H`` and ``W`` must be multiples of the segment size ``window``."""

    def __init__(self, dim: int, num_heads: int, window: int, rank: int, global_tokens: int,
                 qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.window = window
        self.rank = rank
        self.global_tokens = global_tokens
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        if rank:
            self.to_dynamic_projection = nn.Linear(dim, rank * num_heads)
        self.dual_ln_dp = nn.LayerNorm(dim)
        self.dual_ln_full = nn.LayerNorm(dim)
        side = window // 2
        self.side = max(side, 1)
        self.size = window + 2 * self.side
        span = window + side - 1
        self.local_bias_table = nn.Parameter(
            torch.zeros(2 * span * (2 * side + window + 1) + 1, num_heads))
        self.register_buffer("relative_index", relative_index(
            window, self.size, offset=self.side, span=span, stride=2 * side + window),
            persistent=False)
        self._outside: dict[tuple, torch.Tensor] = {}

    def outside(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        """``(segments, 1, size²)``: True where a neighbourhood key lies outside the map."""
        key = (height, width, str(device))
        if key not in self._outside:
            inside = neighbourhoods(torch.ones(1, 1, height, width, device=device), self.size,
                                    self.window, (self.side,) * 4)
            self._outside[key] = inside[0] == 0
        return self._outside[key]

    def _low_rank(self, projection: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``(B, H, r, d)``: the ``r`` projected tokens per head, DualLN-normed over ``C``."""
        batch, heads, rank, _ = projection.shape
        t = (projection @ t).transpose(1, 2).reshape(batch, rank, -1)
        return self.dual_ln_dp(t).view(batch, rank, heads, -1).transpose(1, 2)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        batch, tokens, dim = x.shape
        heads, glob, w, (height, width) = self.num_heads, self.global_tokens, self.window, hw
        if height % w or width % w:
            raise ValueError(f"a {height}×{width} map is no multiple of the segment size {w}")
        bh = batch * heads
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        k, v = self.dual_ln_full(k), self.dual_ln_full(v)
        q, k, v = (t.reshape(batch, tokens, heads, -1).transpose(1, 2) for t in (q, k, v))
        q = q * self.scale
        q_loc, k_loc, v_loc = q[:, :, glob:], k[:, :, glob:], v[:, :, glob:]

        # Queries by segment: (B, H, segments, w², d).
        rows, cols = height // w, width // w
        q_seg = q_loc.reshape(batch, heads, rows, w, cols, w, -1).permute(0, 1, 2, 4, 3, 5, 6)
        q_seg = q_seg.reshape(batch, heads, rows * cols, w * w, -1)

        scores, values = [], []
        if self.rank:  # long-range: dynamic projection over the local tokens
            projection = self.to_dynamic_projection(x[:, glob:]).transpose(1, 2)
            projection = projection.reshape(batch, heads, self.rank, -1).softmax(dim=-1)
            k_low, v_low = self._low_rank(projection, k_loc), self._low_rank(projection, v_loc)
            scores.append(q_seg @ k_low[:, :, None].transpose(-1, -2))
            values.append(v_low[:, :, None])
        # Short-term: the segment's neighbourhood, relative bias, keys beyond the map masked.
        imgs = (t.reshape(bh, height, width, -1).permute(0, 3, 1, 2) for t in (k_loc, v_loc))
        k_win, v_win = (neighbourhoods(t, self.size, w, (self.side,) * 4) for t in imgs)
        local = q_seg @ k_win.view(batch, heads, *k_win.shape[1:])
        bias = self.local_bias_table[self.relative_index.view(-1)]
        bias = bias.view(w * w, self.size ** 2, heads).permute(2, 0, 1)
        local = (local + bias[None, :, None]).masked_fill(
            self.outside(height, width, x.device), float("-inf"))
        scores.append(local)
        values.append(v_win.transpose(-1, -2).reshape(batch, heads, rows * cols, -1,
                                                      v_win.shape[2]))
        if glob:
            scores.append(q_seg @ k[:, :, None, :glob].transpose(-1, -2))
            values.append(v[:, :, None, :glob])

        attn = torch.cat(scores, dim=-1).softmax(dim=-1)
        out, start = 0, 0
        for value in values:
            out = out + attn[..., start:start + value.shape[-2]] @ value
            start += value.shape[-2]
        out = out.reshape(batch, heads, rows, cols, w, w, -1).permute(0, 1, 2, 4, 3, 5, 6)
        out = out.reshape(batch, heads, height * width, -1)

        if glob:  # the global token attends to its own key and to the local outputs
            q_glob = q[:, :, :glob]
            g_scores = torch.cat([q_glob @ k[:, :, :glob].transpose(-1, -2),
                                  q_glob @ out.transpose(-1, -2)], dim=-1).softmax(dim=-1)
            g_out = g_scores[..., glob:] @ out + g_scores[..., :glob] @ v[:, :, :glob]
            out = torch.cat([g_out, out], dim=2)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


def vil_ls_arch(depths: tuple[int, ...], window: int = 7, rank: int = 8) -> str:
    """The transformer-ls launch scripts' ARCH string for ``depths``."""
    stages = ((3, 96, 1, 1, 4), (3, 192, 1, 1, 2), (6, 384, 0, 1, 2), (12, 768, 0, 0, 2))
    return "_".join(f"l{i},h{h},d{d},n{n},s{s},g{g},p{p},f{window},a0,r{rank}"
                    for i, ((h, d, s, g, p), n) in enumerate(zip(stages, depths), start=1))


def long_short_factory(spec: StageSpec, resolution: tuple[int, int]) -> nn.Module:
    """The ``s1`` attention of ViL-LS: :class:`LongShortAttention` with the stage's ``f, r``."""
    return LongShortAttention(spec.dim, spec.heads, spec.window, spec.rank, spec.global_tokens)


@register
def vil_ls_medium(**kwargs) -> MsViT:
    """ViL-LS-Medium (``train_medium_224.sh``): n1/n4/n16/n1, w 7; 39.80 M, 8.69 GMACs."""
    return MsViT(vil_ls_arch((1, 4, 16, 1)), long_short_factory, **kwargs)


@register
def vil_ls_base(**kwargs) -> MsViT:
    """ViL-LS-Base (``train_base_224.sh``): n1/n8/n24/n1, w 7; 55.83 M, 13.35 GMACs."""
    return MsViT(vil_ls_arch((1, 8, 24, 1)), long_short_factory, **kwargs)


@register
def vil_ls_medium_384(**kwargs) -> MsViT:
    """ViL-LS-Medium at 384² (``train_medium_384.sh``): w 8, built for 384² unless told;
    39.95 M, 28.65 GMACs."""
    kwargs.setdefault("img_size", 384)
    return MsViT(vil_ls_arch((1, 4, 16, 1), window=8), long_short_factory, **kwargs)
