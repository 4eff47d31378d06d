"""BiFormer (bi-level routing attention) for ImageNet classification, random init.

Zhu et al., "BiFormer: Vision Transformer with Bi-Level Routing Attention", CVPR 2023
(arXiv:2303.08125). Not in timm; written here from the configuration of the authors'
``rayleizhu/BiFormer`` (``models/biformer.py``: ``biformer_tiny``, ``biformer_small``; the
attention as in ``ops/bra_legacy.py`` and ``models/_common.py``), with timm's layers.

Configuration (BiFormer-T; -S has depths 4-4-18-4):

- stem: ``3×3`` stride-2 conv to C/2, BatchNorm, GELU, ``3×3`` stride-2 conv to C,
  BatchNorm; between stages a ``3×3`` stride-2 conv + BatchNorm; widths 64-128-256-512,
  depths 2-2-8-2; a BatchNorm after the last stage, mean pooling, linear head;
- block: a ``3×3`` depthwise conv added to the input (positional embedding), then pre-norm
  (LayerNorm eps 1e-6) attention and MLP (ratio 3, GELU), each with a residual;
- stages 1–3, *bi-level routing attention* (BRA) over a 7×7 grid of regions (8×8, 4×4 and
  2×2 tokens each at 224²): one ``qkv`` linear; region-level queries and keys are the means
  of each region's queries and keys; their product (a 49×49 region affinity) picks the
  top-k regions (k = 1, 4, 16) for each region (``topk``, not differentiated); each region's
  queries then attend to the tokens of its k routed regions, gathered (``gather``), in heads
  of 32 channels, with the logits scaled by C^-1/2 (the source's scale: the whole qk width,
  not the head's); a ``5×5`` depthwise conv of the values (LePE) is added before the output
  linear;
- stage 4: global attention over all tokens (8 heads, qkv without bias) plus a ``5×5``
  depthwise conv of the attention's input, then the output linear.

Inputs whose stage maps are not multiples of 7 are zero-padded at the bottom and right and
cropped back, as the source's ``auto_pad`` (its segmentation setting) does; 224² needs none.

At 224² with 1000 classes (self-measured; matmul-only MACs, both counters agree). The
parameter counts and, given the same weights, the outputs are those of the source's own
``BiFormer``:

==========  ==========  ======  =============  ==============
model       params (M)  GMACs   README         seed print
==========  ==========  ======  =============  ==============
BiFormer-T  13.14       2.216   13.1 M, 2.2 G  13.1 M, 2.2 G
BiFormer-S  25.54       4.464   25.5 M, 4.5 G  --
==========  ==========  ======  =============  ==============

``topk`` and ``gather`` only select and move data (no MACs); the region-to-region routing
product is a plain matmul, counted by both counters (0.006 GMACs in BiFormer-T), and the
token attention over the gathered regions runs through
:func:`torch.nn.functional.scaled_dot_product_attention`.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath, trunc_normal_
from torch import nn

from vitbench.build.builders import register

__all__ = ["BiFormer", "BiLevelRoutingAttention", "GlobalAttentionLePE", "biformer_tiny",
           "biformer_small"]


def _linear_rates(last: float, count: int) -> list[float]:
    """``count`` stochastic-depth rates from 0 to ``last`` (plain floats: builds on ``meta``)."""
    return [last * i / (count - 1) if count > 1 else 0.0 for i in range(count)]


def _depthwise(dim: int, kernel_size: int) -> nn.Conv2d:
    return nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)


class BiLevelRoutingAttention(nn.Module):
    """Bi-level routing attention on a channels-last map ``(B, H, W, C)``.

    The map is cut into ``regions × regions`` regions; every region routes to the ``topk``
    regions whose mean key best matches its mean query, and its tokens attend to the tokens
    of those regions only.
    """

    def __init__(self, dim: int, num_heads: int, topk: int, regions: int = 7,
                 side_kernel: int = 5):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.topk = topk
        self.regions = regions
        self.scale = dim ** -0.5  # the source scales by the whole qk width
        self.qkv = nn.Linear(dim, dim * 3)
        self.lepe = _depthwise(dim, side_kernel)
        self.wo = nn.Linear(dim, dim)

    def route(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Indices ``(B, R², topk)`` of the regions each region attends to.

        ``q``, ``k``: ``(B, R², tokens, C)``. Routing is not differentiated (as in the source).
        """
        q_region, k_region = q.detach().mean(2), k.detach().mean(2)
        affinity = (q_region * self.scale) @ k_region.transpose(-2, -1)  # (B, R², R²)
        return affinity.topk(self.topk, dim=-1).indices

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, dim = x.shape
        regions = self.regions
        pad_h, pad_w = -height % regions, -width % regions
        if pad_h or pad_w:
            x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
        rows, cols = (height + pad_h) // regions, (width + pad_w) // regions
        tokens = rows * cols

        q, k, v = self.qkv(x).chunk(3, dim=-1)
        lepe = self.lepe(v.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)

        def to_regions(t: torch.Tensor) -> torch.Tensor:
            """``(B, H, W, C)`` → ``(B, R², rows·cols, C)``."""
            t = t.reshape(batch, regions, rows, regions, cols, dim).transpose(2, 3)
            return t.reshape(batch, regions * regions, tokens, dim)

        q, k, v = to_regions(q), to_regions(k), to_regions(v)
        index = self.route(q, k)  # (B, R², topk)
        index = index[..., None, None].expand(-1, -1, -1, tokens, dim)

        def gather(t: torch.Tensor) -> torch.Tensor:
            """The tokens of each region's routed regions: ``(B, R², topk·tokens, C)``."""
            every = t[:, None].expand(-1, regions * regions, -1, -1, -1)
            return torch.gather(every, 2, index).flatten(2, 3)

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(*t.shape[:3], self.num_heads, -1).transpose(2, 3)

        out = F.scaled_dot_product_attention(heads(q), heads(gather(k)), heads(gather(v)),
                                             scale=self.scale)
        out = out.transpose(2, 3).reshape(batch, regions, regions, rows, cols, dim)
        out = out.transpose(2, 3).reshape(batch, regions * rows, regions * cols, dim)
        out = self.wo(out + lepe)
        return out[:, :height, :width]


