"""Faster R-CNN R50-DC5 (Detectron2's dilated-C5 configuration) from torchvision parts.

The "Faster RCNN-DC5" baseline of the DETR talk's table (seed ``004_b2f775d5b64d4db4.txt``;
Carion et al., ECCV 2020, Table 1), which the DETR authors ran in Detectron2
(facebookresearch/detectron2 ``configs/Base-RCNN-DilatedC5.yaml``: ``RES5_DILATION: 2``,
RPN and RoI heads on ``res5`` only, ``FastRCNNConvFCHead`` with two 1024-wide FCs on 7×7
pooled features, ``POST_NMS_TOPK_TEST: 1000``). torchvision ships only the FPN variants,
so it is assembled here from torchvision's parts, random init:

- backbone: ResNet-50 with frozen BatchNorm (statistics and affine terms are buffers, as in
  Detectron2's ``FrozenBN``) and ``replace_stride_with_dilation=[False, False, True]``:
  res5 runs at stride 16 with dilation 2 and gives the single 2048-channel feature map;
- RPN: one 3×3 conv 2048→2048 with ReLU, objectness and box-delta 1×1 convs for 15 anchors
  per position (sizes 32–512 × aspect ratios 0.5/1/2, all on the one map); 6000 proposals
  before NMS and 1000 after at test time (Detectron2's ``PRE/POST_NMS_TOPK_TEST``);
- RoI head: 7×7 RoIAlign (sampling ratio 0, i.e. adaptive, like ``ROIAlignV2``) on the one
  map, ``TwoMLPHead(2048·49, 1024)`` and a predictor over 80 classes + background;
- no padding to a multiple of 32 (Detectron2 pads only for FPN backbones).

Parameters: 165.6 M (self-measured, every parameter; printed 166). torchvision's box
regressor also predicts a background box (81·4 outputs against Detectron2's 80·4, +4.1 k
parameters). The box head's MACs scale with the number of proposals that survive NMS: the
RPN's box deltas start at zero (see the builder), so random weights give about the configured
1000 (984-1000 at 800×1200). GMACs at 800×1200 (self-measured): backbone 118.7, RPN 142.1,
box head 104.2 for 1000 proposals, 365.1 in all against the printed 320, which Detectron2
averaged over 100 COCO images (800×1066 and up) with trained weights. The forward returns a
flat tuple of tensors (boxes, labels, scores per image), which the JIT-trace counter can
follow.
"""

from __future__ import annotations

from torch import nn

from vitbench.build.builders import register

__all__ = ["fasterrcnn_resnet50_dc5"]

#: Detectron2's default anchor sizes and ratios, all on the single res5 map (5 × 3 = 15).
ANCHOR_SIZES = (32, 64, 128, 256, 512)
ASPECT_RATIOS = (0.5, 1.0, 2.0)


def dc5_backbone() -> nn.Sequential:
    """ResNet-50 with frozen BatchNorm and a dilated res5 (stride 16), without pool and fc."""
    from torchvision.models import resnet50
    from torchvision.ops import misc

    body = resnet50(weights=None, norm_layer=misc.FrozenBatchNorm2d,
                    replace_stride_with_dilation=[False, False, True])
    backbone = nn.Sequential(*list(body.children())[:-2])
    backbone.out_channels = 2048  # read by FasterRCNN
    return backbone


@register
def fasterrcnn_resnet50_dc5(num_classes: int = 81, img_size=None, **kwargs):
    """Detectron2's Faster R-CNN R50-DC5 (random weights), outputs as a flat tuple.

    ``num_classes`` counts the background (81 for COCO's 80); ``img_size`` is accepted and
    ignored (the detector resizes inputs to a short side of 800, long side ≤ 1333).
    """
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.rpn import RPNHead
    from torchvision.ops import MultiScaleRoIAlign

    from vitbench.build.zoo import tensor_outputs

    anchors = AnchorGenerator(sizes=(ANCHOR_SIZES,), aspect_ratios=(ASPECT_RATIOS,))
    options = dict(rpn_pre_nms_top_n_test=6000, rpn_post_nms_top_n_test=1000,
                   size_divisible=1)
    options.update(kwargs)
    model = FasterRCNN(
        dc5_backbone(),
        rpn_anchor_generator=anchors,
        rpn_head=RPNHead(2048, anchors.num_anchors_per_location()[0]),
        box_roi_pool=MultiScaleRoIAlign(["0"], output_size=7, sampling_ratio=0),
        box_head=TwoMLPHead(2048 * 7 * 7, 1024),
        box_predictor=FastRCNNPredictor(1024, num_classes),
        **options)
    # Untrained box deltas push nearly every proposal to the image border, where NMS merges
    # them: 5 of 1000 survive at 800x1200 (seed 0), and the 104 M-MAC box head nearly drops
    # out of the count. Zero deltas leave the proposals on their anchors, ranked by the random
    # objectness, so the box head runs on the configured 1000, as a trained RPN's would.
    nn.init.zeros_(model.rpn.head.bbox_pred.weight)
    nn.init.zeros_(model.rpn.head.bbox_pred.bias)
    return tensor_outputs(model)
