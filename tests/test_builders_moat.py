"""tiny-MOAT builders: the paper's and deeplab2 README's sizes, the stage layout, the 2-D
relative position bias as deeplab2 defines it, and the attention counted by both counters."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vitbench.build.builders.moat import MoatBlock, RelativePositionBias2d
from vitbench.measure.counting import count_flops

VARIANTS = ("tiny_moat_0", "tiny_moat_1", "tiny_moat_2")
#: Paper (Table: tiny-MOAT at 224²) and deeplab2 README, with position embedding: params M.
PRINTED_PARAMS_M = {"tiny_moat_0": 3.4, "tiny_moat_1": 5.1, "tiny_moat_2": 9.8}
#: deeplab2 README, checkpoints *without* position embedding: params M.
README_NO_PE_PARAMS_M = {"tiny_moat_0": 3.3, "tiny_moat_1": 5.1, "tiny_moat_2": 9.7}
#: Paper: GFLOPs at 224².
PAPER_GFLOPS = {"tiny_moat_0": 0.8, "tiny_moat_1": 1.2, "tiny_moat_2": 2.3}
#: Self-measured, pinned against regressions.
SELF_MEASURED_PARAMS = {"tiny_moat_0": 3_355_348, "tiny_moat_1": 5_122_895,
                        "tiny_moat_2": 9_772_741}
#: Self-measured at 224² under matmul-only.
SELF_MEASURED_GMACS = {"tiny_moat_0": 0.7751}


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", VARIANTS)
def test_params_match_the_paper_and_readme(builders, name):
    with torch.device("meta"):
        model = builders[name]()
    params = _params(model)
    assert params == SELF_MEASURED_PARAMS[name]
    assert round(params / 1e6, 1) == PRINTED_PARAMS_M[name]
    # Without the relative position tables the count is the README's "no PE" row.
    tables = sum(m.table.numel() for m in model.modules()
                 if isinstance(m, RelativePositionBias2d))
    assert round((params - tables) / 1e6, 1) == README_NO_PE_PARAMS_M[name]


def test_stage_layout(builders):
    """Every stage opens with a stride-2 block; stages 3-4 are MOAT blocks with head size 32
    and position tables for a 14×14 and a 7×7 grid."""
    with torch.device("meta"):
        model = builders["tiny_moat_0"]()
    assert [len(stage) for stage in model.stages] == [2, 3, 7, 2]
    for index, stage in enumerate(model.stages):
        first = stage[0].mbconv if isinstance(stage[0], MoatBlock) else stage[0]
        assert first.conv2_kxk.stride == (2, 2)
        assert all(isinstance(block, MoatBlock) == (index >= 2) for block in stage)
    assert [model.stages[i][0].attn.num_heads for i in (2, 3)] == [4, 8]  # 128/32, 256/32
    assert [tuple(model.stages[i][0].attn.rel_pos.table.shape[1:]) for i in (2, 3)] == [
        (27, 27), (13, 13)]
    # MBConv blocks squeeze-excite to a quarter of their output width; MOAT blocks have no SE.
    assert model.stages[1][0].se.fc1.out_channels == 64 // 4
    assert model.stages[2][0].mbconv.se is None


def test_relative_position_bias_reads_the_table_at_key_minus_query():
    """deeplab2's one-hot lookup: query (i, j), key (x, y) read
    ``table[n, x - i + H - 1, y - j + W - 1]``."""
    torch.manual_seed(0)
    module = RelativePositionBias2d(num_heads=2, size=3)
    bias = module(3, 3)
    assert bias.shape == (2, 9, 9)
    for i in range(3):
        for j in range(3):
            for x in range(3):
                for y in range(3):
                    expected = module.table[:, x - i + 2, y - j + 2]
                    assert torch.equal(bias[:, i * 3 + j, x * 3 + y], expected)


def test_relative_position_bias_is_resized_to_other_maps():
    """Other map sizes resize the table (the parameter count stays); the centre (offset 0)
    stays where it is."""
    torch.manual_seed(0)
    module = RelativePositionBias2d(num_heads=1, size=3)
    bias = module(4, 5)
    assert bias.shape == (1, 20, 20)
    assert module.table.numel() == 25
    diagonal = bias[0].diagonal()
    assert torch.allclose(diagonal, diagonal[0].expand_as(diagonal))


def test_one_moat_block_is_counted_whole_by_both_counters():
    """A stride-1 MOAT block on a 14×14 map: the convs, q/k/v/output projections and both
    attention products (the additive bias adds no MACs)."""
    torch.manual_seed(0)
    dim, side = 64, 14
    tokens = side * side
    block = MoatBlock(dim, dim, stride=1, head_dim=32, position_size=14).eval()
    count = count_flops(block, (torch.randn(1, dim, side, side),), "matmul-only")
    mid = 4 * dim
    mbconv = tokens * (dim * mid + 9 * mid + mid * dim)
    attention = tokens * 4 * dim * dim + 2 * tokens * tokens * dim
    assert count.gmacs * 1e9 == pytest.approx(mbconv + attention, abs=0.5)
    assert count.counters_agree and count.gap_ops == []
    assert count.crosscheck_uncounted_ops == {}


def test_forward_sizes_and_num_classes(builders):
    torch.manual_seed(0)
    with torch.no_grad():
        # 96² leaves 6×6 and 3×3 maps in the attention stages: the tables are resized.
        out = builders["tiny_moat_0"](num_classes=10).eval()(torch.randn(2, 3, 96, 128))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


@pytest.mark.slow
def test_tiny_moat_0_macs_match_the_paper(builders):
    count = count_flops(builders["tiny_moat_0"]().eval(), (torch.randn(1, 3, 224, 224),),
                        "matmul-only")
    assert count.gmacs == pytest.approx(SELF_MEASURED_GMACS["tiny_moat_0"], abs=1e-4)
    assert round(count.gmacs, 1) == PAPER_GFLOPS["tiny_moat_0"]
    assert count.counters_agree and count.gap_ops == []
    assert count.crosscheck_uncounted_ops == {}
