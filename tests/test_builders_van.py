"""VAN-B0 builder: the README's size, the large-kernel attention's receptive field, and a MAC
count with no hidden op."""

from __future__ import annotations

import pytest
import torch

from vitbench.build.builders import load_builders
from vitbench.build.builders.van import LargeKernelAttention
from vitbench.measure.counting import count_flops

#: README (``Visual-Attention-Network/VAN-Classification``): "VAN-B0 | 4.1 | 0.9 | 75.4" at 224².
README_PARAMS_M, README_GFLOPS = 4.1, 0.9
#: Self-measured, pinned against regressions (identical to the source's ``van_b0``).
SELF_MEASURED_PARAMS, SELF_MEASURED_GMACS_224 = 4_105_800, 0.8642


@pytest.fixture(scope="module")
def van_b0():
    return load_builders()["van_b0"]


def test_params_match_readme(van_b0):
    with torch.device("meta"):
        params = sum(p.numel() for p in van_b0().parameters())
    assert params == SELF_MEASURED_PARAMS
    assert params / 1e6 == pytest.approx(README_PARAMS_M, abs=0.05)


def test_configuration(van_b0):
    with torch.device("meta"):
        model = van_b0()
    assert [len(stage) for stage in model.stages] == [3, 3, 5, 2]
    assert [stage[0].norm1.num_features for stage in model.stages] == [32, 64, 160, 256]
    assert [stage[0].mlp.fc1.out_channels for stage in model.stages] == [256, 512, 640, 1024]


def test_large_kernel_attention_footprint():
    """5×5 depthwise then 7×7 depthwise with dilation 3 (the paper's decomposed 21×21 kernel):
    radius 2 + 9, a 23×23 footprint."""
    torch.manual_seed(0)
    lka = LargeKernelAttention(4)
    x = torch.randn(1, 4, 31, 31, requires_grad=True)
    lka.conv1(lka.conv_spatial(lka.conv0(x)))[0, :, 15, 15].sum().backward()
    rows, cols = torch.nonzero(x.grad.abs().sum(dim=(0, 1)), as_tuple=True)
    assert (rows.min().item(), rows.max().item()) == (4, 26)
    assert (cols.min().item(), cols.max().item()) == (4, 26)


def test_gmacs_at_224_match_readme(van_b0):
    count = count_flops(van_b0().eval(), (torch.randn(1, 3, 224, 224),), "matmul-only")
    assert count.gmacs == pytest.approx(SELF_MEASURED_GMACS_224, abs=1e-4)
    assert round(count.gmacs, 1) == README_GFLOPS
    assert count.counters_agree and count.gap_ops == []
    assert count.crosscheck_uncounted_ops == {}


def test_forward_sizes_and_num_classes(van_b0):
    torch.manual_seed(0)
    with torch.no_grad():
        assert van_b0().eval()(torch.randn(1, 3, 224, 224)).shape == (1, 1000)
        model = van_b0(img_size=256, num_classes=10).eval()
        assert model(torch.randn(1, 3, 256, 256)).shape == (1, 10)
