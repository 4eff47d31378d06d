"""Shunted-T builder: the README's and paper's printed sizes, the two key/value granularities
of shunted self-attention, input sizes, and a MAC count with no hidden op."""

from __future__ import annotations

import pytest
import torch

from vitbench.measure.counting import count_flops

#: README (OliverRensu/Shunted-Transformer) and paper Table: Shunted-T 11.5 M params.
README_PARAMS_M = 11.5
#: Paper (arXiv:2111.15193) Table: Shunted-T 2.1 GFLOPs at 224².
PAPER_GFLOPS = 2.1
#: Self-measured, pinned against regressions; equal to the authors' own modules.
SELF_MEASURED_PARAMS = 11_553_576
SELF_MEASURED_GMACS = 2.1467


def test_registered(builders):
    assert "shunted_t" in builders


def test_params_match_the_readme(builders):
    with torch.device("meta"):
        model = builders["shunted_t"]()
    params = sum(p.numel() for p in model.parameters())
    assert params == SELF_MEASURED_PARAMS
    # 11.55 M: the README's 11.5 is truncated (the authors' own code builds 11.55 M too).
    assert README_PARAMS_M <= params / 1e6 < README_PARAMS_M + 0.1
    assert model.head.out_features == 1000


def test_forward_224_with_another_head(builders):
    torch.manual_seed(0)
    with torch.no_grad():
        out = builders["shunted_t"](num_classes=10).eval()(torch.randn(1, 3, 224, 224))
    assert out.shape == (1, 10) and torch.isfinite(out).all()


def test_attention_splits_heads_over_two_reduction_rates(builders):
    with torch.device("meta"):
        model = builders["shunted_t"]()
    attns = [stage[0].attn for stage in model.stages]
    assert [a.num_heads for a in attns] == [2, 4, 8, 16]
    # Half the heads see keys reduced R×, the other half R/2× (R = 8, 4, 2).
    assert [(a.coarse.reduce.kernel_size, a.fine.reduce.kernel_size) for a in attns[:3]] == [
        ((8, 8), (4, 4)), ((4, 4), (2, 2)), ((2, 2), (1, 1))]
    # Each branch's linear gives keys and values of half the width; its local conv acts on
    # the values (half the channels, depthwise).
    assert attns[0].coarse.kv.weight.shape == (64, 64)
    assert attns[0].coarse.local_conv.weight.shape == (32, 1, 3, 3)
    # Stage 4 (R = 1): ordinary attention plus a depthwise conv of all the values.
    assert not hasattr(attns[3], "coarse")
    assert attns[3].kv.weight.shape == (1024, 512)
    assert attns[3].local_conv.weight.shape == (512, 1, 3, 3)


def test_sides_must_be_multiples_of_32(builders):
    with pytest.raises(ValueError, match="multiples of 32"):
        builders["shunted_t"](img_size=(224, 200))
    torch.manual_seed(0)
    with torch.no_grad():
        out = builders["shunted_t"](img_size=(192, 256)).eval()(torch.randn(1, 3, 192, 256))
    assert out.shape == (1, 1000) and torch.isfinite(out).all()


def test_gmacs_match_the_paper(builders):
    count = count_flops(builders["shunted_t"]().eval(), (torch.randn(1, 3, 224, 224),),
                        "matmul-only", crosscheck=False)
    assert count.gmacs == pytest.approx(SELF_MEASURED_GMACS, abs=1e-4)
    assert round(count.gmacs, 1) == PAPER_GFLOPS
    assert count.gap_ops == []


@pytest.mark.slow
def test_both_counters_agree_at_224(builders):
    count = count_flops(builders["shunted_t"]().eval(), (torch.randn(1, 3, 224, 224),),
                        "matmul-only")
    assert count.gmacs == pytest.approx(SELF_MEASURED_GMACS, abs=1e-4)
    assert count.counters_agree and count.gap_ops == [] and count.crosscheck_uncounted_ops == {}
