"""ResT / ResTv2 builders: the READMEs' printed sizes, EMSA's two variants (head mixing in
v1, the upsampling branch in v2), input sizes, and MAC counts with no hidden op."""

from __future__ import annotations

import pytest
import torch

from vitbench.build.builders.rest import EfficientAttention
from vitbench.measure.counting import count_flops

V1 = ("rest_lite", "rest_small", "rest_base")
V2 = ("restv2_tiny", "restv2_base")
#: ResT README as first published (wofmanaf/ResT 494ccf8, 2021), which the seed prints too.
README_2021_PARAMS_M = {"rest_lite": 10.5, "rest_small": 13.7, "rest_base": 30.3}
README_2021_GFLOPS = {"rest_lite": 1.4, "rest_small": 1.9, "rest_base": 4.3}
#: ResTv2 rows of the current README (224²).
README_V2_PARAMS_M = {"restv2_tiny": 30, "restv2_base": 56}
README_V2_GFLOPS = {"restv2_tiny": 4.1, "restv2_base": 7.9}
#: Self-measured, pinned against regressions; equal to the authors' own modules.
SELF_MEASURED_PARAMS = {"rest_lite": 10_508_300, "rest_small": 13_679_708,
                        "rest_base": 30_327_052, "restv2_tiny": 30_434_776,
                        "restv2_base": 55_965_208}
SELF_MEASURED_GMACS = {"rest_lite": 1.5331, "rest_small": 2.0934, "rest_base": 4.6259,
                       "restv2_tiny": 4.0835, "restv2_base": 7.8602}


@pytest.fixture(scope="module")
def params(builders) -> dict[str, int]:
    """Parameter count of every variant, built once on the ``meta`` device."""
    counts = {}
    for name in V1 + V2:
        with torch.device("meta"):
            model = builders[name]()
        assert model.head.out_features == 1000
        counts[name] = sum(p.numel() for p in model.parameters())
    return counts


def test_all_variants_registered(builders):
    for name in V1 + V2:
        assert name in builders


@pytest.mark.parametrize("name", V1 + V2)
def test_params_match_the_readmes(params, name):
    assert params[name] == SELF_MEASURED_PARAMS[name]
    if name in README_2021_PARAMS_M:
        assert params[name] / 1e6 == pytest.approx(README_2021_PARAMS_M[name], abs=0.05)
    else:
        assert round(params[name] / 1e6) == README_V2_PARAMS_M[name]


def test_restv2_source_comments_do_not_describe_the_code(params):
    """``rest_v2.py``'s comments say 30.37 M (T) and 55.75 M (B); its code builds more."""
    assert params["restv2_tiny"] / 1e6 - 30.37 > 0.05
    assert params["restv2_base"] / 1e6 - 55.75 > 0.2


@pytest.mark.parametrize("name", ["rest_lite", "restv2_tiny"])
def test_forward_224_with_another_head(builders, name):
    torch.manual_seed(0)
    with torch.no_grad():
        out = builders[name](num_classes=10).eval()(torch.randn(1, 3, 224, 224))
    assert out.shape == (1, 10) and torch.isfinite(out).all()


def test_v1_mixes_heads_wherever_there_is_more_than_one(builders):
    with torch.device("meta"):
        model = builders["rest_lite"]()
    attns = [stage[0].attn for stage in model.stages]
    assert [a.num_heads for a in attns] == [1, 2, 4, 8]
    assert [a.mix_heads for a in attns] == [False, True, True, True]
    assert attns[3].transform_conv.weight.shape == (8, 8, 1, 1)
    assert [a.sr.kernel_size for a in attns[:3]] == [(9, 9), (5, 5), (3, 3)]
    assert not hasattr(attns[3], "sr") and not hasattr(attns[0], "up")


def test_v2_upsamples_values_by_the_reduction_ratio(builders):
    with torch.device("meta"):
        model = builders["restv2_tiny"]()
    attns = [stage[0].attn for stage in model.stages]
    assert not any(a.mix_heads for a in attns)
    # Depthwise 3×3 from C to R²·C channels, then PixelShuffle(R) back to C at full size.
    assert [tuple(a.up[0].weight.shape) for a in attns] == [
        (96 * 64, 1, 3, 3), (192 * 16, 1, 3, 3), (384 * 4, 1, 3, 3), (768, 1, 3, 3)]
    assert [a.up[1].upscale_factor for a in attns] == [8, 4, 2, 1]


def test_upsampling_branch_restores_the_full_token_map():
    torch.manual_seed(0)
    attn = EfficientAttention(dim=32, num_heads=2, sr_ratio=4, version=2, eps=1e-6).eval()
    with torch.no_grad():
        out = attn(torch.randn(1, 16 * 24, 32), (16, 24))
    assert out.shape == (1, 16 * 24, 32) and torch.isfinite(out).all()


def test_v1_takes_any_size_and_v2_needs_multiples_of_32(builders):
    torch.manual_seed(0)
    with torch.no_grad():
        out = builders["rest_lite"]().eval()(torch.randn(1, 3, 200, 248))
    assert out.shape == (1, 1000) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="multiples of 32"):
        builders["restv2_tiny"](img_size=(200, 256))
    with torch.device("meta"):
        builders["restv2_tiny"](img_size=(192, 256))


def test_restv2_tiny_gmacs_match_the_readme(builders):
    """README 4.1 G for ResTv2-T (not the source comment's 3.92): fvcore counts 4.08."""
    count = count_flops(builders["restv2_tiny"]().eval(), (torch.randn(1, 3, 224, 224),),
                        "matmul-only", crosscheck=False)
    assert count.gmacs == pytest.approx(SELF_MEASURED_GMACS["restv2_tiny"], abs=1e-4)
    assert round(count.gmacs, 1) == README_V2_GFLOPS["restv2_tiny"]
    # PixelShuffle only moves elements; it is listed as skipped, not as a missed multiply-add.
    assert count.gap_ops == [] and count.uncounted_ops["aten::pixel_shuffle"] == 11


@pytest.mark.slow
@pytest.mark.parametrize("name", V1 + V2)
def test_matmul_only_gmacs_at_224(builders, name):
    """Self-measured. v2 rounds to its README (4.1 / 7.9); v1 sits 7.6–10.2 % above the 2021
    README's 1.4 / 1.9 / 4.3, a gap left unexplained (see the module docstring)."""
    count = count_flops(builders[name]().eval(), (torch.randn(1, 3, 224, 224),), "matmul-only")
    assert count.gmacs == pytest.approx(SELF_MEASURED_GMACS[name], abs=1e-4)
    assert count.counters_agree
    if name in README_V2_GFLOPS:
        assert round(count.gmacs, 1) == README_V2_GFLOPS[name]
        # One PixelShuffle per block: depths 1-2-6-2 (T) and 1-3-16-3 (B); data movement,
        # listed as skipped, never as a possible gap.
        blocks = {"restv2_tiny": 11, "restv2_base": 23}[name]
        assert count.uncounted_ops["aten::pixel_shuffle"] == blocks
        assert count.gap_ops == [] and count.crosscheck_uncounted_ops == {}
    else:
        assert 1.07 < count.gmacs / README_2021_GFLOPS[name] < 1.11
        assert count.gap_ops == [] and count.crosscheck_uncounted_ops == {}
