"""LIT / LITv2 builders: the READMEs' printed sizes, the MACs in closed form (checked against
both counters at reduced inputs, deformable convs included), HiLo's head split, and the
deformable patch merging starting as a plain strided conv."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vitbench.build.builders.lit import DeformablePatchMerging, HiLoAttention
from vitbench.measure.counting import count_flops

NAMES = ("lit_ti", "lit_s", "litv2_s", "litv2_m")
#: README (paper) params and GFLOPs at 224²: ziplab/LIT (LIT-Ti, LIT-S), ziplab/LITv2.
README_PARAMS_M = {"lit_ti": 19, "lit_s": 27, "litv2_s": 28, "litv2_m": 49}
README_GFLOPS = {"lit_ti": 3.6, "lit_s": 4.1, "litv2_s": 3.7, "litv2_m": 7.5}
#: Self-measured at 224², equal to the authors' own models (their code, same configuration).
SELF_MEASURED_PARAMS = {"lit_ti": 19_886_272, "lit_s": 27_973_720, "litv2_s": 27_844_000,
                        "litv2_m": 48_830_368}
SELF_MEASURED_GMACS = {"lit_ti": 3.6137, "lit_s": 4.0766, "litv2_s": 3.7236, "litv2_m": 7.4630}


def params_on_meta(builder, **kwargs) -> int:
    with torch.device("meta"):
        model = builder(**kwargs)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_params_match_the_readmes(builders, name):
    params = params_on_meta(builders[name])
    assert params == SELF_MEASURED_PARAMS[name]
    if name.startswith("litv2"):
        assert round(params / 1e6) == README_PARAMS_M[name]
    else:
        # LIT's README truncates: 19.89 M prints as 19, 27.97 M as 27.
        assert int(params / 1e6) == README_PARAMS_M[name]


def test_lit_s_relative_position_tables_follow_the_input(builders):
    """LIT-S's stage-3/4 bias tables span the whole map: (2H-1)(2W-1) entries per head."""
    grow = params_on_meta(builders["lit_s"], img_size=256) - SELF_MEASURED_PARAMS["lit_s"]
    stage3 = 6 * 12 * ((2 * 16 - 1) ** 2 - (2 * 14 - 1) ** 2)
    stage4 = 2 * 24 * ((2 * 8 - 1) ** 2 - (2 * 7 - 1) ** 2)
    assert grow == stage3 + stage4


# --- MACs in closed form ---------------------------------------------------------------------

def _merge(tokens_out, d_in, d_out):
    """2×2 stride-2 offset conv (8 channels) + the deformable conv, counted as a plain conv."""
    return tokens_out * 4 * d_in * (8 + d_out)


def _global_attention(n, d):
    return 4 * n * d * d + 2 * n * n * d  # qkv + proj, Q·Kᵀ + A·V


def lit_ti_macs(h, w, classes=1000):
    dims, ratios, depths = (64, 128, 320, 512), (8, 8, 4, 4), (3, 4, 6, 3)
    tokens = [(h >> (i + 2)) * (w >> (i + 2)) for i in range(4)]
    total = tokens[0] * 3 * 16 * dims[0] + dims[3] * classes
    for i in range(4):
        n, d = tokens[i] + (i == 3), dims[i]  # the class token joins in stage 4
        block = 2 * n * d * ratios[i] * d + (_global_attention(n, d) if i >= 2 else 0)
        total += depths[i] * block + (_merge(tokens[i + 1], d, dims[i + 1]) if i < 3 else 0)
    return total


def lit_macs(h, w, depths, v2, classes=1000):
    """LIT-S (``v2`` False) and LITv2 (depthwise 3×3 in every MLP, HiLo α 0.9, windows 2/1)."""
    dims, heads = (96, 192, 384, 768), (3, 6, 12, 24)
    tokens = [(h >> (i + 2)) * (w >> (i + 2)) for i in range(4)]
    total = tokens[0] * 3 * 16 * dims[0] + dims[3] * classes
    for i in range(4):
        n, d = tokens[i], dims[i]
        block = 8 * n * d * d + (9 * n * 4 * d if v2 else 0)
        if i == 2 and v2:  # HiLo, s = 2: 10 Lo-Fi heads and 2 Hi-Fi heads of 32 channels
            lo, hi, pooled = 10 * 32, 2 * 32, n // 4
            block += n * d * 3 * hi + 2 * n * 4 * hi + n * hi * hi  # windows of 2×2
            block += n * d * lo + pooled * d * 2 * lo + 2 * n * pooled * lo + n * lo * lo
        elif i >= 2:  # global attention (HiLo with s = 1 is plain attention)
            block += _global_attention(n, d)
        total += depths[i] * block + (_merge(tokens[i + 1], d, dims[i + 1]) if i < 3 else 0)
    return total


