"""ViL (Multi-Scale Vision Longformer) and the multi-scale skeleton ViL-LS shares, random init.

Zhang et al., "Multi-Scale Vision Longformer: A New Vision Transformer for High-Resolution
Image Encoding", ICCV 2021 (arXiv:2103.15358). Source: ``microsoft/vision-longformer``
``src/models/msvit.py`` (the skeleton, ``MsViT``), ``layers/longformer2d.py`` and
``slidingchunk_2d.py`` (the attention). Written here from those configuration facts; the
Transformer-LS variant (:mod:`vitbench.build.builders.vil_ls`) plugs its attention into the
same skeleton, as NVIDIA/transformer-ls's copy of ``msvit.py`` does.

Skeleton (:class:`MsViT`), configured by the sources' ARCH strings (``l1,h3,d96,n1,s1,g1,
p4,f7,a0_l2,...``: per stage heads ``h``, width ``d``, blocks ``n``, sparse attention ``s``
(else full), global tokens ``g``, patch size ``p``, window ``f``, absolute position
embedding ``a``, low rank ``r``):

- each stage: a ``p×p`` stride-``p`` conv and LayerNorm (eps 1e-6) re-embed the previous
  stage's map (its global tokens are dropped); ``g`` fresh learned global tokens join;
- blocks: pre-norm attention and pre-norm GELU MLP (ratio 4), each with a residual; qkv bias;
- no absolute position embedding (``a0``): relative position biases instead; a final
  LayerNorm, the first global token (or the token mean when the last stage has none), linear
  head;
- full-attention stages (``s0``) carry a Swin-style bias table sized to the whole stage map
  plus global-to-local / local-to-global / global-to-global biases, so a model is built for
  one input size (``img_size``), as the source asserts.

ViL attention (``s1``, window ``w = f = 7``): local tokens attend to the global tokens and
to a local neighbourhood; global tokens attend to everything. q/k/v/proj weights are shared
between local and global tokens (``SHARE_W``), so k and v are computed once. Two
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

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, to_2tuple, trunc_normal_
from timm.layers.pos_embed_rel import gen_relative_position_index
from torch import nn

from vitbench.build.builders import register

__all__ = [
    "StageSpec",
    "parse_arch",
    "neighbourhoods",
    "relative_index",
    "FullAttention",
    "LongformerAttention",
    "MsViT",
    "vil_arch",
    "longformer_factory",
    "vil_small",
    "vil_medium_deep",
    "vil_base_deep",
]

#: ``make_sparse(spec, resolution) -> nn.Module`` builds a stage's ``s1`` attention.
SparseFactory = Callable[["StageSpec", tuple[int, int]], nn.Module]


@dataclass(frozen=True)
class StageSpec:
    """One stage of an ARCH string."""

    heads: int
    dim: int
    depth: int
    sparse: bool
    global_tokens: int
    patch: int
    window: int
    rank: int = 0


def parse_arch(arch: str) -> list[StageSpec]:
    """Parse the sources' ``MODEL.VIT.MSVIT.ARCH`` string (stages joined by ``_``)."""
    stages = []
    for number, text in enumerate(arch.split("_"), start=1):
        fields = {item[0]: int(item[1:]) for item in text.split(",")}
        if fields.get("l", number) != number:
            raise ValueError(f"stage {number} is labelled l{fields['l']}")
        if fields.get("a", 0):
            raise ValueError("absolute position embeddings (a1) are not built; use a0")
        stages.append(StageSpec(heads=fields["h"], dim=fields["d"], depth=fields["n"],
                                sparse=bool(fields["s"]), global_tokens=fields["g"],
                                patch=fields["p"], window=fields["f"], rank=fields.get("r", 0)))
    return stages


def neighbourhoods(img: torch.Tensor, size: int, step: int,
                   pads: tuple[int, int, int, int]) -> torch.Tensor:
    """``(N, C, H, W)`` zero-padded by ``pads`` (left, right, top, bottom), cut into
    ``size×size`` windows every ``step``: ``(N, windows, C, size²)`` in raster order."""
    windows = F.pad(img, pads).unfold(2, size, step).unfold(3, size, step)
    n, c, rows, cols = windows.shape[:4]
    return windows.permute(0, 2, 3, 1, 4, 5).reshape(n, rows * cols, c, size * size)


def relative_index(group: int, size: int, offset: int, span: int, stride: int) -> torch.Tensor:
    """``(group², size²)`` bias-table index of query ``q`` (in a ``group×group`` block) and
    key ``u`` (in the ``size×size`` window that starts ``offset`` before the block):
    ``(rel_y + span)·stride + rel_x + span`` with ``rel = q + offset - u`` per axis."""
    q = torch.arange(group)
    u = torch.arange(size)
    rel = q[:, None] + offset - u[None, :]  # (group, size) per axis
    rel_y = rel[:, None, :, None] + span
    rel_x = rel[None, :, None, :] + span
    return (rel_y * stride + rel_x).reshape(group * group, size * size)


