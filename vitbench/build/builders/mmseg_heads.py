"""The decode heads of mmsegmentation's CNN segmentors, written from its configurations.

Shared by :mod:`vitbench.build.builders.mmseg_cnn` (this module registers no builder).
Each head follows open-mmlab/mmsegmentation ``mmseg/models/decode_heads/*.py`` in its layer
list and widths; ``ConvModule`` (conv without bias + BatchNorm + ReLU) is timm's
``ConvNormAct``, and every head ends in ``conv_seg``, a 1×1 conv with bias to the classes
(dropout before it is inactive in eval). Heads take the backbone's list of feature maps and
pick their inputs by ``in_index`` as mmseg does.

- ``FCNHead`` (fcn_head.py): ``num_convs`` k×k convs, optionally a k×k conv over
  ``concat(input, convs)``; with ``resize_concat`` every input is resized to the first's size
  and concatenated (OCRNet's first stage on HRNet).
- ``PSPHead`` (psp_head.py): average pools to 1, 2, 3, 6, a 1×1 conv each, upsampled and
  concatenated with the input, a 3×3 bottleneck.
- ``SepASPPHead`` (sep_aspp_head.py, DeepLabV3+): image pooling + 1×1, and depthwise-separable
  3×3 convs at dilations 12/24/36, a *plain* 3×3 bottleneck (the ASPP head's; the separable
  head does not replace it), a 1×1 48-channel projection of the stride-4 feature, two
  depthwise-separable 3×3 convs over their concatenation.
- ``EncHead`` (enc_head.py, EncNet): a 3×3 bottleneck, the encoding layer (32 codewords with
  smoothing factors, soft assignment by scaled squared distance, BatchNorm1d over codes,
  ReLU, mean over codes), a sigmoid-gated channel scaling ``relu(x + x·γ)`` and the SE-loss
  linear layer (which runs in mmseg's forward and is counted here too).
- ``CCHead`` (cc_head.py + mmcv ``CrissCrossAttention``): FCN with two convs and criss-cross
  attention (1×1 query/key to C/8, value to C, a zero-initialised scale) applied ``recurrence``
  times between them.
- ``OCRHead`` (ocr_head.py + utils/self_attention_block.py): a 3×3 bottleneck, class-region
  context gathered with the previous stage's soft masks, an object attention block (two 1×1
  convs each for query and key, one for value and out) and a 1×1 conv over
  ``concat(context, feats)``.

The encoding layer's distances and aggregation are written as matrix products (the same
numbers as mmseg's broadcast form, which would need a ``HW×K×C`` tensor: 2 GiB at 1024×2048),
so they are counted (≈0.13 GMACs at 512×512); mmcv's counter, which the printed GFLOPs come
from, skips them, as it skips the criss-cross einsums (counted here: ≈0.6 GMACs at 512×512).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from timm.layers import ConvNormAct
from torch import nn

__all__ = ["ClassifierHead", "FCNHead", "PSPHead", "SepASPPHead", "EncHead", "CCHead",
           "OCRHead", "resize_to", "separable_conv"]


def resize_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize (``align_corners=False``, as every mmseg head here)."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def separable_conv(in_channels: int, out_channels: int, dilation: int = 1) -> nn.Sequential:
    """mmcv's ``DepthwiseSeparableConvModule``: 3×3 depthwise + BN + ReLU, 1×1 + BN + ReLU."""
    return nn.Sequential(
        ConvNormAct(in_channels, in_channels, 3, dilation=dilation, groups=in_channels),
        ConvNormAct(in_channels, out_channels, 1))


class ClassifierHead(nn.Module):
    """mmseg's ``BaseDecodeHead`` part every head shares: picks inputs, ends in ``conv_seg``."""

    def __init__(self, channels: int, num_classes: int, in_index: int | Sequence[int]):
        super().__init__()
        self.in_index = in_index
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def select(self, features: Sequence[torch.Tensor]):
        if isinstance(self.in_index, int):
            return features[self.in_index]
        return [features[i] for i in self.in_index]


