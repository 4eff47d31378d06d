"""EdgeViT (local-global-local hierarchical ViT) for ImageNet classification, random init.

Pan et al., "EdgeViTs: Competing Light-weight CNNs on Mobile Devices with Vision
Transformers", ECCV 2022 (arXiv:2205.03436). Not in timm; written from the paper and the
configuration of the authors' ``saic-fi/edgevit`` ``src/edgevit.py``:

- four stages behind non-overlapping patch embeddings (a ``P×P`` stride-``P`` conv, then
  LayerNorm) with patch sizes 4, 2, 2, 2; a final BatchNorm, global average pooling and a
  linear head;
- XXS: depths 1-1-3-2, dims 36-72-144-288, head dim 36 (heads 1-2-4-8);
  XS: depths 1-1-3-1, dims 48-96-240-384, head dim 48 (heads 1-2-5-8);
  S: depths 1-2-5-3, dims as XS, head dim 48. All: MLP ratio 4, qkv bias, sparse-sampling
  rates ``r`` of 4, 2, 2, 1;
- each block is local-global-local (LGL): where ``r > 1`` a *local aggregation* (3×3
  depthwise positional conv; BatchNorm → 1×1 → 5×5 depthwise → 1×1; BatchNorm → conv MLP)
  precedes a *global sparse attention* block (3×3 depthwise positional conv; LayerNorm →
  attention among every ``r``-th token → depthwise transposed conv ``k = s = r`` that
  propagates the result back to every position → LayerNorm → projection; LayerNorm → MLP).
  With ``r = 1`` (last stage) the block is a plain transformer block with a positional conv.

The propagation ``ConvTranspose2d(C, C, r, stride=r, groups=C)`` does one MAC per output
element (C·H·W); both counters count exactly that (checked on stage-1 and stage-3 shapes).

EdgeViT trains and is counted at 224² (the source's ``main.py --input-size 224`` and
``check_model.py``). At 224² with 1000 classes: XXS 4.07 M, XS 6.77 M, S 13.11 M parameters
and 0.55 / 1.13 / 1.91 GMACs (paper: 4.1 / 6.7 / 11.1 M and 0.6 / 1.1 / 1.9 GFLOPs, counted
as multiply-adds; the figures the seed quotes); at 256² the GMACs are 0.73 / 1.48 / 2.51.
The source counts with fvcore's ``FlopCountAnalysis`` (``src/check_model.py``), norms
included: 0.56 / 1.14 / 1.92 GMACs at 224², so the suites count EdgeViT rows under
``flops_convention: fvcore``. The source's ``edgevit_s``
(depths 1-2-5-3) has 13.11 M parameters, not the paper's 11.1 M, while its GMACs match;
no other depth split gives both (1-2-5-2: 11.33 M, 1.82 G), so the builder keeps the
published configuration.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from timm.layers import ConvMlp, DropPath, Mlp, to_2tuple, trunc_normal_
from torch import nn

from vitbench.build.builders import register

__all__ = ["EdgeViT", "edgevit_xxs", "edgevit_xs", "edgevit_s"]


class PatchEmbed(nn.Module):
    """Non-overlapping ``P×P`` patches by a stride-``P`` conv, LayerNorm over channels."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class LocalAggregation(nn.Module):
    """The first "local" of LGL: depthwise-conv token mixing and a conv MLP, each residual."""

    def __init__(self, dim: int, mlp_ratio: float, drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.BatchNorm2d(dim)
        self.conv1 = nn.Conv2d(dim, dim, 1)
        self.attn = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.conv2 = nn.Conv2d(dim, dim, 1)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU, drop=drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embed(x)
        x = x + self.drop_path(self.conv2(self.attn(self.conv1(self.norm1(x)))))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class GlobalSparseAttention(nn.Module):
    """Attention among every ``r``-th token, propagated back by a depthwise transposed conv.

    Sampling keeps the tokens at positions ``(r·i, r·j)`` (the source's ``AvgPool2d`` with
    kernel 1 and stride ``r``), so attention costs ``(HW/r²)²`` instead of ``(HW)²``.
    """

    def __init__(self, dim: int, num_heads: int, sr_ratio: int, qkv_bias: bool = True,
                 attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.sr_ratio = sr_ratio
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        if sr_ratio > 1:
            self.local_prop = nn.ConvTranspose2d(dim, dim, sr_ratio, stride=sr_ratio, groups=dim)
            self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` is ``(B, C, H, W)``; returns tokens ``(B, H·W, C)``."""
        batch, dim, height, width = x.shape
        r = self.sr_ratio
        sampled = x[:, :, ::r, ::r] if r > 1 else x
        grid = sampled.shape[-2:]
        tokens = sampled.flatten(2).transpose(1, 2)
        qkv = self.qkv(tokens).reshape(batch, -1, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        out = out.transpose(1, 2).reshape(batch, -1, dim)
        if r > 1:
            out = out.transpose(1, 2).reshape(batch, dim, *grid)
            # k = s = r tiles each sampled token back over its r×r cell; crop when H or W
            # is not a multiple of r.
            out = self.local_prop(out)[:, :, :height, :width]
            out = self.norm(out.flatten(2).transpose(1, 2))
        return self.proj_drop(self.proj(out))


class GlobalBlock(nn.Module):
    """Positional conv, then pre-norm sparse attention and MLP on the token sequence."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, sr_ratio: int,
                 qkv_bias: bool = True, drop: float = 0.0, attn_drop: float = 0.0,
                 drop_path: float = 0.0):
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = GlobalSparseAttention(dim, num_heads, sr_ratio, qkv_bias, attn_drop, drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embed(x)
        batch, dim, height, width = x.shape
        normed = self.norm1(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        tokens = x.flatten(2).transpose(1, 2) + self.drop_path(self.attn(normed))
        tokens = tokens + self.drop_path(self.mlp(self.norm2(tokens)))
        return tokens.transpose(1, 2).reshape(batch, dim, height, width)


class LGLBlock(nn.Module):
    """Local aggregation (only where ``sr_ratio > 1``) followed by the global block."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, sr_ratio: int,
                 qkv_bias: bool = True, drop: float = 0.0, attn_drop: float = 0.0,
                 drop_path: float = 0.0):
        super().__init__()
        self.local_agg = (LocalAggregation(dim, mlp_ratio, drop, drop_path)
                          if sr_ratio > 1 else nn.Identity())
        self.global_block = GlobalBlock(dim, num_heads, mlp_ratio, sr_ratio, qkv_bias, drop,
                                        attn_drop, drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.global_block(self.local_agg(x))


class EdgeViT(nn.Module):
    """EdgeViT classifier: four LGL stages at strides 4/8/16/32, BatchNorm, mean pool, head.

    There is no position embedding, so any input whose sides are multiples of 32 runs;
    ``img_size`` is only recorded as the size the model is meant for.
    """

    def __init__(
        self,
        img_size: int | Sequence[int] = 224,
        in_chans: int = 3,
        num_classes: int = 1000,
        depths: Sequence[int] = (1, 2, 5, 3),
        embed_dims: Sequence[int] = (48, 96, 240, 384),
        head_dim: int = 48,
        mlp_ratio: float = 4.0,
        sr_ratios: Sequence[int] = (4, 2, 2, 1),
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ):
        super().__init__()
        self.img_size = to_2tuple(img_size)
        self.num_classes = num_classes
        self.num_features = embed_dims[-1]
        drop_path_rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        self.patch_embeds = nn.ModuleList()
        self.stages = nn.ModuleList()
        in_dim, cursor = in_chans, 0
        for i, (dim, depth, sr) in enumerate(zip(embed_dims, depths, sr_ratios)):
            self.patch_embeds.append(PatchEmbed(4 if i == 0 else 2, in_dim, dim))
            self.stages.append(nn.Sequential(*(
                LGLBlock(dim, dim // head_dim, mlp_ratio, sr, qkv_bias, drop_rate,
                         attn_drop_rate, drop_path_rates[cursor + j])
                for j in range(depth))))
            in_dim, cursor = dim, cursor + depth
        self.pos_drop = nn.Dropout(drop_rate)
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
        for i, (embed, stage) in enumerate(zip(self.patch_embeds, self.stages)):
            x = embed(x)
            if i == 0:
                x = self.pos_drop(x)
            x = stage(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _build(kwargs: dict, **config) -> EdgeViT:
    return EdgeViT(**{**config, **kwargs})


@register
def edgevit_xxs(**kwargs) -> nn.Module:
    """EdgeViT-XXS: 4.07 M params, 0.55 GMACs at 224² (paper: 4.1 M, 0.6 G)."""
    return _build(kwargs, depths=(1, 1, 3, 2), embed_dims=(36, 72, 144, 288), head_dim=36)


@register
def edgevit_xs(**kwargs) -> nn.Module:
    """EdgeViT-XS: 6.77 M params, 1.13 GMACs at 224² (paper: 6.7 M, 1.1 G)."""
    return _build(kwargs, depths=(1, 1, 3, 1), embed_dims=(48, 96, 240, 384), head_dim=48)


@register
def edgevit_s(**kwargs) -> nn.Module:
    """EdgeViT-S: 13.11 M params, 1.91 GMACs at 224² (paper: 11.1 M, 1.9 G)."""
    return _build(kwargs, depths=(1, 2, 5, 3), embed_dims=(48, 96, 240, 384), head_dim=48)