class FullAttention(nn.Module):
    """Multi-head attention over all tokens with a Swin-style relative bias for a fixed
    ``resolution`` and learned biases between global and local tokens (``s0`` stages)."""

    def __init__(self, dim: int, num_heads: int, resolution: tuple[int, int],
                 global_tokens: int, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.resolution = resolution
        self.global_tokens = global_tokens
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        height, width = resolution
        self.local_bias_table = nn.Parameter(torch.zeros((2 * height - 1) * (2 * width - 1),
                                                         num_heads))
        self.register_buffer("relative_index", gen_relative_position_index(resolution),
                             persistent=False)
        if global_tokens:
            self.g2l_bias = nn.Parameter(torch.zeros(2, num_heads, global_tokens))
            self.g2g_bias = nn.Parameter(torch.zeros(num_heads, global_tokens, global_tokens))

    def bias(self) -> torch.Tensor:
        """``(heads, N, N)``: global rows/columns first, then the local map."""
        local = self.resolution[0] * self.resolution[1]
        bias = self.local_bias_table[self.relative_index.view(-1)].view(local, local, -1)
        bias = bias.permute(2, 0, 1)
        if not self.global_tokens:
            return bias
        heads, glob = self.num_heads, self.global_tokens
        top = torch.cat([self.g2g_bias, self.g2l_bias[0, :, :, None].expand(heads, glob, local)],
                        dim=-1)
        rest = torch.cat([self.g2l_bias[1, :, None, :].expand(heads, local, glob), bias], dim=-1)
        return torch.cat([top, rest], dim=1)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        batch, tokens, dim = x.shape
        if tuple(hw) != self.resolution:
            raise ValueError(f"built for a {self.resolution} map, got {tuple(hw)}; "
                             "build the model with this img_size")
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2],
                                             attn_mask=self.bias().to(x.dtype)[None])
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


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


class Block(nn.Module):
    """Pre-norm attention and pre-norm MLP (ratio 4), each with a residual."""

    def __init__(self, dim: int, attn: nn.Module, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = attn
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, 4 * dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), hw))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class Stage(nn.Module):
    """Patch embedding (conv + LayerNorm), fresh global tokens, then the blocks."""

    def __init__(self, in_chans: int, spec: StageSpec, resolution: tuple[int, int],
                 make_sparse: SparseFactory, drop_paths: Sequence[float], qkv_bias: bool):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, spec.dim, spec.patch, stride=spec.patch)
        self.norm = nn.LayerNorm(spec.dim, eps=1e-6)
        self.global_tokens = spec.global_tokens
        if spec.global_tokens:
            self.cls_token = nn.Parameter(torch.zeros(1, spec.global_tokens, spec.dim))

        def attention() -> nn.Module:
            if spec.sparse:
                return make_sparse(spec, resolution)
            return FullAttention(spec.dim, spec.heads, resolution, spec.global_tokens, qkv_bias)

        self.blocks = nn.ModuleList(Block(spec.dim, attention(), rate) for rate in drop_paths)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        x = self.proj(x)
        hw = (x.shape[2], x.shape[3])
        x = self.norm(x.flatten(2).transpose(1, 2))
        if self.global_tokens:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        for block in self.blocks:
            x = block(x, hw)
        return x, hw


class MsViT(nn.Module):
    """The multi-scale skeleton; ``make_sparse`` builds the attention of ``s1`` stages."""

    def __init__(self, arch: str | Sequence[StageSpec], make_sparse: SparseFactory,
                 img_size: int | Sequence[int] = 224, in_chans: int = 3,
                 num_classes: int = 1000, qkv_bias: bool = True, drop_path_rate: float = 0.0):
        super().__init__()
        specs = parse_arch(arch) if isinstance(arch, str) else list(arch)
        self.num_classes = num_classes
        height, width = to_2tuple(img_size)
        total = sum(spec.depth for spec in specs)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        self.stages = nn.ModuleList()
        cursor = 0
        for spec in specs:
            height, width = height // spec.patch, width // spec.patch
            self.stages.append(Stage(in_chans, spec, (height, width), make_sparse,
                                     rates[cursor:cursor + spec.depth], qkv_bias))
            in_chans, cursor = spec.dim, cursor + spec.depth
        self.num_features = specs[-1].dim
        self.norm = nn.LayerNorm(self.num_features, eps=1e-6)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)
        for name, param in self.named_parameters():
            if "bias_table" in name or name.endswith(("g2l_bias", "g2g_bias", "cls_token")):
                trunc_normal_(param, std=0.02)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Every stage; returns the normed tokens of the last one ``(B, G + L, C)``."""
        x, hw = self.stages[0](x)
        for previous, stage in zip(self.stages, self.stages[1:]):
            x = x[:, previous.global_tokens:]  # back to a map, without the global tokens
            x, hw = stage(x.transpose(1, 2).reshape(x.shape[0], -1, *hw))
        return self.norm(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x[:, 0] if self.stages[-1].global_tokens else x.mean(dim=1)
        return self.head(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


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
