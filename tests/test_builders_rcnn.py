"""Faster R-CNN R50-DC5 from torchvision parts: the DETR table's printed 166 M and the
Detectron2 configuration it stands for."""

from __future__ import annotations

import pytest
import torch

from vitbench.build.builders import load_builders
from vitbench.build.builders.faster_rcnn_dc5 import dc5_backbone

#: DETR paper / seed 004 "vs. Faster R-CNN" table: Faster RCNN-DC5 #params 166 M.
PAPER_PARAMS_M = 166
#: Self-measured (pinned): every parameter (frozen BatchNorm holds buffers only).
SELF_MEASURED_PARAMS = 165_585_568


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def detector():
    torch.manual_seed(0)
    return load_builders()["fasterrcnn_resnet50_dc5"](min_size=160, max_size=240).eval()


def test_params_match_the_print(detector):
    assert _params(detector) == SELF_MEASURED_PARAMS
    assert round(_params(detector) / 1e6) == PAPER_PARAMS_M


def test_parts_follow_detectron2_dilated_c5(detector):
    rcnn = detector.model
    # RPN on res5: 3x3 conv 2048→2048, 15 anchors (5 sizes × 3 ratios) per position.
    assert rcnn.rpn.anchor_generator.num_anchors_per_location() == [15]
    assert _params(rcnn.rpn) == (2048 * 9 + 1) * 2048 + (2048 + 1) * 15 * 5
    assert rcnn.rpn._pre_nms_top_n["testing"] == 6000
    assert rcnn.rpn._post_nms_top_n["testing"] == 1000
    # Box head: two FCs over 7×7 RoIAlign of the 2048-channel map; 80 classes + background.
    assert rcnn.roi_heads.box_roi_pool.output_size == (7, 7)
    assert rcnn.roi_heads.box_head.fc6.in_features == 2048 * 7 * 7
    assert rcnn.roi_heads.box_head.fc7.out_features == 1024
    assert rcnn.roi_heads.box_predictor.cls_score.out_features == 81
    assert rcnn.transform.size_divisible == 1


def test_backbone_keeps_stride_16_and_freezes_batchnorm():
    backbone = dc5_backbone().eval()
    with torch.no_grad():
        feature = backbone(torch.randn(1, 3, 64, 96))
    assert feature.shape == (1, 2048, 4, 6)
    assert not any("bn" in name for name, _ in backbone.named_parameters())


def test_random_rpn_keeps_its_proposals_on_the_anchors(detector):
    """Zero box deltas: NMS sees the anchors, not boxes pushed to the image border, so the
    box head gets hundreds of proposals (869 here; 36 with torchvision's random deltas)."""
    rcnn = detector.model
    head = rcnn.rpn.head.bbox_pred
    assert not head.weight.any() and not head.bias.any()
    with torch.no_grad():
        images, _ = rcnn.transform([torch.rand(3, 160, 240)])
        proposals, _ = rcnn.rpn(images, {"0": rcnn.backbone(images.tensors)})
    assert proposals[0].shape[0] > 500


def test_forward_returns_boxes_labels_scores(detector):
    rpn = detector.model.rpn
    configured = dict(rpn._post_nms_top_n)
    rpn._post_nms_top_n["testing"] = 20  # 20 box-head passes instead of ~900 (104 M MACs each)
    try:
        with torch.no_grad():
            boxes, labels, scores = detector(torch.rand(1, 3, 160, 240))
    finally:
        rpn._post_nms_top_n.update(configured)
    assert boxes.shape[1] == 4 and boxes.shape[0] == labels.shape[0] == scores.shape[0] <= 100
