"""DAT builders (CVPR 2022 version): the paper's sizes, the MACs in closed form (checked
against both counters at reduced inputs), and what the counters make of the two
``grid_sample`` calls of deformable attention."""

from __future__ import annotations

import pytest
import torch

from vitbench.build.builders.dat import DeformableAttention
from vitbench.measure.counting import count_flops

NAMES = ("dat_tiny", "dat_small")
#: Paper (CVPR 2022), as Papers with Code lists it: DAT-S 50 M, 9.0 GFLOPs at 224². The
#: source's README prints no sizes; the seed prints DAT-T as 29 M, 4.5 G.
PAPER_DAT_S = {"params_m": 50, "gflops": 9.0}
#: Self-measured at 224², equal to the authors' own model at the CVPR2022 tag.
SELF_MEASURED_PARAMS = {"dat_tiny": 28_319_138, "dat_small": 49_700_402}
SELF_MEASURED_GMACS = {"dat_tiny": 4.5635, "dat_small": 8.9587}


def params_on_meta(builder, **kwargs) -> int:
    with torch.device("meta"):
        model = builder(**kwargs)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_params(builders, name):
    assert params_on_meta(builders[name]) == SELF_MEASURED_PARAMS[name]


def test_dat_s_matches_the_paper():
    assert round(SELF_MEASURED_PARAMS["dat_small"] / 1e6) == PAPER_DAT_S["params_m"]
    assert round(dat_macs(224, 224, (2, 2, 18, 2)) / 1e9, 1) == PAPER_DAT_S["gflops"]


def test_relative_position_tables_follow_the_input(builders):
    """Each deformable block's bias table is (2H-1)(2W-1) per head: 3 blocks in stage 3
    (12 heads), 1 in stage 4 (24 heads); Swin's window tables do not change."""
    grow = params_on_meta(builders["dat_tiny"], img_size=256) - SELF_MEASURED_PARAMS["dat_tiny"]
    assert grow == 3 * 12 * (31 ** 2 - 27 ** 2) + 24 * (15 ** 2 - 13 ** 2)


# --- MACs in closed form ---------------------------------------------------------------------

def dat_macs(h, w, depths, classes=1000):
    """Stem, window blocks (each token meets its window's tokens), deformable blocks (each
    query meets H·W sampled keys; offset net: depthwise k×k + 1×1 to 2 channels per group),
    2×2 stride-2 downsampling, head. ``grid_sample`` is interpolation: not counted."""
    dims, offset_kernels = (96, 192, 384, 768), (9, 7, 5, 3)
    maps = [(h // 4, w // 4)]
    for _ in range(3):
        maps.append((maps[-1][0] // 2, maps[-1][1] // 2))
    total = maps[0][0] * maps[0][1] * 3 * 16 * dims[0] + dims[3] * classes
    for i, depth in enumerate(depths):
        (mh, mw), d = maps[i], dims[i]
        n, window = mh * mw, min(7, mh) * min(7, mw)
        mlp = 8 * n * d * d
        local = 4 * n * d * d + 2 * n * window * d + mlp
        deformable = 4 * n * d * d + 2 * n * n * d + n * d * (offset_kernels[i] ** 2 + 2) + mlp
        blocks = [local if j % 2 == 0 or i < 2 else deformable for j in range(depth)]
        total += sum(blocks)
        if i < 3:
            total += maps[i + 1][0] * maps[i + 1][1] * 4 * d * dims[i + 1]
    return total


@pytest.mark.parametrize("size", [(56, 56), (56, 112)])
def test_both_counters_equal_the_closed_form_at_reduced_inputs(builders, size):
    """56 px: maps 14, 7, 3, 1, every one a whole number of windows (no padding)."""
    model = builders["dat_tiny"](img_size=size).eval()
    count = count_flops(model, (torch.randn(1, 3, *size),), "matmul-only")
    assert count.gmacs * 1e9 == dat_macs(*size, (2, 2, 6, 2))
    assert count.crosscheck_gmacs == count.gmacs
    assert count.gap_ops == [] and count.crosscheck_uncounted_ops == {}


@pytest.mark.parametrize("name,depths", [("dat_tiny", (2, 2, 6, 2)), ("dat_small", (2, 2, 18, 2))])
def test_closed_form_at_224(name, depths):
    assert dat_macs(224, 224, depths) / 1e9 == pytest.approx(SELF_MEASURED_GMACS[name], abs=1e-4)


@pytest.mark.slow
def test_count_at_224(builders):
    count = count_flops(builders["dat_tiny"]().eval(), (torch.randn(1, 3, 224, 224),),
                        "matmul-only")
    assert count.gmacs * 1e9 == dat_macs(224, 224, (2, 2, 6, 2))
    assert count.counters_agree and count.gap_ops == [] and count.crosscheck_uncounted_ops == {}


def test_grid_sample_counts_only_under_the_fvcore_convention():
    """Deformable attention samples C values per key point and heads·Nq·Ns bias values;
    fvcore's convention adds 4 per sampled value, plus its LayerNorm (5 per element) in the
    offset network; matmul-only adds neither. Both counters agree under both."""
    dim, heads, groups, (h, w) = 32, 4, 2, (6, 5)
    n = h * w
    attention = DeformableAttention(dim, heads, groups, (h, w), offset_kernel=3).eval()
    x = (torch.randn(1, h, w, dim),)
    matmul_only = count_flops(attention, x, "matmul-only")
    fvcore = count_flops(attention, x, "fvcore")
    assert matmul_only.gmacs * 1e9 == 4 * n * dim * dim + 2 * n * n * dim + n * dim * (9 + 2)
    sampling = 4 * dim * n + 4 * heads * n * n
    assert (fvcore.gmacs - matmul_only.gmacs) * 1e9 == pytest.approx(sampling + 5 * dim * n)
    for count in (matmul_only, fvcore):
        assert count.counters_agree and count.gap_ops == [] and count.crosscheck_uncounted_ops == {}
    assert fvcore.uncounted_ops.get("aten::grid_sampler") is None  # counted by fvcore's handle
