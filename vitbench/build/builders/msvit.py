"""The multi-scale ViT skeleton of ViL and ViL-LS (``MsViT``), random init.

Zhang et al., "Multi-Scale Vision Longformer: A New Vision Transformer for High-Resolution
Image Encoding", ICCV 2021 (arXiv:2103.15358) define it; ``microsoft/vision-longformer``
``src/models/msvit.py`` and NVIDIA/transformer-ls's copy ``imagenet/models/msvit.py`` build
it from an ARCH string. Written here from those configuration facts; the sparse attention
of ``s1`` stages is a plug-in (:mod:`vitbench.build.builders.vil`,
:mod:`vitbench.build.builders.vil_ls`).

ARCH strings (``l1,h3,d96,n1,s1,g1,p4,f7,a0_l2,...``) give per stage heads ``h``, width
``d``, blocks ``n``, sparse attention ``s`` (else full), global tokens ``g``, patch size
``p``, window ``f``, absolute position embedding ``a`` and low rank ``r``:

- each stage: a ``p×p`` stride-``p`` conv and LayerNorm (eps 1e-6) re-embed the previous
  stage's map (its global tokens are dropped); ``g`` fresh learned global tokens join;
- blocks: pre-norm attention and pre-norm GELU MLP (ratio 4), each with a residual; qkv bias;
- no absolute position embedding (``a0``): relative position biases instead; a final
  LayerNorm, the first global token (or the token mean when the last stage has none), linear
  head;
- full-attention stages (``s0``) carry a Swin-style bias table sized to the whole stage map
  plus global-to-local / local-to-global / global-to-global biases, so a model is built for
  one input size (``img_size``), as the sources assert.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, to_2tuple, trunc_normal_
from timm.layers.pos_embed_rel import gen_relative_position_index
from torch import nn

__all__ = [
    "SparseFactory",
    "StageSpec",
    "parse_arch",
    "neighbourhoods",
    "relative_index",
    "FullAttention",
    "MsViT",
]

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
