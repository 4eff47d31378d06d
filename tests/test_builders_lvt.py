"""LVT builder: the README's printed backbone size and FLOPs, what the unfold-based CSA may
touch (and that no matmul hides from the counters), and RASA's recursion."""

from __future__ import annotations

import pytest
import torch

from vitbench.build.builders.lvt import ConvSelfAttention, RecursiveAtrousAttention
from vitbench.measure.counting import count_flops

#: README (Chenglin-Yang/LVT): "Backbone Params (M)" 3.4, FLOPs (G) 0.9.
README_BACKBONE_PARAMS_M = 3.4
README_GFLOPS = 0.9
#: Self-measured, pinned (the source's own lvt_cls has the same counts and outputs).
SELF_MEASURED_PARAMS = 5_521_844
SELF_MEASURED_STAGE_PARAMS = 3_429_092
SELF_MEASURED_GMACS = 0.88882


def test_backbone_params_match_readme(builders):
    """The README counts the four stages only: no class-attention layers, no heads."""
    assert "lvt_cls" in builders
    with torch.device("meta"):
        model = builders["lvt_cls"]()
    total = sum(p.numel() for p in model.parameters())
    stages = sum(p.numel() for p in model.stages.parameters())
    assert total == SELF_MEASURED_PARAMS
    assert stages == SELF_MEASURED_STAGE_PARAMS
    assert stages / 1e6 == pytest.approx(README_BACKBONE_PARAMS_M, abs=0.05)


def test_macs_match_readme_and_csa_hides_no_matmul(builders):
    torch.manual_seed(0)
    result = count_flops(builders["lvt_cls"]().eval(), (torch.randn(1, 3, 224, 224),),
                         "matmul-only")
    assert result.counters_agree and not result.gap_ops
    assert not result.crosscheck_uncounted_ops
    assert result.gmacs == pytest.approx(SELF_MEASURED_GMACS, abs=1e-4)
    assert result.gmacs == pytest.approx(README_GFLOPS, abs=0.05)
    # CSA's unfold/fold only move and add values; pooling is not a MAC either.
    assert {"aten::im2col", "aten::col2im", "aten::avg_pool2d"} <= set(result.uncounted_ops)


def test_csa_macs_are_its_linear_grouped_conv_and_attention():
    """On a 56×56×64 map (28² neighbourhoods, 2 heads): attention logits 64→162, the
    position-wise 9·64² map, the (9×9)·(9×32) mix per head, and the projection."""
    torch.manual_seed(0)
    csa = ConvSelfAttention(64, num_heads=2).eval()
    result = count_flops(csa, (torch.randn(1, 56, 56, 64),), "matmul-only")
    windows, pixels = 28 * 28, 56 * 56
    expected = windows * (64 * 162 + 9 * 64 * 64 + 2 * 81 * 32) + pixels * 64 * 64
    assert result.counters_agree and not result.gap_ops
    assert result.gmacs * 1e9 == pytest.approx(expected, rel=1e-9)


def test_csa_is_local_to_the_windows_that_cover_a_pixel():
    """Pixel (0, 0) lies only in the window centred on (0, 0) and in the 2×2 pooling cell
    that weights it; that window folds back onto rows and columns 0..1."""
    torch.manual_seed(0)
    csa = ConvSelfAttention(16, num_heads=2).eval()
    x = torch.randn(1, 8, 8, 16)
    y = x.clone()
    y[0, 0, 0] += 1.0
    with torch.no_grad():
        moved = (csa(x) - csa(y)).abs().amax(dim=-1)[0] > 0
    assert moved[:2, :2].all() and moved.sum() == 4


def test_rasa_runs_one_attention_twice():
    torch.manual_seed(0)
    twice = RecursiveAtrousAttention(32, num_heads=2, sr_ratio=2).eval()
    once = RecursiveAtrousAttention(32, num_heads=2, sr_ratio=2, recursions=1).eval()
    once.load_state_dict(twice.state_dict())  # recursion adds no parameters
    x = torch.randn(1, 8, 8, 32)
    silu = torch.nn.functional.silu
    with torch.no_grad():
        assert torch.allclose(twice(x), silu(once(silu(once(x)) + x)), atol=1e-6)


def test_forward_any_size_and_num_classes(builders):
    torch.manual_seed(0)
    model = builders["lvt_cls"](num_classes=10).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 160, 224))
        tokens = model.forward_features(torch.randn(1, 3, 224, 224))
        expected = model.head(tokens[:, 0]) + 0.5 * model.aux_head(tokens[:, 1:]).amax(dim=1)
        assert torch.allclose(model.forward_head(tokens), expected)
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    assert tokens.shape == (1, 1 + 7 * 7, 256)  # class token + the 7×7 map
