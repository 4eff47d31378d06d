"""mmsegmentation's CNN segmentors (FCN, PSPNet, DeepLabV3+, EncNet, CCNet, OCRNet), random init.

The baselines of the SegFormer talk's Table 2 (seed ``002_7d261001ebaa70c0.txt``), as
mmsegmentation configures them (open-mmlab/mmsegmentation ``configs/_base_/models/``
``fcn_r50-d8.py``, ``pspnet_r50-d8.py``, ``deeplabv3plus_r50-d8.py``, ``encnet_r50-d8.py``,
``ccnet_r50-d8.py``, ``ocrnet_hr18.py``; the ``*_r101-d8``, ``mobilenet_v2/*_m-v2-d8`` and
``ocrnet_hr48`` configs change only the backbone and the input widths). Heads are in
:mod:`vitbench.build.builders.mmseg_heads`; backbones come from timm:

- **R-101-D8** (mmseg ``ResNetV1c``, depth 101): deep stem (three 3×3 convs, 32-32-64),
  no average-pool shortcut, stages 3 and 4 dilated (2, 4) so the output stride is 8 — timm's
  ``resnet101c`` with ``output_stride=8`` (42.52 M parameters without the classifier);
- **MobileNetV2-D8**: width 1.0, strides (1, 2, 2, 1, 1, 1, 1), dilations 2 and 4 from the
  64-channel stage on, features of the 24/32/96/320-channel stages, no 1280-channel conv —
  timm's ``mobilenetv2_100`` features with ``output_stride=8`` (1.81 M); mmseg dilates only
  the first block of each stage, timm every block after the first, which changes no count;
- **HRNetV2-W18/W48**: timm's ``hrnet_w18``/``hrnet_w48`` features at the four branch
  outputs (``feature_location=''``, no classification increments): 9.56 M / 65.33 M.

Decode heads read 2048 (R-101) or 320 (MobileNetV2) channels at stride 8 with 512 channels
inside; DeepLabV3+ also reads the stride-4 feature (256 or 24 channels). Every ResNet and
MobileNetV2 model carries mmseg's **auxiliary FCN head** (one 3×3 conv to 256 channels on the
stride-8 stage-3 feature, 1024 or 96 channels): it is a submodule, so its parameters count
(mmcv counts every parameter, and the printed Params include it), but ``forward`` does not run
it (mmseg's ``forward_dummy``, which the printed GFLOPs come from, does not either). OCRNet
is a cascade: an FCN head (1×1 conv over the concatenated HRNet branches) predicts soft masks
that the OCR head uses; both run.

``forward(images)`` returns class scores ``(B, K, H, W)``, bilinearly resized from stride 8
(4 for DeepLabV3+ and OCRNet) like mmseg's ``EncoderDecoder``. ADE20K has 150 classes
(the default), Cityscapes 19 (``num_classes=19``).

Against the SegFormer table's ADE20K columns, 150 classes at 512×512 (self-measured Params M /
GMACs → printed): FCN-R101 68.59 / 275.45 → 68.6 / 275.7, EncNet 55.05 / 218.68 → 55.1 /
218.8, PSPNet 68.07 / 256.18 → 68.1 / 256.4, CCNet 68.92 / 278.74 → 68.9 / 278.4,
DeepLabV3+ 62.68 / 254.84 → 62.7 / 255.1, OCRNet-HR48 70.53 / 167.13 → 70.5 / 164.8,
FCN-MNv2 9.82 / 39.39 → 9.8 / 39.6, PSPNet-MNv2 13.72 / 52.69 → 13.7 / 52.9, DeepLabV3+-MNv2
15.35 / 69.14 → 15.4 / 69.4. mmcv's counter also counts BatchNorm, ReLU and bias terms
(hence prints 0.1-0.5 % higher) and skips matrix products outside modules: OCRNet's
class-region gathering and object attention (2.52 GMACs, the +1.4 %), CCNet's criss-cross
einsums (0.60) and EncNet's encoding layer (0.13) are counted here. DeepLabV3+-MNv2's 15.35 M
is the one count off the printed rounding. Cityscapes columns, 19 classes at 1024×2048
(GMACs → printed): FCN-R101 2201.4 → 2203.3, EncNet 1747.2 → 1748.0, PSPNet 2046.8 → 2048.9,
CCNet 2237.4 → 2224.8 (criss-cross einsums 14.5), DeepLabV3+ 2029.9 → 2032.3, OCRNet 1297.9 →
1296.8; the MobileNetV2 rows 312.9 / 419.2 / 544.3 → 317.1 / 423.4 / 555.4, whose prints are
8× the ADE20K ones, i.e. counted with the 150-class classifier.
"""

from __future__ import annotations

from typing import Sequence

import timm
import torch
from torch import nn

from vitbench.build.builders import register
from vitbench.build.builders.mmseg_heads import (CCHead, EncHead, FCNHead, OCRHead, PSPHead,
                                                 SepASPPHead, resize_to)

__all__ = ["BACKBONES", "EncoderDecoder", "CascadeEncoderDecoder", "backbone",
           "dilated_segmentor", "ocrnet"]

#: timm name and build options per backbone; the features are mmseg's ``out_indices``.
BACKBONES: dict[str, tuple[str, dict]] = {
    "r101": ("resnet101c", {"output_stride": 8, "out_indices": (1, 2, 3, 4)}),
    "mnv2": ("mobilenetv2_100", {"output_stride": 8, "out_indices": (1, 2, 3, 4)}),
    "hr18": ("hrnet_w18", {"feature_location": "", "out_indices": (1, 2, 3, 4)}),
    "hr48": ("hrnet_w48", {"feature_location": "", "out_indices": (1, 2, 3, 4)}),
}


