"""ConvNeXt-XT: the 7.4 M ConvNeXt baseline of the ParC-Net README, random init.

Zhang et al., "ParC-Net: Position Aware Circular Convolution with Merits from ConvNets and
Transformer", ECCV 2022 (arXiv:2203.03952). The README of ``hkzhang91/ParC-Net`` prints
"ConvNext-XT | 7.4 M | 0.6G | CPU | 47 | 77.5 | CVPR 22" as the baseline of ParC-ConvNext-XT,
and ``ParC_ConvNets/ParC_convnext.py`` (``parc_convnext_xt``) sets that width: depths 3-3-9-3
(ConvNeXt-T's), dims 48/96/192/384 (half of ConvNeXt-T's). The plain model is timm's
``ConvNeXt`` with exactly those two settings: 4×4 patch stem, 7×7 depthwise blocks with
inverted MLPs (ratio 4) and layer scale 1e-6, LayerNorm + 2×2 stride-2 conv between stages,
global average pool, LayerNorm and a linear head.

At 224² with 1000 classes: 7.44 M parameters (README 7.4 M) and 1.14 GMACs (self-measured,
matmul-only; both counters agree). The README's 0.6 G is about half of that: it cannot be a
MAC count of this configuration at 224² (ConvNeXt-T, twice the width, counts 4.46 GMACs, and
all but its depthwise and stem MACs scale with width squared: a quarter is 1.11), so the
suite row carries a note.

Not to be confused with the 4.4 M "ConvNeXt-XT" of the EMSNet talk, which is STM-Evaluation's
U-ConvNeXt-Micro (:func:`vitbench.build.builders.stm_micro.stm_convnext_micro`).
"""

from __future__ import annotations

from typing import Sequence

from timm.models.convnext import ConvNeXt
from torch import nn

from vitbench.build.builders import register

__all__ = ["convnext_xt"]


@register
def convnext_xt(img_size: int | Sequence[int] = 224, num_classes: int = 1000,
                **kwargs) -> nn.Module:
    """ConvNeXt-XT (depths 3-3-9-3, dims 48-96-192-384): 7.44 M params, 1.14 GMACs at 224².

    ``img_size`` is accepted for the zoo's sake and unused: the network is fully
    convolutional up to its global pool.
    """
    del img_size
    return ConvNeXt(depths=(3, 3, 9, 3), dims=(48, 96, 192, 384), num_classes=num_classes,
                    **kwargs)
