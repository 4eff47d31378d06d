"""BiFormer builders: the README's printed sizes, what bi-level routing lets a region see, and
MAC counts in which ``topk`` and ``gather`` hide no multiply and the routing matmul counts."""

from __future__ import annotations

import pytest
import torch

from vitbench.build.builders.biformer import BiLevelRoutingAttention, GlobalAttentionLePE
from vitbench.measure.counting import count_flops

#: README (``rayleizhu/BiFormer``), ImageNet-1K at 224²: params (M), GFLOPs.
README = {"biformer_tiny": (13.1, 2.2), "biformer_small": (25.5, 4.5)}
#: Self-measured, pinned against regressions: the same counts as the source's own ``BiFormer``
#: (its state dict loads into these models key for key).
SELF_MEASURED_PARAMS = {"biformer_tiny": 13_142_760, "biformer_small": 25_536_232}
SELF_MEASURED_GMACS = {"biformer_tiny": 2.2159}


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(SELF_MEASURED_PARAMS))
def test_params_match_the_readme(builders, name):
    with torch.device("meta"):
        params = _params(builders[name]())
    assert params == SELF_MEASURED_PARAMS[name]
    assert round(params / 1e6, 1) == README[name][0]


def test_forward_224_and_num_classes(builders):
    torch.manual_seed(0)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert builders["biformer_tiny"]().eval()(x).shape == (1, 1000)
        assert builders["biformer_tiny"](num_classes=10).eval()(x).shape == (1, 10)


def test_stage_layout(builders):
    """Top-k 1-4-16 routing in heads of 32 channels; stage 4 is global attention, 8 heads."""
    with torch.device("meta"):
        model = builders["biformer_tiny"]()
    assert [len(stage) for stage in model.stages] == [2, 2, 8, 2]
    attns = [stage[0].attn for stage in model.stages]
    assert [a.topk for a in attns[:3]] == [1, 4, 16]
    assert [a.num_heads for a in attns[:3]] == [2, 4, 8]
    assert isinstance(attns[3], GlobalAttentionLePE) and attns[3].num_heads == 8
    assert attns[3].qkv.bias is None


def test_a_region_sees_only_its_routed_regions():
    """28×28 map, 7×7 regions of 4×4 tokens, top-4: region 0's outputs move with a token of
    a routed region and ignore one of an unrouted region (both far enough from region 0 that
    the 5×5 LePE conv cannot reach it; the nudge is small enough to keep the routing)."""
    torch.manual_seed(0)
    attn = BiLevelRoutingAttention(16, num_heads=2, topk=4).double().eval()
    x = torch.randn(1, 28, 28, 16, dtype=torch.float64)

    def to_regions(m):
        return m.reshape(1, 7, 4, 7, 4, 16).transpose(2, 3).reshape(1, 49, 16, 16)

    def routes(t):
        q, k, _ = attn.qkv(t).chunk(3, dim=-1)
        return attn.route(to_regions(q), to_regions(k))[0, 0].tolist()

    def region_0_moves(region):
        row, col = divmod(region, 7)
        y = x.clone()
        y[0, row * 4 + 2, col * 4 + 2] += 1e-3
        with torch.no_grad():
            assert routes(y) == routed  # the nudge leaves the routing as it was
            return bool((attn(x) - attn(y))[0, :4, :4].abs().max() > 0)

    with torch.no_grad():
        routed = routes(x)
    far = [r for r in range(49) if max(divmod(r, 7)) >= 2]  # ≥ 6 tokens from region 0
    inside = [r for r in far if r in routed]
    outside = [r for r in far if r not in routed]
    assert inside and outside
    assert all(region_0_moves(r) for r in inside)
    assert not any(region_0_moves(r) for r in outside)


def test_inputs_that_are_not_whole_regions_are_padded(builders):
    """At 256² the maps are 64, 32, 16 tokens a side: padded to whole 7×7 grids, cropped."""
    torch.manual_seed(0)
    model = builders["biformer_tiny"]().eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 256, 256))
    assert out.shape == (1, 1000) and torch.isfinite(out).all()


class _Tokens(torch.nn.Module):
    def __init__(self, attn: torch.nn.Module):
        super().__init__()
        self.attn = attn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x)


def test_routing_attention_macs_are_the_closed_form_from_both_counters():
    """qkv, LePE, the 49×49 region routing matmul, attention over top-k gathered regions and
    the output linear: ``topk`` and ``gather`` carry nothing, the routing matmul counts."""
    dim, size, topk = 32, 14, 4
    tokens = (size // 7) ** 2
    attn = BiLevelRoutingAttention(dim, num_heads=1, topk=topk).eval()
    count = count_flops(_Tokens(attn), (torch.randn(1, size, size, dim),), "matmul-only")
    pixels = size * size
    routing = 49 * 49 * dim
    attention = 49 * tokens * topk * tokens * 2 * dim
    expected = pixels * dim * 3 * dim + pixels * dim * 25 + routing + attention + pixels * dim * dim
    assert count.gmacs * 1e9 == expected
    assert count.counters_agree and count.gap_ops == [] and count.crosscheck_uncounted_ops == {}
    assert "aten::topk" in count.uncounted_ops  # skipped by fvcore, and rightly so


@pytest.mark.slow
def test_matmul_only_gmacs_at_224(builders):
    """Self-measured 2.216 rounds to the README's and the seed's 2.2."""
    count = count_flops(builders["biformer_tiny"]().eval(), (torch.randn(1, 3, 224, 224),),
                        "matmul-only")
    assert count.gmacs == pytest.approx(SELF_MEASURED_GMACS["biformer_tiny"], abs=1e-4)
    assert round(count.gmacs, 1) == README["biformer_tiny"][1]
    assert count.counters_agree and count.gap_ops == [] and count.crosscheck_uncounted_ops == {}
