"""STM-Evaluation micro builders (U-Swin, U-ConvNeXt, U-HaloNet): the README's and the seed's
printed sizes, the shifted-window and halo mechanics, and MAC counts with no hidden op."""

from __future__ import annotations

import pytest
import torch

from vitbench.build.builders import load_builders
from vitbench.build.builders.stm_micro import (HaloAttention, SHIFT_MASK_VALUE, SwinMixerBlock,
                                               shifted_window_mask)
from vitbench.measure.counting import count_flops

MICRO = ("stm_swin_micro", "stm_convnext_micro", "stm_halonet_micro")
#: README (``OpenGVLab/STM-Evaluation``): "Micro (~4.5M)" for every mixer.
README_PARAMS_M = 4.5
#: Seed print (EMSNet/MAT talks): 4.4 M for all three.
SEED_PARAMS_M = 4.4
#: Self-measured, pinned against regressions (identical to the source's own modules).
SELF_MEASURED_PARAMS = {"stm_swin_micro": 4_381_042, "stm_convnext_micro": 4_439_624,
                        "stm_halonet_micro": 4_389_672}
SELF_MEASURED_GMACS = {"stm_swin_micro": 0.7005, "stm_convnext_micro": 0.6481,
                       "stm_halonet_micro": 0.8606}


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_all_micro_models_registered(builders):
    for name in MICRO:
        assert name in builders


@pytest.mark.parametrize("name", MICRO)
def test_params_match_readme_and_seed(builders, name):
    with torch.device("meta"):
        params = _params(builders[name]())
    assert params == SELF_MEASURED_PARAMS[name]
    assert params / 1e6 == pytest.approx(SEED_PARAMS_M, abs=0.05)
    assert params / 1e6 == pytest.approx(README_PARAMS_M, abs=0.15)  # "~4.5M"


@pytest.mark.parametrize("name", MICRO)
def test_forward_224_and_num_classes(builders, name):
    torch.manual_seed(0)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert builders[name]().eval()(x).shape == (1, 1000)
        assert builders[name](num_classes=10).eval()(x).shape == (1, 10)


@pytest.mark.parametrize("name", ["stm_swin_micro", "stm_halonet_micro"])
def test_inputs_that_are_not_whole_windows_are_padded(builders, name):
    """At 256² the stage maps (64, 32, 16, 8) are no multiple of 7: padded, masked, cropped."""
    torch.manual_seed(0)
    model = builders[name](img_size=(256, 256)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 256, 256))
    assert out.shape == (1, 1000) and torch.isfinite(out).all()


def test_swin_shifts_odd_blocks_except_where_the_stage_fits_one_window(builders):
    model = builders["stm_swin_micro"]()
    shifts = [[block.shift for block in stage] for stage in model.stages]
    assert shifts == [[0, 3], [0, 3], [0, 3, 0, 3, 0, 3, 0, 3, 0], [0, 0]]
    assert {block.window for stage in model.stages for block in stage} == {7}
    # Built for 160²: stage 4 is 5×5, so its window shrinks to 5 (a 9×9 bias table).
    small = builders["stm_swin_micro"](img_size=160)
    assert small.stages[3][0].window == 5
    assert small.stages[3][0].attn.relative_position_bias_table.shape == (81, 8)


def test_shifted_window_mask_separates_the_wrapped_regions():
    mask = shifted_window_mask(14, 14, window=7, shift=3)
    assert mask.shape == (4, 49, 49)
    assert set(mask.unique().tolist()) == {0.0, SHIFT_MASK_VALUE}
    assert torch.equal(mask, mask.transpose(1, 2))
    assert (mask[0] == 0).all()  # the top-left window holds one region only
    # The bottom-right window holds four regions (4×4, 4×3, 3×4, 3×3 tokens).
    allowed_pairs = int((mask[3] == 0).sum())
    assert allowed_pairs == 16 ** 2 + 12 ** 2 + 12 ** 2 + 9 ** 2


