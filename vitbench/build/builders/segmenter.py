"""Segmenter (ViT encoder + linear or mask-transformer decoder) for semantic segmentation.

Strudel et al., "Segmenter: Transformer for Semantic Segmentation", ICCV 2021
(arXiv:2105.05633), as presented in seed ``004_b2f775d5b64d4db4.txt`` (Tables 1, 3, 4, 6).
Written from the paper's description, random init:

- **encoder**: a plain ViT (timm's ``VisionTransformer``) over ``P×P`` patches with a class
  token, learned position embeddings for the built input size, pre-norm blocks, final
  LayerNorm and no classifier. Variants (Table 1): Ti 192-wide/12 layers/3 heads, S 384/12/6,
  B 768/12/12, L 1024/24/16; MLP ratio 4. ``Seg-B†`` uses DeiT-B, whose extra distillation
  token gets a position embedding as well.
- **linear decoder**: a point-wise linear layer maps each patch token to class scores; the
  ``H/P × W/P`` score map is bilinearly upsampled to ``H × W``.
- **mask-transformer decoder** ("-Mask"): patch tokens are projected to ``d_model`` (the
  encoder width), ``K`` learned class embeddings are appended, and ``M = 2`` transformer
  layers (``d_model/64`` heads, MLP ratio 4) process them jointly; after a LayerNorm, patches
  and class embeddings each go through a ``d_model×d_model`` projection, are L2-normalised,
  and their scalar products give ``K`` masks, LayerNorm-ed over classes, then upsampled.

``forward(images)`` returns per-pixel class scores ``(B, K, H, W)``; H and W must be
multiples of the patch size. ADE20K: 150 classes at 512×512 (Table 3's setting).
Printed parameter counts (Table 1: 6 / 22 / 86 / 307 M) are the backbones'.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vitbench.build.builders import register

__all__ = ["Segmenter", "VARIANTS"]

#: Table 1 of the paper: (width, depth, heads) per backbone.
VARIANTS: dict[str, tuple[int, int, int]] = {
    "ti": (192, 12, 3),
    "s": (384, 12, 6),
    "b": (768, 12, 12),
    "l": (1024, 24, 16),
}


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    height, width = size
    return (int(height), int(width))


class LinearDecoder(nn.Module):
    """Patch tokens → class scores by one linear layer."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.head = nn.Linear(dim, num_classes)

    def forward(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        scores = self.head(tokens)  # B, N, K
        return scores.transpose(1, 2).reshape(scores.shape[0], -1, *grid)


class MaskTransformerDecoder(nn.Module):
    """Class embeddings and patch tokens through ``layers`` blocks; masks by scalar products."""

    def __init__(self, encoder_dim: int, num_classes: int, *, dim: int | None = None,
                 layers: int = 2, mlp_ratio: float = 4.0):
        super().__init__()
        from timm.models.vision_transformer import Block

        dim = dim or encoder_dim
        self.num_classes = num_classes
        self.proj_dec = nn.Linear(encoder_dim, dim)
        self.cls_emb = nn.Parameter(torch.randn(1, num_classes, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, max(1, dim // 64), mlp_ratio=mlp_ratio,
                                          qkv_bias=True) for _ in range(layers))
        self.decoder_norm = nn.LayerNorm(dim)
        self.proj_patch = nn.Parameter(torch.randn(dim, dim) * dim ** -0.5)
        self.proj_classes = nn.Parameter(torch.randn(dim, dim) * dim ** -0.5)
        self.mask_norm = nn.LayerNorm(num_classes)

    def forward(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        x = self.proj_dec(tokens)
        x = torch.cat((x, self.cls_emb.expand(x.shape[0], -1, -1)), dim=1)
        for block in self.blocks:
            x = block(x)
        x = self.decoder_norm(x)
        patches, classes = x[:, :-self.num_classes], x[:, -self.num_classes:]
        patches = F.normalize(patches @ self.proj_patch, dim=-1)
        classes = F.normalize(classes @ self.proj_classes, dim=-1)
        masks = self.mask_norm(patches @ classes.transpose(1, 2))  # B, N, K
        return masks.transpose(1, 2).reshape(masks.shape[0], -1, *grid)


class Segmenter(nn.Module):
    """ViT encoder + decoder; per-pixel class scores at the input resolution."""

    def __init__(self, variant: str = "s", patch_size: int = 16, *, num_classes: int = 150,
                 decoder: str = "linear", img_size: int | Sequence[int] = 512,
                 distilled: bool = False):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        if decoder not in ("linear", "mask"):
            raise ValueError(f"decoder must be 'linear' or 'mask', got {decoder!r}")
        height, width = _pair(img_size)
        if height % patch_size or width % patch_size:
            raise ValueError(f"img_size {height}×{width} is not a multiple of patch {patch_size}")
        dim, depth, heads = VARIANTS[variant]
        common = dict(img_size=(height, width), patch_size=patch_size, embed_dim=dim, depth=depth,
                      num_heads=heads, mlp_ratio=4.0, qkv_bias=True, num_classes=0)
        if distilled:
            from timm.models.deit import VisionTransformerDistilled

            self.encoder = VisionTransformerDistilled(**common)
        else:
            from timm.models.vision_transformer import VisionTransformer

            self.encoder = VisionTransformer(**common)
        self.patch_size = patch_size
        self.decoder = (LinearDecoder(dim, num_classes) if decoder == "linear"
                        else MaskTransformerDecoder(dim, num_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[-2:]
        tokens = self.encoder.forward_features(images)[:, self.encoder.num_prefix_tokens:]
        grid = (height // self.patch_size, width // self.patch_size)
        masks = self.decoder(tokens, grid)
        return F.interpolate(masks, size=(height, width), mode="bilinear", align_corners=False)


def _builder(name: str, variant: str, patch_size: int, decoder: str, distilled: bool = False):
    def build(num_classes: int = 150, img_size: int | Sequence[int] = 512, **kwargs) -> Segmenter:
        return Segmenter(variant, patch_size, num_classes=num_classes, decoder=decoder,
                         img_size=img_size, distilled=distilled, **kwargs)

    label = f"Seg-{variant.upper() if variant != 'ti' else 'Ti'}{'†' if distilled else ''}"
    build.__name__ = build.__qualname__ = name
    build.__doc__ = (f"{label}{'-Mask' if decoder == 'mask' else ''}/{patch_size}: "
                     f"ViT-{variant.upper()} {'(DeiT) ' if distilled else ''}encoder, "
                     f"{decoder} decoder; 150 ADE20K classes at 512×512 by default.")
    return register(build)


# Table 3 (linear decoder) and Table 4/6 (mask decoder) rows.
for _variant, _patch in (("ti", 16), ("s", 16), ("s", 32), ("b", 8), ("b", 16), ("b", 32),
                         ("l", 16)):
    for _decoder in ("linear", "mask"):
        _suffix = "_mask" if _decoder == "mask" else ""
        _builder(f"segmenter_{_variant}{_suffix}_{_patch}", _variant, _patch, _decoder)
for _decoder in ("linear", "mask"):
    _builder(f"segmenter_b_deit{'_mask' if _decoder == 'mask' else ''}_16", "b", 16, _decoder,
             distilled=True)
