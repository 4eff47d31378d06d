"""tiny-MOAT (mobile convolution + attention) for ImageNet classification, random init.

Yang et al., "MOAT: Alternating Mobile Convolution and Attention Brings Strong Vision
Models", ICLR 2023 (arXiv:2210.01820). The authors' code is TensorFlow only
(``google-research/deeplab2``); vitbench ports it from the configuration in
``model/pixel_encoder/moat.py`` (``tiny_moat{0,1,2}_config`` and the ``MOAT`` defaults) and
the block definitions in ``model/layers/moat_blocks.py`` and ``moat_attention.py``:

- stem: 3×3 stride-2 conv → BatchNorm → GELU → 3×3 conv, both convs with bias;
- four stages, every one opening with a stride-2 block: MBConv, MBConv, MOAT, MOAT, depths
  2-3-7-2; widths 32-64-128-256 (tiny-MOAT-0, stem 32), 40-80-160-320 (-1, stem 40),
  56-112-224-448 (-2, stem 56);
- MBConv (the CoAtNet block, which is timm's ``maxxvit.MbConvBlock``): pre-BatchNorm →
  1×1 expand ×4 → BN-GELU → 3×3 depthwise (stride here) → BN-GELU → squeeze-excite →
  1×1 project with bias; SE squeezes to a quarter of the *output* width with SiLU; the
  shortcut is a 2×2 average pool (the classification setting) and a 1×1 conv when the
  width changes. BatchNorm eps is Keras's 1e-3;
- MOAT block: the same MBConv without SE, then LayerNorm (eps 1e-5) → multi-head
  self-attention (head size 32, q/k/v/output projections with bias) → residual; no MLP.
  Attention is global: ``get_model`` sets ``window_size=None``, and at 224² the stage-3
  map (14×14) equals the default window anyway;
- 2-D relative position bias per head, a learned ``(2P-1)×(2P-1)`` table with P = 14 in
  stage 3 and 7 in stage 4, bilinearly resized to ``(2H-1)×(2W-1)`` on other maps (so the
  parameter count does not depend on the input); vitbench looks the table up by index,
  where TensorFlow multiplies by one-hot lookup tensors (no MACs either way: deeplab2
  builds that lookup once, outside the forward pass);
- head: global mean → LayerNorm (eps 1e-5) → linear.

TensorFlow's ``padding='same'`` pads a stride-2 3×3 conv on one side only; PyTorch's
symmetric padding gives the same output size and the same MACs.

At 1000 classes: tiny-MOAT-0/1/2 have 3.355 / 5.123 / 9.773 M parameters (paper and
deeplab2 README: 3.4 / 5.1 / 9.8 M) and 0.775 / 1.179 / 2.239 GMACs at 224² under
``matmul-only`` (0.792 / 1.200 / 2.269 with fvcore's norm terms; paper: 0.8 / 1.2 /
2.3 B). At 256², where the README's checkpoints were trained, tiny-MOAT-0 counts 1.041
GMACs (1.063 fvcore; README: 1.1 B). The printed values are 2-6 % above the matmul count
(tiny-MOAT-2's 2.3 is 2.7 % above it, 1.4 % above fvcore's); neither the paper nor the
README says how it counted.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from timm.models.maxxvit import MaxxVitConvCfg, MbConvBlock, Stem
from torch import nn

from vitbench.build.builders import register

__all__ = [
    "RelativePositionBias2d",
    "MoatAttention",
    "MoatBlock",
    "TinyMoat",
    "tiny_moat_0",
    "tiny_moat_1",
    "tiny_moat_2",
]

#: Keras BatchNormalization's default epsilon (deeplab2 uses SyncBatchNormalization as is).
KERAS_BN_EPS = 1e-3


def _conv_cfg(with_se: bool) -> MaxxVitConvCfg:
    """deeplab2's MBConv defaults in timm's terms: expansion 4 of the output width, BN-GELU,
    stride in the depthwise conv, 2×2 average-pool shortcut, SE (SiLU) at output/4."""
    return MaxxVitConvCfg(expand_ratio=4.0, expand_output=True, stride_mode="dw",
                          pool_type="avg2", attn_layer="se" if with_se else "",
                          attn_act_layer="silu", attn_ratio=0.25, act_layer="gelu",
                          norm_layer="batchnorm2d", norm_eps=KERAS_BN_EPS)


class RelativePositionBias2d(nn.Module):
    """A learned bias per head and 2-D offset, ``[heads, 2P-1, 2P-1]`` for a P×P grid.

    ``forward(H, W)`` returns the ``[heads, H·W, H·W]`` bias: entry (query (i, j), key
    (x, y)) reads the table at offset ``(x - i, y - j)``; the table is first resized
    bilinearly (half-pixel centres, as ``tf.image.resize``) when ``H, W`` differ from P.
    """

    def __init__(self, num_heads: int, size: int):
        super().__init__()
        self.size = size
        self.table = nn.Parameter(torch.zeros(num_heads, 2 * size - 1, 2 * size - 1))
        trunc_normal_(self.table, std=0.02)

    def forward(self, height: int, width: int) -> torch.Tensor:
        table = self.table
        if table.shape[-2:] != (2 * height - 1, 2 * width - 1):
            table = F.interpolate(table.unsqueeze(0), size=(2 * height - 1, 2 * width - 1),
                                  mode="bilinear", align_corners=False).squeeze(0)
        rows = torch.arange(height, device=table.device)
        cols = torch.arange(width, device=table.device)
        row_offset = rows[None, :] - rows[:, None] + height - 1  # [query row, key row]
        col_offset = cols[None, :] - cols[:, None] + width - 1
        bias = table[:, row_offset[:, None, :, None], col_offset[None, :, None, :]]
        return bias.reshape(table.shape[0], height * width, height * width)


class MoatAttention(nn.Module):
    """Global multi-head self-attention over a channels-last map ``(B, H, W, C)``."""

    def __init__(self, dim: int, head_dim: int = 32, position_size: Optional[int] = None):
        super().__init__()
        self.num_heads = dim // head_dim
        self.head_dim = head_dim
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos = (RelativePositionBias2d(self.num_heads, position_size)
                        if position_size else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, channels = x.shape
        qkv = self.qkv(x).reshape(batch, height * width, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        bias = None if self.rel_pos is None else self.rel_pos(height, width).to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(out.transpose(1, 2).reshape(batch, height, width, channels))


class MoatBlock(nn.Module):
    """MBConv (no SE) → LayerNorm → attention → residual: the paper's Fig. 1(c)."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, head_dim: int,
                 position_size: Optional[int]):
        super().__init__()
        self.mbconv = MbConvBlock(in_chs, out_chs, stride=stride, cfg=_conv_cfg(with_se=False))
        self.norm = nn.LayerNorm(out_chs, eps=1e-5)
        self.attn = MoatAttention(out_chs, head_dim, position_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mbconv(x)
        attended = self.attn(self.norm(x.permute(0, 2, 3, 1)))
        return x + attended.permute(0, 3, 1, 2)


class TinyMoat(nn.Module):
    """Stem, four stride-2 stages of MBConv or MOAT blocks, mean-pool/LayerNorm/linear head."""

    def __init__(self, stem_width: int, widths: Sequence[int],
                 depths: Sequence[int] = (2, 3, 7, 2),
                 block_types: Sequence[str] = ("mbconv", "mbconv", "moat", "moat"),
                 position_sizes: Sequence[Optional[int]] = (None, None, 14, 7),
                 head_dim: int = 32, num_classes: int = 1000, in_chans: int = 3,
                 img_size: int | Sequence[int] = 224):
        super().__init__()
        # img_size is accepted for the zoo; position tables are resized to any input.
        del img_size
        self.stem = Stem(in_chans, (stem_width, stem_width), bias=True, act_layer="gelu",
                         norm_layer="batchnorm2d", norm_eps=KERAS_BN_EPS)
        stages = []
        in_chs = stem_width
        for width, depth, kind, position_size in zip(widths, depths, block_types,
                                                     position_sizes):
            blocks = []
            for index in range(depth):
                stride = 2 if index == 0 else 1
                if kind == "moat":
                    blocks.append(MoatBlock(in_chs, width, stride, head_dim, position_size))
                else:
                    blocks.append(MbConvBlock(in_chs, width, stride=stride,
                                              cfg=_conv_cfg(with_se=True)))
                in_chs = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(in_chs, eps=1e-5)
        self.head = nn.Linear(in_chs, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.forward_features(x).mean(dim=(2, 3))))


@register
def tiny_moat_0(**kwargs) -> nn.Module:
    """tiny-MOAT-0: 3.355 M params, 0.775 GMACs at 224² (paper: 3.4 M, 0.8 G)."""
    return TinyMoat(**{"stem_width": 32, "widths": (32, 64, 128, 256), **kwargs})


@register
def tiny_moat_1(**kwargs) -> nn.Module:
    """tiny-MOAT-1: 5.123 M params, 1.179 GMACs at 224² (paper: 5.1 M, 1.2 G)."""
    return TinyMoat(**{"stem_width": 40, "widths": (40, 80, 160, 320), **kwargs})


@register
def tiny_moat_2(**kwargs) -> nn.Module:
    """tiny-MOAT-2: 9.773 M params, 2.239 GMACs at 224² (paper: 9.8 M, 2.3 G)."""
    return TinyMoat(**{"stem_width": 56, "widths": (56, 112, 224, 448), **kwargs})
