"""ParC-Net-S builder: the README's size, the global circular convolution, both counters
counting it, and the README's 1740 M MAdds as cvnets' profiler formula over this model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vitbench.build.builders.parcnet import ParCBlock, circular_conv
from vitbench.measure.counting import count_flops

#: README ("Experimental results"): 5.0 M params, 1740 M MAdds at 256².
README_PARAMS_M = 5.0
README_MADDS_M = 1740
#: Self-measured; equal to the source's own model (``profile_model``: 5.037 M).
SELF_MEASURED_PARAMS = 5_037_088
#: Self-measured at 256² under matmul-only.
SELF_MEASURED_GMACS = 1.6573
#: (map side, ParC width, FFN width, blocks) of layers 3-5 at 256².
PARC_LAYERS = ((32, 192, 384, 2), (16, 256, 512, 4), (8, 320, 640, 3))


def test_params_match_the_readme(builders):
    with torch.device("meta"):
        params = sum(p.numel() for p in builders["parcnet_s"]().parameters())
    assert params == SELF_MEASURED_PARAMS
    assert round(params / 1e6, 1) == README_PARAMS_M


def test_circular_conv_wraps_around_the_whole_side():
    """Output ``i`` is ``Σ_t k[t] · x[(i + t) mod side]``, along H and along W."""
    torch.manual_seed(0)
    x = torch.randn(1, 3, 5, 4)
    kernel_h, kernel_w = torch.randn(3, 1, 5, 1), torch.randn(3, 1, 1, 4)
    expected_h = sum(kernel_h[:, 0, t, 0].view(1, 3, 1, 1) * torch.roll(x, -t, dims=2)
                     for t in range(5))
    expected_w = sum(kernel_w[:, 0, 0, t].view(1, 3, 1, 1) * torch.roll(x, -t, dims=3)
                     for t in range(4))
    assert torch.allclose(circular_conv(x, kernel_h, dim=2), expected_h, atol=1e-6)
    assert torch.allclose(circular_conv(x, kernel_w, dim=3), expected_w, atol=1e-6)


def test_parc_block_is_counted_whole_by_both_counters():
    """One ParC block on an 8×8 map: four circular convs as long as the side (2·C·H·H·W in
    all), the FFN's two 1×1 convs, and the channel attention's two on the pooled vector."""
    torch.manual_seed(0)
    channels, ffn, side = 64, 128, 8
    block = ParCBlock(channels, meta_kernel_size=side, ffn_dim=ffn, use_pe=True).eval()
    count = count_flops(block, (torch.randn(1, channels, side, side),), "matmul-only")
    pixels = side * side
    expected = (2 * channels * side * pixels + 2 * channels * ffn * pixels
                + 2 * channels * (channels // 16))
    assert count.gmacs * 1e9 == pytest.approx(expected, abs=0.5)
    assert count.counters_agree and count.gap_ops == []
    assert count.crosscheck_uncounted_ops == {}


def test_meta_kernels_are_resized_to_the_map(builders):
    """224² and rectangular inputs run: the 32/16/8-long kernels and embeddings are resized
    per axis (the source, which uses the height for both, runs on squares only)."""
    torch.manual_seed(0)
    model = builders["parcnet_s"](num_classes=10).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 224, 160))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def _cvnets_profiler_extra_madds() -> int:
    """What ``outer_frame_v1.profile_module`` adds over a plain count: the FFN biases,
    ``(C + F)·H·W``, and the channel attention as ``F·(F//16)·H·W·2`` instead of its two
    1×1 convs on the pooled vector, ``2·C·(C//16)``."""
    extra = 0
    for side, channels, ffn, blocks in PARC_LAYERS:
        pixels = side * side
        extra += blocks * ((channels + ffn) * pixels + ffn * (ffn // 16) * pixels * 2
                           - 2 * channels * (channels // 16))
    return extra


@pytest.mark.slow
def test_macs_match_the_readme_under_cvnets_profiler(builders):
    count = count_flops(builders["parcnet_s"]().eval(), (torch.randn(1, 3, 256, 256),),
                        "matmul-only")
    assert count.gmacs == pytest.approx(SELF_MEASURED_GMACS, abs=1e-4)
    assert count.counters_agree and count.gap_ops == []
    assert count.crosscheck_uncounted_ops == {}
    # The source's profile_model prints 1740.552 M for its own model.
    madds_m = (count.gmacs * 1e9 + _cvnets_profiler_extra_madds()) / 1e6
    assert madds_m == pytest.approx(1740.552, abs=0.01)
    assert int(madds_m) == README_MADDS_M  # the README truncates 1740.55