CLOSED_FORM = {
    "lit_ti": lit_ti_macs,
    "lit_s": lambda h, w: lit_macs(h, w, (2, 2, 6, 2), v2=False),
    "litv2_s": lambda h, w: lit_macs(h, w, (2, 2, 6, 2), v2=True),
    "litv2_m": lambda h, w: lit_macs(h, w, (2, 2, 18, 2), v2=True),
}


@pytest.mark.parametrize("name,size", [("lit_ti", (64, 96)), ("lit_s", (64, 64)),
                                       ("litv2_s", (64, 96)), ("litv2_s", (128, 64))])
def test_both_counters_equal_the_closed_form_at_reduced_inputs(builders, name, size):
    model = builders[name](img_size=size).eval()
    count = count_flops(model, (torch.randn(1, 3, *size),), "matmul-only")
    assert count.gmacs * 1e9 == CLOSED_FORM[name](*size)
    assert count.crosscheck_gmacs == count.gmacs
    assert count.gap_ops == [] and count.crosscheck_uncounted_ops == {}
    assert "torchvision::deform_conv2d" not in count.uncounted_ops  # counted by the handle


@pytest.mark.parametrize("name", NAMES)
def test_closed_form_at_224_matches_the_readmes(name):
    gmacs = CLOSED_FORM[name](224, 224) / 1e9
    assert gmacs == pytest.approx(SELF_MEASURED_GMACS[name], abs=1e-4)
    assert round(gmacs, 1) == README_GFLOPS[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lit_ti", "litv2_m"])
def test_count_at_224(builders, name):
    count = count_flops(builders[name]().eval(), (torch.randn(1, 3, 224, 224),), "matmul-only")
    assert count.gmacs * 1e9 == CLOSED_FORM[name](224, 224)
    assert count.counters_agree and count.gap_ops == [] and count.crosscheck_uncounted_ops == {}


# --- parts -------------------------------------------------------------------------------------

def test_hilo_splits_heads_by_alpha(builders):
    model = builders["litv2_s"]().eval()
    stage3, stage4 = model.stages[2][0].attn, model.stages[3][0].attn
    assert (stage3.lo_heads, stage3.hi_heads) == (10, 2)  # int(0.9 · 12) Lo-Fi heads
    assert (stage4.lo_heads, stage4.hi_heads) == (24, 0)  # window 1: plain attention


def test_hilo_with_one_window_over_the_map_is_global_attention():
    """Hi-Fi heads alone, with the window as large as the map, attend globally."""
    torch.manual_seed(0)
    hilo = HiLoAttention(dim=16, num_heads=2, window_size=4, alpha=0.0).eval()
    x = torch.randn(1, 16, 16)
    q, k, v = hilo.h_qkv(x).reshape(1, 16, 3, 2, 8).permute(2, 0, 3, 1, 4)
    expected = hilo.h_proj(nn.functional.scaled_dot_product_attention(q, k, v)
                           .transpose(1, 2).reshape(1, 16, 16))
    torch.testing.assert_close(hilo(x, (4, 4)), expected)


def test_deformable_merging_starts_as_a_plain_strided_conv():
    torch.manual_seed(0)
    merge = DeformablePatchMerging(8, 16).eval()
    conv = nn.Conv2d(8, 16, 2, stride=2)
    with torch.no_grad():
        conv.weight.copy_(merge.dconv.weight)
        conv.bias.copy_(merge.dconv.bias)
    x = torch.randn(1, 8, 8, 8)
    torch.testing.assert_close(merge(x), merge.act(merge.norm(conv(x))))


def test_sides_must_be_multiples_of_32(builders):
    with pytest.raises(ValueError, match="multiples of 32"):
        builders["litv2_s"](img_size=(224, 200))
