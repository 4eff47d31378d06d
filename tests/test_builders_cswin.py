"""CSWin Transformer builders: the README's printed sizes, the cross-shaped stripe mechanics
(each half of the heads sees only its stripe, LePE included) and MAC counts with no hidden op."""

from __future__ import annotations

import pytest
import torch

from vitbench.build.builders.cswin import LePEStripeAttention
from vitbench.measure.counting import count_flops

#: README (``microsoft/CSWin-Transformer``), ImageNet-1K at 224²: params (M), GFLOPs.
README = {"cswin_tiny": (23, 4.3), "cswin_small": (35, 6.9), "cswin_base": (78, 15.0)}
#: Self-measured, pinned against regressions: the same counts as the source's own
#: ``CSWinTransformer`` (its state dict loads into these models key for key).
SELF_MEASURED_PARAMS = {"cswin_tiny": 22_320_552, "cswin_small": 34_643_304,
                        "cswin_base": 77_382_184}
SELF_MEASURED_GMACS = {"cswin_tiny": 4.3242, "cswin_small": 6.8007}


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(SELF_MEASURED_PARAMS))
def test_params_against_the_readme(builders, name):
    with torch.device("meta"):
        params = _params(builders[name]())
    assert params == SELF_MEASURED_PARAMS[name]
    if name == "cswin_small":
        assert round(params / 1e6) == README[name][0]  # 34.64 → 35, the printed precision
    else:
        # The README prints 23 M and 78 M for code that builds 22.32 M and 77.38 M: above the
        # count by 0.6-0.7 M, never below it.
        assert 0 < README[name][0] - params / 1e6 < 0.7


def test_forward_224_and_num_classes(builders):
    torch.manual_seed(0)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert builders["cswin_tiny"]().eval()(x).shape == (1, 1000)
        assert builders["cswin_tiny"](num_classes=10).eval()(x).shape == (1, 10)


def test_only_the_last_stage_or_a_single_stripe_attends_over_the_whole_map(builders):
    def branches(model):
        return [len(stage[0].attns) for stage in model.stages]

    with torch.device("meta"):
        assert branches(builders["cswin_tiny"]()) == [2, 2, 2, 1]
        # At 112² stage 3 is 7×7, one 7-wide stripe: full attention, as in the source.
        assert branches(builders["cswin_tiny"](img_size=112)) == [2, 2, 1, 1]
        model = builders["cswin_small"]()
    assert [len(stage) for stage in model.stages] == [2, 4, 32, 2]
    assert [stage[0].attns[0].width for stage in model.stages] == [1, 2, 7, 7]
    assert [stage[0].attns[0].num_heads for stage in model.stages] == [1, 2, 4, 16]


@pytest.mark.parametrize("orientation, axis", [("vertical", 2), ("horizontal", 1)])
def test_a_stripe_sees_only_its_own_stripe(orientation, axis):
    """A 14×14 map in 7-wide stripes: a change in stripe 2 leaves stripe 1's outputs alone
    (the LePE conv is zero-padded at the stripe border, so it does not leak either)."""
    torch.manual_seed(0)
    attn = LePEStripeAttention(16, num_heads=2, orientation=orientation, width=7).eval()
    x = torch.randn(1, 14, 14, 16)
    y = x.clone()
    y[0, 7, 7] += 1.0  # first row and column of the second stripe
    with torch.no_grad():
        diff = (attn(x, x, x) - attn(y, y, y)).abs().amax(dim=-1)[0]
    first, second = diff.narrow(axis - 1, 0, 7), diff.narrow(axis - 1, 7, 7)
    assert first.max() == 0
    assert (second > 0).all()  # every token of the stripe attends to the changed one


def test_inputs_that_are_not_whole_stripes_are_padded(builders):
    """At 256² stage 3 is 16×16, no multiple of 7: padded as the source's segmentation
    backbone pads, then cropped."""
    torch.manual_seed(0)
    model = builders["cswin_tiny"](img_size=256).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 256, 256))
    assert out.shape == (1, 1000) and torch.isfinite(out).all()


@pytest.mark.parametrize("orientation, windows, tokens",
                         [("vertical", 2, 98), ("horizontal", 2, 98), ("full", 1, 196)])
def test_stripe_attention_macs_are_the_closed_form_from_both_counters(orientation, windows,
                                                                      tokens):
    """q·kᵀ and attn·v per stripe plus the 3×3 depthwise LePE conv, nothing hidden."""
    dim = 32
    attn = LePEStripeAttention(dim, num_heads=2, orientation=orientation, width=7).eval()
    q = torch.randn(1, 14, 14, dim)
    count = count_flops(_QKV(attn), (q,), "matmul-only")
    assert count.gmacs * 1e9 == windows * 2 * tokens * tokens * dim + 14 * 14 * dim * 9
    assert count.counters_agree and count.gap_ops == [] and count.crosscheck_uncounted_ops == {}


class _QKV(torch.nn.Module):
    """Feeds one tensor as q, k and v (the counters take positional inputs)."""

    def __init__(self, attn: torch.nn.Module):
        super().__init__()
        self.attn = attn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x, x, x)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SELF_MEASURED_GMACS))
def test_matmul_only_gmacs_at_224(builders, name):
    """Self-measured: CSWin-T rounds to its README's 4.3; CSWin-S's 6.80 stays under the
    README's 6.9 (fvcore's convention, norms counted, gives 6.83: no counter we know of
    reaches 6.9). The seed's 4.5 for CSWin-T is neither."""
    count = count_flops(builders[name]().eval(), (torch.randn(1, 3, 224, 224),), "matmul-only")
    assert count.gmacs == pytest.approx(SELF_MEASURED_GMACS[name], abs=1e-4)
    assert count.counters_agree and count.gap_ops == [] and count.crosscheck_uncounted_ops == {}
    if name == "cswin_tiny":
        assert round(count.gmacs, 1) == README[name][1]
    else:
        assert README[name][1] - count.gmacs == pytest.approx(0.1, abs=0.01)