def backbone(name: str) -> nn.Module:
    """The timm feature extractor standing in for mmseg's backbone ``name`` (random init)."""
    timm_name, options = BACKBONES[name]
    return timm.create_model(timm_name, pretrained=False, features_only=True, **options)


class EncoderDecoder(nn.Module):
    """Backbone → decode head → resize to the input; the auxiliary head is held, not run."""

    def __init__(self, encoder: nn.Module, decode_head: nn.Module,
                 auxiliary_head: nn.Module | None = None):
        super().__init__()
        self.backbone = encoder
        self.decode_head = decode_head
        self.auxiliary_head = auxiliary_head  # training-only: counted in params, not in GFLOPs

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.decode_head(self.backbone(images))
        if isinstance(out, tuple):  # EncNet also returns its SE-loss logits
            out = out[0]
        return resize_to(out, images.shape[-2:])


class CascadeEncoderDecoder(nn.Module):
    """OCRNet: the first head's logits steer the second; both run."""

    def __init__(self, encoder: nn.Module, first_head: nn.Module, second_head: nn.Module):
        super().__init__()
        self.backbone = encoder
        self.decode_head = nn.ModuleList([first_head, second_head])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.backbone(images)
        logits = self.decode_head[0](features)
        return resize_to(self.decode_head[1](features, logits), images.shape[-2:])


def _widths(backbone_name: str) -> tuple[int, int, int]:
    """(decode input, auxiliary input, stride-4 input) channels of a dilated backbone."""
    return {"r101": (2048, 1024, 256), "mnv2": (320, 96, 24)}[backbone_name]


def _auxiliary(in_channels: int, num_classes: int) -> FCNHead:
    return FCNHead(in_channels, 256, num_classes, in_index=2, num_convs=1, concat_input=False)


def _decode_head(head: str, backbone_name: str, num_classes: int) -> nn.Module:
    in_channels, _, c1_channels = _widths(backbone_name)
    if head == "fcn":
        return FCNHead(in_channels, 512, num_classes, in_index=3)
    if head == "psp":
        return PSPHead(in_channels, 512, num_classes, in_index=3)
    if head == "deeplabv3plus":
        return SepASPPHead(in_channels, 512, num_classes, in_index=3, c1_in_channels=c1_channels)
    if head == "enc":
        return EncHead(in_channels, 512, num_classes, in_index=3)
    if head == "cc":
        return CCHead(in_channels, 512, num_classes, in_index=3)
    raise ValueError(f"unknown head {head!r}")


def dilated_segmentor(head: str, backbone_name: str, num_classes: int = 150) -> EncoderDecoder:
    """A ``*-d8`` segmentor: dilated backbone, decode head and auxiliary FCN head."""
    return EncoderDecoder(backbone(backbone_name), _decode_head(head, backbone_name, num_classes),
                          _auxiliary(_widths(backbone_name)[1], num_classes))


def ocrnet(backbone_name: str, num_classes: int = 150) -> CascadeEncoderDecoder:
    """OCRNet on HRNetV2: FCN over the concatenated branches, then the OCR head (512/256)."""
    encoder = backbone(backbone_name)
    concat_channels = sum(encoder.feature_info.channels())
    first = FCNHead(concat_channels, concat_channels, num_classes, in_index=(0, 1, 2, 3),
                    num_convs=1, kernel_size=1, concat_input=False, resize_concat=True)
    second = OCRHead(concat_channels, 512, num_classes, in_index=(0, 1, 2, 3), ocr_channels=256)
    return CascadeEncoderDecoder(encoder, first, second)


#: head → (model name prefix, label)
_HEADS = {"fcn": ("fcn", "FCN"), "psp": ("pspnet", "PSPNet"),
          "deeplabv3plus": ("deeplabv3plus", "DeepLabV3+"), "enc": ("encnet", "EncNet"),
          "cc": ("ccnet", "CCNet")}
#: backbone → (model name suffix, label)
_DILATED = {"r101": ("r101_d8", "ResNet-101-D8 (ResNetV1c)"),
            "mnv2": ("mobilenetv2_d8", "MobileNetV2-D8")}


def _register_dilated(head: str, backbone_name: str) -> None:
    def build(num_classes: int = 150, img_size: int | Sequence[int] | None = None) -> nn.Module:
        return dilated_segmentor(head, backbone_name, num_classes)

    (prefix, label), (suffix, backbone_label) = _HEADS[head], _DILATED[backbone_name]
    build.__name__ = build.__qualname__ = f"{prefix}_{suffix}"
    build.__doc__ = (f"mmseg {label} on {backbone_label}, with the auxiliary FCN head (params "
                     "only); any input size (``img_size`` is accepted and ignored).")
    register(build)


# The SegFormer table's rows: five heads on R-101-D8, three on MobileNetV2-D8.
for _head in ("fcn", "psp", "deeplabv3plus", "enc", "cc"):
    _register_dilated(_head, "r101")
for _head in ("fcn", "psp", "deeplabv3plus"):
    _register_dilated(_head, "mnv2")


@register
def ocrnet_hr48(num_classes: int = 150, img_size=None) -> CascadeEncoderDecoder:
    """mmseg OCRNet on HRNetV2-W48 (``ocrnet_hr48``); any input size divisible by 32."""
    return ocrnet("hr48", num_classes)


@register
def ocrnet_hr18(num_classes: int = 150, img_size=None) -> CascadeEncoderDecoder:
    """mmseg OCRNet on HRNetV2-W18 (``ocrnet_hr18``, the base configuration)."""
    return ocrnet("hr18", num_classes)
