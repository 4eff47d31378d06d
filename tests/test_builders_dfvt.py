"""DFvT builders: the README's printed sizes, the stage layout, DANE fusion and MAC counts
with no hidden op."""

from __future__ import annotations

import pytest
import torch

from vitbench.build.builders.dfvt import DANE, DFvT
from vitbench.measure.counting import count_flops

#: README (ginobilinie/DFvT): params (M), FLOPs (G).
README = {"dfvt_tiny": (4.0, 0.3), "dfvt_small": (11.2, 0.8)}
#: Self-measured, pinned (the source's own DFvT has the same counts and outputs).
SELF_MEASURED_PARAMS = {"dfvt_tiny": 3_967_627, "dfvt_small": 11_225_485}
SELF_MEASURED_GMACS_TINY = 0.30605
#: The repository's analytic ``DFvT.flops()`` (what the README prints), self-evaluated.
SOURCE_FLOPS_FN_GMACS = {"dfvt_tiny": 0.2714, "dfvt_small": 0.8143}


@pytest.mark.parametrize("name", sorted(README))
def test_params_match_readme(builders, name):
    assert name in builders
    with torch.device("meta"):
        params = sum(p.numel() for p in builders[name]().parameters())
    assert params == SELF_MEASURED_PARAMS[name]
    assert params / 1e6 == pytest.approx(README[name][0], abs=0.05)


def test_tiny_macs_match_readme_with_nothing_uncounted(builders):
    torch.manual_seed(0)
    result = count_flops(builders["dfvt_tiny"]().eval(), (torch.randn(1, 3, 224, 224),),
                         "matmul-only")
    assert result.counters_agree and not result.gap_ops
    assert not result.crosscheck_uncounted_ops
    assert result.gmacs == pytest.approx(SELF_MEASURED_GMACS_TINY, abs=1e-4)
    assert result.gmacs == pytest.approx(README["dfvt_tiny"][1], abs=0.05)


def test_readme_flops_miss_the_stem_at_full_resolution():
    """The source's ``flops()`` counts both stem convs on a 16× smaller area; adding back
    what it misses turns its estimate into the counted MACs' stem share."""
    embed, side = 48, 56  # DFvT-T: token map 56² (stride 4)
    true_stem = (2 * side) ** 2 * (embed // 2) * 3 * 9 + side ** 2 * embed * (embed // 2) * 9
    source_stem = (side // 2) ** 2 * (embed // 2) * 3 * 9 + (side // 4) ** 2 * embed * (embed // 2) * 9
    missed = (true_stem - source_stem) / 1e9
    assert missed == pytest.approx(0.0381, abs=1e-4)
    # The rest of the gap is the source's norm/DANE terms, which matmul-only does not count.
    assert SELF_MEASURED_GMACS_TINY - SOURCE_FLOPS_FN_GMACS["dfvt_tiny"] == pytest.approx(
        missed, abs=0.01)


def test_forward_and_num_classes(builders):
    torch.manual_seed(0)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert builders["dfvt_tiny"]().eval()(x).shape == (1, 1000)
        assert builders["dfvt_tiny"](num_classes=10).eval()(x).shape == (1, 10)


def test_stage_maps_and_widths(builders):
    model = builders["dfvt_tiny"]()
    assert [stage[0].resolution for stage in model.stages] == [(28, 28), (14, 14), (7, 7), (7, 7)]
    assert [len(stage) for stage in model.stages] == [1, 1, 2, 1]
    assert [m[1].out_features for m in model.merges] == [96, 192, 384]  # widen only
    assert model.num_features == 384
    assert all(block.shift == 0 for stage in model.stages for block in stage)  # 7×7 maps
    assert model.stages[0][0].mlp.fc1.out_features == 4 * 48
    assert builders["dfvt_small"]().stages[0][0].mlp.fc1.out_features == 2 * 96


def test_odd_blocks_shift_where_the_map_exceeds_the_window():
    model = DFvT(48, (2, 2, 2, 2), (3, 6, 12, 24), 4.0, img_size=448)
    assert [[b.shift for b in stage] for stage in model.stages] == [[0, 3], [0, 3], [0, 3],
                                                                    [0, 3]]
    with torch.no_grad():
        out = model.eval()(torch.randn(1, 3, 448, 448))
        half = model.to(torch.bfloat16)(torch.randn(1, 3, 448, 448, dtype=torch.bfloat16))
    assert out.shape == (1, 1000) and torch.isfinite(out).all()
    assert half.dtype == torch.bfloat16 and torch.isfinite(half).all()  # the shift mask too


def test_non_square_input_and_sizes_that_do_not_tile(builders):
    with torch.no_grad():
        out = builders["dfvt_tiny"](img_size=(224, 448)).eval()(torch.randn(1, 3, 224, 448))
    assert out.shape == (1, 1000)
    with pytest.raises(ValueError, match="windows"):
        builders["dfvt_tiny"](img_size=256)  # 32×32 tokens: no whole 7-windows


def test_dane_blends_conv_features_into_tokens():
    dane = DANE(32)
    tokens, conv = torch.randn(2, 49, 32), torch.randn(2, 49, 32)
    with torch.no_grad():
        out = dane(tokens, conv)
        gap = (out - tokens) / (conv - tokens)  # the mask m, per element
        assert ((gap > 0) & (gap < 1)).all()
        for module in dane.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.zero_()
        assert torch.allclose(dane(tokens, conv), (tokens + conv) / 2)  # m = σ(0) = ½
