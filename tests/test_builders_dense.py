"""Dense-prediction builders (DETR, Segmenter): printed parameter counts, output shapes."""

from __future__ import annotations

import pytest
import torch



def _params_m(model: torch.nn.Module) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


@pytest.fixture(scope="module")
def detr(builders):
    torch.manual_seed(0)
    return builders["detr_r50"]().eval()


def test_dense_builders_registered(builders):
    for name in ("detr_r50", "detr_r50_dc5", "detr_r101", "detr_r101_dc5", "detr_demo_r50",
                 "fasterrcnn_resnet101_fpn", "segmenter_ti_16", "segmenter_s_16",
                 "segmenter_s_32", "segmenter_b_8", "segmenter_b_16", "segmenter_b_32",
                 "segmenter_l_16", "segmenter_b_deit_16", "segmenter_s_mask_16",
                 "segmenter_l_mask_16"):
        assert name in builders, name


def test_detr_r50_params_match_paper(detr):
    # The paper's 41.3 M is the trainable count: frozen BatchNorm (buffers here) and the
    # frozen stem + first ResNet stage left out (paper). Every parameter: 41.52 M
    # (self-measured, pinned against regressions).
    assert _params_m(detr) == pytest.approx(41.52, abs=0.01)
    frozen = ("backbone.0.", "backbone.1.", "backbone.4.")  # conv1, bn1, layer1
    trainable = sum(p.numel() for n, p in detr.named_parameters() if not n.startswith(frozen))
    assert trainable / 1e6 == pytest.approx(41.3, abs=0.01)


def test_detr_outputs_100_queries_92_classes(detr):
    with torch.no_grad():
        logits, boxes = detr(torch.randn(1, 3, 128, 192))
    assert logits.shape == (1, 100, 92)
    assert boxes.shape == (1, 100, 4)
    assert float(boxes.min()) >= 0 and float(boxes.max()) <= 1


def test_detr_demo_follows_listing(builders):
    model = builders["detr_demo_r50"]().eval()
    assert _params_m(model) == pytest.approx(41.46, abs=0.01)  # self-measured, pinned
    with torch.no_grad():
        logits, boxes = model(torch.randn(1, 3, 128, 128))
    assert logits.shape == (100, 1, 92) and boxes.shape == (100, 1, 4)


def test_segmenter_s16_params_match_table1(builders):
    model = builders["segmenter_s_16"]()
    # Table 1 prints 22 M for the ViT-S backbone (paper); the whole Seg-S/16 at 512x512 is
    # 22.04 M (self-measured, pinned against regressions).
    assert _params_m(model) == pytest.approx(22.04, abs=0.01)


@pytest.mark.slow
def test_segmenter_b16_params_match_table1(builders):
    params_m = _params_m(builders["segmenter_b_16"]())
    assert abs(params_m - 86) / 86 < 0.05  # Table 1 prints 86 M (paper)
    assert params_m == pytest.approx(86.55, abs=0.01)  # self-measured, pinned


@pytest.mark.parametrize("name", ["segmenter_ti_16", "segmenter_ti_mask_16"])
def test_segmenter_per_pixel_scores(builders, name):
    torch.manual_seed(0)
    model = builders[name](img_size=64, num_classes=7).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 7, 64, 64)


def test_segmenter_rejects_size_not_multiple_of_patch(builders):
    with pytest.raises(ValueError, match="multiple of patch"):
        builders["segmenter_ti_16"](img_size=100)
