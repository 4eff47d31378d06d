"""ConvNeXt-XT (ParC-Net's 7.4 M baseline): the README's parameter count, and the GMACs that
its printed 0.6 G cannot be."""

from __future__ import annotations

import pytest
import torch

from vitbench.build.builders import load_builders
from vitbench.measure.counting import count_flops

#: ParC-Net README: "ConvNext-XT | 7.4 M | 0.6G | CPU | 47 | 77.5".
README_PARAMS_M, README_GFLOPS = 7.4, 0.6
#: Self-measured, pinned against regressions.
SELF_MEASURED_PARAMS, SELF_MEASURED_GMACS = 7_438_360, 1.1440


@pytest.fixture(scope="module")
def convnext_xt():
    return load_builders()["convnext_xt"]


def test_params_match_readme(convnext_xt):
    with torch.device("meta"):
        params = sum(p.numel() for p in convnext_xt().parameters())
    assert params == SELF_MEASURED_PARAMS
    assert params / 1e6 == pytest.approx(README_PARAMS_M, abs=0.05)


def test_configuration_is_convnext_t_depths_at_half_width(convnext_xt):
    with torch.device("meta"):
        model = convnext_xt()
    assert [len(stage.blocks) for stage in model.stages] == [3, 3, 9, 3]
    assert [stage.blocks[0].conv_dw.in_channels for stage in model.stages] == [48, 96, 192, 384]


def test_forward_any_size_and_num_classes(convnext_xt):
    torch.manual_seed(0)
    with torch.no_grad():
        assert convnext_xt().eval()(torch.randn(1, 3, 224, 224)).shape == (1, 1000)
        # The zoo passes img_size; the network is fully convolutional and ignores it.
        model = convnext_xt(img_size=(192, 256), num_classes=10).eval()
        assert model(torch.randn(1, 3, 192, 256)).shape == (1, 10)


def test_gmacs_are_about_twice_the_readme_print(convnext_xt):
    count = count_flops(convnext_xt().eval(), (torch.randn(1, 3, 224, 224),), "matmul-only")
    assert count.gmacs == pytest.approx(SELF_MEASURED_GMACS, abs=1e-4)
    assert count.counters_agree and count.gap_ops == []
    assert 1.8 < count.gmacs / README_GFLOPS < 2.0
