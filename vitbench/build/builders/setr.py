"""SETR-PUP (ViT-Large/16 encoder, progressive-upsampling decoder) for semantic segmentation.

Zheng et al., "Rethinking Semantic Segmentation from a Sequence-to-Sequence Perspective with
Transformers", CVPR 2021 (arXiv:2012.15840), the "SETR (ViT-Large)" rows of the SegFormer
talk's Table 2 (seed ``002_7d261001ebaa70c0.txt``). Random init, written from the authors'
configuration (fudan-zvg/SETR ``configs/SETR/SETR_PUP_512x512_160k_ade20k_bs_16.py`` on
``configs/_base_/models/setr_naive_pup.py``; heads in ``mmseg/models/decode_heads/
vit_up_head.py``):

- **encoder**: ViT-L/16 (timm ``VisionTransformer``: 1024 wide, 24 blocks, 16 heads, MLP 4,
  qkv bias, LayerNorm eps 1e-6), a class token and learned position embeddings for the built
  input size, **no final norm**;
- **decoder (PUP)**: LayerNorm over the last block's patch tokens, reshaped to ``H/16×W/16``;
  four 3×3 convs to 256 channels (with bias) + BatchNorm + ReLU, the first three each followed
  by a 2× bilinear upsampling; a 1×1 conv to the classes and a last 2× upsampling;
- **auxiliary heads** on blocks 10, 15, 20 and 24 (LayerNorm, 3×3 conv to 256 + BN + ReLU,
  1×1 conv to the classes): training-only, so held as submodules that ``forward`` skips —
  their parameters count, their MACs do not;
- every head also holds mmseg ``BaseDecodeHead``'s ``conv_seg`` (1×1, 512 channels → classes),
  which SETR's heads create but never call; mmcv counts it, so it is kept, unused.

Which decoder: the ADE20K row prints only Params, 318.3 M. This PUP model at 512×512 with
150 classes holds 318,307,292 parameters (self-measured), the print exactly; SETR-MLA from the
same repository comes to ≈310 M by hand, and mmsegmentation's later port (``setr_pup.py``:
512-channel decoder convs, two-conv auxiliary heads) to ≈344.7 M, so neither is the printed
model. At 512×512 it runs 417.65 GMACs (self-measured; not printed). The Cityscapes row (``num_classes=19``, built for 1024×2048) prints only GPU FPS and
mIoU (82.2, SETR-PUP's): nothing static compares there. SETR tests Cityscapes with 768×768
sliding windows; vitbench runs one whole-image pass, whose position embeddings are built for
the 64×128 token grid.

``forward(images)`` returns class scores ``(B, K, H, W)``; H and W must equal the built size
(learned position embeddings) and be multiples of 16.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from vitbench.build.builders import register

__all__ = ["SETRPUP", "setr_pup_vit_large"]


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    height, width = size
    return (int(height), int(width))


def _upsample2x(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class UpHead(nn.Module):
    """SETR's ``VisionTransformerUpHead``: LayerNorm, 3×3 convs to 256 with 2× upsamplings."""

    def __init__(self, embed_dim: int, num_classes: int, *, num_3x3: int,
                 channels: int = 256, unused_seg_channels: int = 512):
        super().__init__()
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.convs = nn.ModuleList(_conv_bn_relu(embed_dim if i == 0 else channels, channels)
                                   for i in range(num_3x3))
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        # mmseg BaseDecodeHead's classifier: created by SETR's heads, never called; counted.
        self.conv_seg = nn.Conv2d(unused_seg_channels, num_classes, 1)

    def forward(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        x = self.norm(tokens).transpose(1, 2).reshape(tokens.shape[0], -1, *grid)
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i < len(self.convs) - 1:
                x = _upsample2x(x)
        return _upsample2x(self.classifier(x))


class SETRPUP(nn.Module):
    """ViT-L/16 + progressive upsampling (PUP) decoder; four auxiliary heads held, not run."""

    def __init__(self, num_classes: int = 150, img_size: int | Sequence[int] = 512, *,
                 patch_size: int = 16, embed_dim: int = 1024, depth: int = 24,
                 num_heads: int = 16, aux_blocks: Sequence[int] = (9, 14, 19, 23)):
        super().__init__()
        height, width = _pair(img_size)
        if height % patch_size or width % patch_size:
            raise ValueError(f"img_size {height}×{width} is not a multiple of patch {patch_size}")
        self.encoder = VisionTransformer(
            img_size=(height, width), patch_size=patch_size, embed_dim=embed_dim, depth=depth,
            num_heads=num_heads, mlp_ratio=4.0, qkv_bias=True, num_classes=0, final_norm=False)
        self.patch_size = patch_size
        self.decode_head = UpHead(embed_dim, num_classes, num_3x3=4)
        self.aux_blocks = tuple(aux_blocks)
        # Training-only heads on intermediate blocks: counted in params, not run.
        self.auxiliary_head = nn.ModuleList(UpHead(embed_dim, num_classes, num_3x3=1)
                                            for _ in self.aux_blocks)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.encoder.forward_features(images)[:, self.encoder.num_prefix_tokens:]
        grid = (images.shape[-2] // self.patch_size, images.shape[-1] // self.patch_size)
        return self.decode_head(tokens, grid)


@register
def setr_pup_vit_large(num_classes: int = 150, img_size: int | Sequence[int] = 512,
                       **kwargs) -> SETRPUP:
    """SETR-PUP on ViT-L/16, 150 ADE20K classes at 512×512 by default (318.3 M parameters)."""
    return SETRPUP(num_classes, img_size, **kwargs)