class GlobalAttentionLePE(nn.Module):
    """Global multi-head attention on ``(B, H, W, C)`` plus a depthwise conv of its input
    (the source's ``AttentionLePE``: 8 heads, qkv without bias)."""

    def __init__(self, dim: int, num_heads: int = 8, side_kernel: int = 5):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.lepe = _depthwise(dim, side_kernel)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, dim = x.shape
        lepe = self.lepe(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        qkv = self.qkv(x).reshape(batch, height * width, 3, self.num_heads, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2)
        return self.proj(out.reshape(batch, height, width, dim) + lepe)


class BiFormerBlock(nn.Module):
    """Depthwise positional conv, then pre-norm attention and MLP (NCHW in and out)."""

    def __init__(self, dim: int, attn: nn.Module, mlp_ratio: float = 3.0,
                 drop_path: float = 0.0):
        super().__init__()
        self.pos_embed = _depthwise(dim, 3)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = attn
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        # The source's slot 1 holds an optional depthwise conv (off in every variant); an
        # Identity keeps the released checkpoints' key names (mlp.0, mlp.3).
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.Identity(), nn.GELU(),
                                 nn.Linear(hidden, dim))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x + self.pos_embed(x)).permute(0, 2, 3, 1)
        x = x + self.drop_path(self.attn(self.norm1(x)))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x.permute(0, 3, 1, 2)


class BiFormer(nn.Module):
    """BiFormer classifier: conv stem, three BRA stages and one global stage, mean pool.

    ``topks[i] > 0`` makes stage ``i`` bi-level routing attention with that many regions;
    ``topks[i] <= 0`` (the source's −2) makes it global attention with LePE. ``img_size`` is
    accepted for the zoo's sake: the model runs at any size (padded to whole regions).
    """

    def __init__(
        self,
        img_size: int | Sequence[int] = 224,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dims: Sequence[int] = (64, 128, 256, 512),
        depths: Sequence[int] = (2, 2, 8, 2),
        topks: Sequence[int] = (1, 4, 16, -2),
        head_dim: int = 32,
        regions: int = 7,
        mlp_ratio: float = 3.0,
        drop_path_rate: float = 0.0,
    ):
        super().__init__()
        del img_size  # any input size works
        self.num_classes = num_classes
        first = embed_dims[0]
        self.downsample_layers = nn.ModuleList([nn.Sequential(
            nn.Conv2d(in_chans, first // 2, 3, stride=2, padding=1), nn.BatchNorm2d(first // 2),
            nn.GELU(),
            nn.Conv2d(first // 2, first, 3, stride=2, padding=1), nn.BatchNorm2d(first))])
        for in_dim, out_dim in zip(embed_dims[:-1], embed_dims[1:]):
            self.downsample_layers.append(nn.Sequential(
                nn.Conv2d(in_dim, out_dim, 3, stride=2, padding=1), nn.BatchNorm2d(out_dim)))
        rates = _linear_rates(drop_path_rate, sum(depths))
        self.stages = nn.ModuleList()
        cursor = 0
        for dim, depth, topk in zip(embed_dims, depths, topks):
            def attention() -> nn.Module:
                if topk > 0:
                    return BiLevelRoutingAttention(dim, dim // head_dim, topk, regions)
                return GlobalAttentionLePE(dim)
            self.stages.append(nn.Sequential(*(
                BiFormerBlock(dim, attention(), mlp_ratio, rates[cursor + j])
                for j in range(depth))))
            cursor += depth
        self.num_features = embed_dims[-1]
        self.norm = nn.BatchNorm2d(embed_dims[-1])
        self.head = nn.Linear(embed_dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the normalised last-stage map ``(B, C, H, W)``."""
        for downsample, stage in zip(self.downsample_layers, self.stages):
            x = stage(downsample(x))
        return self.norm(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register
def biformer_tiny(**kwargs) -> nn.Module:
    """BiFormer-T (depths 2-2-8-2, top-k 1-4-16): 13.14 M, 2.216 GMACs at 224².

    README: 13.1 M, 2.2 G.
    """
    return BiFormer(**{"depths": (2, 2, 8, 2), **kwargs})


@register
def biformer_small(**kwargs) -> nn.Module:
    """BiFormer-S (depths 4-4-18-4, top-k 1-4-16): 25.54 M, 4.464 GMACs at 224².

    README: 25.5 M, 4.5 G.
    """
    return BiFormer(**{"depths": (4, 4, 18, 4), **kwargs})
