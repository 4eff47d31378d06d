"""MobileViTv3 (the MobileViTv2-based variant) for ImageNet classification, random init.

Wadekar and Chaurasia, "MobileViTv3: Mobile-Friendly Vision Transformer with Simple and
Effective Fusion of Local, Global and Input Features" (arXiv:2209.15159). Not in timm; the
authors' ``micronDLA/MobileViTv3`` ``MobileViTv3-v2`` (ml-cvnets based) defines it as:

- the MobileViTv2 macro architecture unchanged (``config/mobilevit_v3.py``: stem 32·w,
  MobileNetV2 blocks with expansion 2, three MobileViT stages of 128/192/256·w channels
  with attention width half the channels, 2/4/3 linear-attention layers, FFN ×2, 2×2
  patches). timm's ``mobilevitv2_*`` configuration is exactly that, so it is reused;
- a changed MobileViT block (``cvnets/modules/mobilevit_block.py`` ``MobileViTBlockv3``):
  the fusion 1×1 conv + BatchNorm (``conv_proj``) takes the concatenation of the global
  (attention) output and the local (depthwise 3×3 + 1×1) features, ``2d → C`` instead of
  ``d → C``, and the block input is added back as a residual.

:class:`MobileVitV3Block` subclasses timm's ``MobileVitV2Block`` for that change.

At 256² with 1000 classes MobileViTv3-0.5 has 1.430 M parameters (MobileViTv2-0.5's 1.371 M
plus the three wider fusion convs) and 0.480 GMACs (README: 1.4 M, 481 M FLOPs, counted by
ml-cvnets as multiply-adds).
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial
from typing import Optional

import torch
import torch.nn.functional as F
from timm.models.byobnet import ByoBlockCfg, ByobNet, LayerFn
from timm.models.mobilevit import MobileVitV2Block, model_cfgs
from torch import nn

from vitbench.build.builders import register

__all__ = ["MobileVitV3Block", "mobilevitv3_050"]


class MobileVitV3Block(MobileVitV2Block):
    """MobileViTv2 block with v3's fusion: ``x + conv_proj([global, local])``."""

    def __init__(self, in_chs: int, out_chs: Optional[int] = None, layers: LayerFn = None,
                 **kwargs):
        layers = layers or LayerFn()
        super().__init__(in_chs, out_chs, layers=layers, **kwargs)
        out_chs = out_chs or in_chs
        if out_chs != in_chs:
            raise ValueError("MobileViTv3's input residual needs out_chs == in_chs")
        factory = {key: kwargs[key] for key in ("device", "dtype") if key in kwargs}
        transformer_dim = self.conv_1x1.out_channels
        self.conv_proj = layers.conv_norm_act(
            2 * transformer_dim, out_chs, kernel_size=1, stride=1, apply_act=False, **factory)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patch_h, patch_w = self.patch_size
        height, width = x.shape[-2:]
        new_h, new_w = math.ceil(height / patch_h) * patch_h, math.ceil(width / patch_w) * patch_w
        if (new_h, new_w) != (height, width):
            x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=True)
        local = self.conv_1x1(self.conv_kxk(x))

        # Unfold [B, C, H, W] -> [B, C, P, N] (P pixels per patch, N patches), run the
        # linear-attention layers over N for each of the P positions, fold back.
        batch, dim = local.shape[:2]
        grid_h, grid_w = new_h // patch_h, new_w // patch_w
        patches = local.reshape(batch, dim, grid_h, patch_h, grid_w, patch_w)
        patches = patches.permute(0, 1, 3, 5, 2, 4).reshape(batch, dim, patch_h * patch_w, -1)
        patches = self.norm(self.transformer(patches))
        folded = patches.reshape(batch, dim, patch_h, patch_w, grid_h, grid_w)
        folded = folded.permute(0, 1, 4, 2, 5, 3).reshape(batch, dim, new_h, new_w)

        return x + self.conv_proj(torch.cat((folded, local), dim=1))


def _with_v3_blocks(block):
    """Swap every MobileViTv2 block of a timm ``ByoModelCfg`` entry for the v3 block."""
    if isinstance(block, tuple):
        return tuple(_with_v3_blocks(item) for item in block)
    if isinstance(block, ByoBlockCfg) and block.type == "mobilevit2":
        return dataclasses.replace(block, type=partial(MobileVitV3Block))
    return block


def _build(v2_variant: str, kwargs: dict) -> ByobNet:
    v2_cfg = model_cfgs[v2_variant]
    cfg = dataclasses.replace(v2_cfg, blocks=_with_v3_blocks(v2_cfg.blocks))
    return ByobNet(cfg=cfg, **kwargs)


@register
def mobilevitv3_050(**kwargs) -> nn.Module:
    """MobileViTv3-0.5: 1.430 M params, 0.480 GMACs at 256² (README: 1.4 M, 481 M FLOPs)."""
    return _build("mobilevitv2_050", kwargs)