class FCNHead(ClassifierHead):
    """``num_convs`` k×k ConvModules, then (``concat_input``) one over concat(input, output)."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, *,
                 in_index: int | Sequence[int] = -1, num_convs: int = 2, kernel_size: int = 3,
                 concat_input: bool = True, resize_concat: bool = False):
        super().__init__(channels, num_classes, in_index)
        self.resize_concat = resize_concat
        self.convs = nn.Sequential(*(
            ConvNormAct(in_channels if i == 0 else channels, channels, kernel_size)
            for i in range(num_convs)))
        self.conv_cat = (ConvNormAct(in_channels + channels, channels, kernel_size)
                         if concat_input else None)

    def inputs(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        selected = self.select(features)
        if not self.resize_concat:
            return selected
        size = selected[0].shape[-2:]
        return torch.cat([selected[0]] + [resize_to(f, size) for f in selected[1:]], dim=1)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        x = self.inputs(features)
        out = self.convs(x)
        if self.conv_cat is not None:
            out = self.conv_cat(torch.cat([x, out], dim=1))
        return self.conv_seg(out)


class PSPHead(ClassifierHead):
    """Pyramid pooling (1, 2, 3, 6 bins) + 3×3 bottleneck."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, *,
                 in_index: int = -1, pool_scales: Sequence[int] = (1, 2, 3, 6)):
        super().__init__(channels, num_classes, in_index)
        self.psp_modules = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(scale), ConvNormAct(in_channels, channels, 1))
            for scale in pool_scales)
        self.bottleneck = ConvNormAct(in_channels + len(pool_scales) * channels, channels, 3)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        x = self.select(features)
        pooled = [resize_to(module(x), x.shape[-2:]) for module in self.psp_modules]
        return self.conv_seg(self.bottleneck(torch.cat([x, *pooled], dim=1)))


