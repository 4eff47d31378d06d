"""mmsegmentation CNN segmentors: the SegFormer table's printed sizes, the auxiliary head's
bookkeeping (counted in params, never run), and the attention-like heads against their
definitions."""

from __future__ import annotations

import pytest
import torch

from vitbench.build.builders.mmseg_heads import CCHead, CrissCrossAttention, EncHead, Encoding
from vitbench.measure.counting import count_flops

#: SegFormer paper / seed 002 Table 2, ADE20K Params (M), printed to 0.1 M.
PAPER_ADE_PARAMS_M = {
    "fcn_r101_d8": 68.6, "encnet_r101_d8": 55.1, "pspnet_r101_d8": 68.1, "ccnet_r101_d8": 68.9,
    "deeplabv3plus_r101_d8": 62.7, "ocrnet_hr48": 70.5, "fcn_mobilenetv2_d8": 9.8,
    "pspnet_mobilenetv2_d8": 13.7,
}
#: DeepLabV3+ (MobileNetV2) prints 15.4; self-measured 15.345 (pinned): the one row that
#: misses the printed rounding, by 0.055 M, while FCN and PSPNet on the same backbone match.
SELF_MEASURED_DLV3P_MNV2_PARAMS = 15_345_244
#: Self-measured parameters of the parts (pinned): mmseg's auxiliary FCN head on R-101's
#: stage 3 (1024 → 256 → 150) and on MobileNetV2's 96-channel stage.
SELF_MEASURED_AUX_PARAMS = {"fcn_r101_d8": 2_398_358, "fcn_mobilenetv2_d8": 260_246}
#: SegFormer paper / seed 002 Table 2, ADE20K GFLOPs at 512×512 (mmcv's counter: MACs).
PAPER_ADE_GFLOPS = {"fcn_r101_d8": 275.7, "fcn_mobilenetv2_d8": 39.6}


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _meta(builders, name, **kwargs):
    with torch.device("meta"):
        return builders[name](**kwargs)


def test_every_row_variant_is_registered(builders):
    for name in (*PAPER_ADE_PARAMS_M, "deeplabv3plus_mobilenetv2_d8", "ocrnet_hr18"):
        assert name in builders, name


@pytest.mark.parametrize("name", sorted(PAPER_ADE_PARAMS_M))
def test_params_match_the_printed_ade20k_column(builders, name):
    assert _params(_meta(builders, name)) / 1e6 == pytest.approx(PAPER_ADE_PARAMS_M[name],
                                                                 abs=0.05)


def test_deeplabv3plus_mobilenetv2_params_pinned(builders):
    assert _params(_meta(builders, "deeplabv3plus_mobilenetv2_d8")) == \
        SELF_MEASURED_DLV3P_MNV2_PARAMS


def test_cityscapes_head_changes_only_the_classifiers(builders):
    ade = _params(_meta(builders, "fcn_r101_d8"))
    cityscapes = _params(_meta(builders, "fcn_r101_d8", num_classes=19))
    # conv_seg of the decode head (512 in) and of the auxiliary head (256 in), with biases.
    assert ade - cityscapes == (150 - 19) * (512 + 1 + 256 + 1)


@pytest.mark.parametrize("name", sorted(SELF_MEASURED_AUX_PARAMS))
def test_auxiliary_head_counts_in_params(builders, name):
    model = _meta(builders, name)
    assert _params(model.auxiliary_head) == SELF_MEASURED_AUX_PARAMS[name]
    parts = _params(model.backbone) + _params(model.decode_head) + _params(model.auxiliary_head)
    assert _params(model) == parts


def test_auxiliary_head_does_not_run_in_forward(builders):
    torch.manual_seed(0)
    model = builders["fcn_mobilenetv2_d8"]().eval()
    calls = []
    model.auxiliary_head.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 96))
    assert out.shape == (1, 150, 64, 96)
    assert calls == []


@pytest.mark.parametrize("name", sorted(PAPER_ADE_GFLOPS))
def test_fcn_gmacs_scale_to_the_printed_512_count(builders, name):
    """FCN is all convolutions: at 32×32 every feature map is exactly 1/16 a side of the
    512×512 one, so the MACs are exactly 1/256 (the auxiliary head does not run)."""
    torch.manual_seed(0)
    model = builders[name]().eval()
    with torch.no_grad():
        count = count_flops(model, (torch.randn(1, 3, 32, 32),), "matmul-only")
    assert count.counters_agree
    # ReLU6 (hardtanh_) carries no MACs; the counter lists it because it is no known cheap op.
    assert set(count.gap_ops) <= {"aten::hardtanh_"}
    # mmcv also counts BatchNorm, ReLU and bias adds, hence the print sits 0.1-0.6 % above.
    assert count.gmacs * 256 == pytest.approx(PAPER_ADE_GFLOPS[name], rel=0.006)


@pytest.mark.parametrize("name", ["pspnet_mobilenetv2_d8", "deeplabv3plus_mobilenetv2_d8",
                                  "ocrnet_hr18"])
def test_forward_gives_class_scores_at_the_input_size(builders, name):
    torch.manual_seed(0)
    model = builders[name](num_classes=19).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 128))
    assert out.shape == (1, 19, 64, 128)
    assert torch.isfinite(out).all()


def test_criss_cross_attention_is_row_and_column_attention():
    """Each pixel attends to its row and its column, the centre pixel once."""
    torch.manual_seed(0)
    cca = CrissCrossAttention(16).eval()
    torch.nn.init.constant_(cca.gamma, 0.7)
    x = torch.randn(1, 16, 5, 6)
    with torch.no_grad():
        out = cca(x)
        q, k, v = cca.query_conv(x)[0], cca.key_conv(x)[0], cca.value_conv(x)[0]
    expected = torch.empty_like(x[0])
    for h in range(5):
        for w in range(6):
            keys = [(i, w) for i in range(5) if i != h] + [(h, j) for j in range(6)]
            logits = torch.stack([q[:, h, w] @ k[:, i, j] for i, j in keys])
            weights = logits.softmax(0)
            expected[:, h, w] = sum(wt * v[:, i, j] for wt, (i, j) in zip(weights, keys))
    assert torch.allclose(out[0], 0.7 * expected + x[0], atol=1e-5)


def test_encoding_matches_the_broadcast_definition():
    """e_k = Σ_i softmax_k(s_k‖x_i − c_k‖²)(x_i − c_k), computed the direct way."""
    torch.manual_seed(0)
    layer = Encoding(8, 4)
    x = torch.randn(2, 8, 3, 5)
    pixels = x.flatten(2).transpose(1, 2)  # B, N, C
    residuals = pixels[:, :, None, :] - layer.codewords  # B, N, K, C
    weights = (layer.scale * residuals.pow(2).sum(-1)).softmax(dim=2)  # B, N, K
    expected = (weights[..., None] * residuals).sum(1)
    with torch.no_grad():
        assert torch.allclose(layer(x), expected, atol=1e-5)


def test_enc_and_cc_heads_keep_the_feature_size():
    torch.manual_seed(0)
    features = [torch.randn(1, 8, 8, 8), torch.randn(1, 8, 4, 4), torch.randn(1, 24, 4, 4),
                torch.randn(1, 32, 4, 6)]
    enc = EncHead(32, 16, 7, in_index=3, num_codes=4).eval()
    cc = CCHead(32, 16, 7, in_index=3).eval()
    with torch.no_grad():
        logits, se_logits = enc(features)
        assert logits.shape == (1, 7, 4, 6) and se_logits.shape == (1, 7)
        assert cc(features).shape == (1, 7, 4, 6)