def test_shifted_block_runs_in_bfloat16():
    """The shift mask takes the activations' dtype (SDPA refuses a float32 mask otherwise)."""
    block = SwinMixerBlock(32, 1, (14, 14), window=7, shifted=True, layer_scale=1e-6).eval()
    block = block.to(torch.bfloat16)
    with torch.no_grad():
        out = block(torch.randn(1, 32, 14, 14, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()


def test_unshifted_windows_do_not_see_each_other():
    """Unshifted windows are independent: a change in one leaves the others' outputs alone."""
    torch.manual_seed(0)
    block = SwinMixerBlock(32, 1, (14, 14), window=7, shifted=False, layer_scale=1.0).eval()
    x = torch.randn(1, 32, 14, 14)
    y = x.clone()
    y[..., 10, 10] += 1.0
    with torch.no_grad():
        diff = (block(x) - block(y)).abs().amax(dim=1)[0]
    assert diff[:7, :].max() == 0 and diff[:, :7].max() == 0
    assert diff[7:, 7:].max() > 0


def test_halo_attention_sees_exactly_its_13x13_window():
    """Block (0, 0) of a 14×14 map attends to rows/cols 0..9 (7 + halo 3), nothing beyond."""
    torch.manual_seed(0)
    attn = HaloAttention(32, num_heads=2, block_size=7, halo_size=3).eval()
    x = torch.randn(1, 14, 14, 32)
    with torch.no_grad():
        base = attn(x)
        for (row, col), seen in (((9, 9), True), ((10, 10), False), ((13, 0), False)):
            y = x.clone()
            y[0, row, col] += 1.0
            changed = bool((attn(y) - base)[0, :7, :7].abs().max() > 0)
            assert changed is seen, (row, col)


@pytest.mark.parametrize("size", [14, 12])
def test_halo_attention_macs_are_all_matmuls_both_counters_see(size):
    """No MAC hides behind the unfold: the count is the closed form, from both counters.

    A 12×12 map is padded to 14×14 query blocks (keys and queries), so the attention runs
    over the padded grid while the projections run over the image.
    """
    dim, block, win, rel = 32, 7, 13, 2 * (2 * 13 - 1)
    padded = -(-size // block) * block
    attn = HaloAttention(dim, num_heads=1, block_size=block, halo_size=3).eval()
    count = count_flops(attn, (torch.randn(1, size, size, dim),), "matmul-only")
    projections = size * size * dim * (dim + 2 * dim + dim)  # q, kv, proj
    attention = padded * padded * dim * (2 * win * win + rel)  # q·kᵀ, attn·v, rel logits
    assert count.gmacs * 1e9 == projections + attention
    assert count.counters_agree and count.gap_ops == [] and count.crosscheck_uncounted_ops == {}


def test_swin_micro_count_matches_the_readme():
    """The README's only GMACs figure, 0.71 (its commented-out Micro rows), is fvcore's
    default count of U-Swin-Micro, which adds the norms: 0.709. Without norms it is 0.70, so
    the README counts norms, and the suites' STM rows say ``flops_convention: fvcore``."""
    model = load_builders()["stm_swin_micro"]().eval()
    x = torch.randn(1, 3, 224, 224)
    count = count_flops(model, (x,), "fvcore")
    assert round(count.gmacs, 2) == 0.71
    assert count.counters_agree and count.gap_ops == []
    assert round(count_flops(model, (x,), "matmul-only", crosscheck=False).gmacs, 2) == 0.70


@pytest.mark.slow
@pytest.mark.parametrize("name", MICRO)
def test_matmul_only_gmacs_at_224(builders, name):
    """Self-measured: Swin and ConvNeXt round to the seed's 0.7; HaloNet's 13×13 key windows
    put it at 0.86, which no rounding of the seed's 0.7 reaches."""
    count = count_flops(builders[name]().eval(), (torch.randn(1, 3, 224, 224),), "matmul-only")
    assert count.gmacs == pytest.approx(SELF_MEASURED_GMACS[name], abs=1e-4)
    assert count.counters_agree and count.gap_ops == [] and count.crosscheck_uncounted_ops == {}