class SepASPPHead(ClassifierHead):
    """DeepLabV3+: separable ASPP at stride 8, fused with the stride-4 feature (``c1``)."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, *,
                 c1_in_channels: int, c1_channels: int = 48, in_index: int = -1,
                 c1_index: int = 0, dilations: Sequence[int] = (1, 12, 24, 36)):
        super().__init__(channels, num_classes, in_index)
        self.c1_index = c1_index
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1),
                                        ConvNormAct(in_channels, channels, 1))
        self.aspp_modules = nn.ModuleList(
            ConvNormAct(in_channels, channels, 1) if dilation == 1
            else separable_conv(in_channels, channels, dilation) for dilation in dilations)
        self.bottleneck = ConvNormAct((len(dilations) + 1) * channels, channels, 3)
        self.c1_bottleneck = ConvNormAct(c1_in_channels, c1_channels, 1)
        self.sep_bottleneck = nn.Sequential(separable_conv(channels + c1_channels, channels),
                                            separable_conv(channels, channels))

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        x = self.select(features)
        outs = [resize_to(self.image_pool(x), x.shape[-2:])]
        outs += [module(x) for module in self.aspp_modules]
        out = self.bottleneck(torch.cat(outs, dim=1))
        c1 = self.c1_bottleneck(features[self.c1_index])
        out = torch.cat([resize_to(out, c1.shape[-2:]), c1], dim=1)
        return self.conv_seg(self.sep_bottleneck(out))


class Encoding(nn.Module):
    """EncNet's encoding layer: soft-assign pixels to ``num_codes`` codewords, aggregate residuals.

    ``e_k = Σ_i a_ik (x_i − c_k)`` with ``a_ik = softmax_k(s_k ‖x_i − c_k‖²)``; the distances
    and the sum are expanded into matrix products.
    """

    def __init__(self, channels: int, num_codes: int):
        super().__init__()
        std = 1 / (num_codes * channels) ** 0.5
        self.codewords = nn.Parameter(torch.empty(num_codes, channels).uniform_(-std, std))
        self.scale = nn.Parameter(torch.empty(num_codes).uniform_(-1, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pixels = x.flatten(2).transpose(1, 2)  # B, N, C
        distances = (pixels.pow(2).sum(-1, keepdim=True) - 2 * pixels @ self.codewords.t()
                     + self.codewords.pow(2).sum(-1))  # B, N, K
        assignment = F.softmax(self.scale * distances, dim=2)
        aggregated = assignment.transpose(1, 2) @ pixels  # B, K, C
        return aggregated - assignment.sum(1).unsqueeze(-1) * self.codewords


class EncHead(ClassifierHead):
    """EncNet head (no lateral branches, as in mmseg's ``encnet_r50-d8.py``)."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, *,
                 in_index: int = -1, num_codes: int = 32):
        super().__init__(channels, num_classes, in_index)
        self.bottleneck = ConvNormAct(in_channels, channels, 3)
        self.encoding_project = ConvNormAct(channels, channels, 1)
        self.encoding = Encoding(channels, num_codes)
        self.encoding_norm = nn.BatchNorm1d(num_codes)
        self.fc = nn.Linear(channels, channels)
        self.se_layer = nn.Linear(channels, num_classes)

    def forward(self, features: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.bottleneck(self.select(features))
        codes = F.relu(self.encoding_norm(self.encoding(self.encoding_project(feat))))
        encoded = codes.mean(dim=1)  # B, C
        gamma = torch.sigmoid(self.fc(encoded))[:, :, None, None]
        out = F.relu(feat + feat * gamma)
        return self.conv_seg(out), self.se_layer(encoded)


class CrissCrossAttention(nn.Module):
    """Each pixel attends to its row and column (the centre once), ``recurrence``-ready."""

    def __init__(self, channels: int):
        super().__init__()
        self.query_conv = nn.Conv2d(channels, channels // 8, 1)
        self.key_conv = nn.Conv2d(channels, channels // 8, 1)
        self.value_conv = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height = x.shape[2]
        query, key, value = self.query_conv(x), self.key_conv(x), self.value_conv(x)
        rows = torch.arange(height, device=x.device)
        centre = rows[:, None] == rows[None, :]  # the pixel itself, counted in its row only
        energy_col = torch.einsum("bchw,bciw->bhwi", query, key).masked_fill(
            centre[:, None, :], float("-inf"))
        energy_row = torch.einsum("bchw,bchj->bhwj", query, key)
        attention = F.softmax(torch.cat([energy_col, energy_row], dim=-1), dim=-1)
        out = torch.einsum("bciw,bhwi->bchw", value, attention[..., :height])
        out = out + torch.einsum("bchj,bhwj->bchw", value, attention[..., height:])
        return self.gamma * out + x


class CCHead(FCNHead):
    """CCNet: FCN head (two 3×3 convs) with criss-cross attention between them."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, *,
                 in_index: int = -1, recurrence: int = 2):
        super().__init__(in_channels, channels, num_classes, in_index=in_index, num_convs=2)
        self.recurrence = recurrence
        self.cca = CrissCrossAttention(channels)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        x = self.select(features)
        out = self.convs[0](x)
        for _ in range(self.recurrence):
            out = self.cca(out)
        out = self.conv_cat(torch.cat([x, self.convs[1](out)], dim=1))
        return self.conv_seg(out)


def _projection(in_channels: int, channels: int, num_convs: int) -> nn.Sequential:
    return nn.Sequential(*(ConvNormAct(in_channels if i == 0 else channels, channels, 1)
                           for i in range(num_convs)))


class ObjectAttentionBlock(nn.Module):
    """Pixels (queries) attend to class-region contexts (keys/values), scaled by C^-½."""

    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        self.channels = channels
        self.query_project = _projection(in_channels, channels, 2)
        self.key_project = _projection(in_channels, channels, 2)
        self.value_project = _projection(in_channels, channels, 1)
        self.out_project = _projection(channels, in_channels, 1)
        self.bottleneck = ConvNormAct(in_channels * 2, in_channels, 1)

    def forward(self, feats: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = feats.shape
        query = self.query_project(feats).flatten(2).transpose(1, 2)  # B, N, C'
        key = self.key_project(context).flatten(2)  # B, C', K
        value = self.value_project(context).flatten(2).transpose(1, 2)  # B, K, C'
        sim = F.softmax((query @ key) * self.channels ** -0.5, dim=-1)
        attended = (sim @ value).transpose(1, 2).reshape(batch, -1, height, width)
        return self.bottleneck(torch.cat([self.out_project(attended), feats], dim=1))


class OCRHead(ClassifierHead):
    """OCRNet's second stage: object-contextual representations from the first stage's masks."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, *,
                 in_index: Sequence[int], ocr_channels: int = 256):
        super().__init__(channels, num_classes, in_index)
        self.bottleneck = ConvNormAct(in_channels, channels, 3)
        self.object_context_block = ObjectAttentionBlock(channels, ocr_channels)

    def forward(self, features: Sequence[torch.Tensor], prev_logits: torch.Tensor):
        selected = self.select(features)
        size = selected[0].shape[-2:]
        x = torch.cat([selected[0]] + [resize_to(f, size) for f in selected[1:]], dim=1)
        feats = self.bottleneck(x)
        probs = F.softmax(prev_logits.flatten(2), dim=2)  # B, K, N
        context = (probs @ feats.flatten(2).transpose(1, 2)).transpose(1, 2).unsqueeze(-1)
        return self.conv_seg(self.object_context_block(feats, context))
