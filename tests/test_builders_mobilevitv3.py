"""MobileViTv3-0.5 builder: the README's size and MACs, and the v3 block's fusion of global,
local and input features on top of timm's MobileViTv2 block."""

from __future__ import annotations

import pytest
import timm
import torch

from vitbench.build.builders import load_builders
from vitbench.build.builders.mobilevitv3 import MobileVitV3Block
from vitbench.measure.counting import count_flops

#: README (``micronDLA/MobileViTv3``): "MobileViTv3-0.5 | 72.33 | 1.4 | 481" (M params,
#: M FLOPs as ml-cvnets counts them: multiply-adds) at 256².
README_PARAMS_M, README_GMACS = 1.4, 0.481
#: Self-measured, pinned against regressions.
SELF_MEASURED_PARAMS, SELF_MEASURED_GMACS_256 = 1_429_985, 0.4798


@pytest.fixture(scope="module")
def mobilevitv3_050():
    return load_builders()["mobilevitv3_050"]


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_params_match_readme(mobilevitv3_050):
    with torch.device("meta"):
        params = _params(mobilevitv3_050())
    assert params == SELF_MEASURED_PARAMS
    assert params / 1e6 == pytest.approx(README_PARAMS_M, abs=0.05)


def test_only_the_fusion_conv_differs_from_mobilevitv2(mobilevitv3_050):
    """v3 = v2-0.5 plus one d×C weight per MobileViT block (conv_proj takes 2d, not d)."""
    with torch.device("meta"):
        v3 = mobilevitv3_050()
        v2 = timm.create_model("mobilevitv2_050")
    blocks = [m for m in v3.modules() if isinstance(m, MobileVitV3Block)]
    assert [(b.conv_1x1.out_channels, b.conv_proj.conv.in_channels, b.conv_proj.conv.out_channels)
            for b in blocks] == [(64, 128, 128), (96, 192, 192), (128, 256, 256)]
    assert _params(v3) - _params(v2) == sum(d * c for d, c in [(64, 128), (96, 192), (128, 256)])


def test_block_adds_its_input_back():
    """With the fusion's BatchNorm zeroed, the block is the identity: the residual is there."""
    torch.manual_seed(0)
    block = MobileVitV3Block(32, transformer_dim=16, transformer_depth=1, patch_size=2).eval()
    torch.nn.init.zeros_(block.conv_proj.bn.weight)
    torch.nn.init.zeros_(block.conv_proj.bn.bias)
    x = torch.randn(1, 32, 8, 8)
    with torch.no_grad():
        assert torch.allclose(block(x), x)


def test_gmacs_at_256_match_readme(mobilevitv3_050):
    count = count_flops(mobilevitv3_050().eval(), (torch.randn(1, 3, 256, 256),), "matmul-only")
    assert count.gmacs == pytest.approx(SELF_MEASURED_GMACS_256, abs=1e-4)
    assert count.gmacs == pytest.approx(README_GMACS, abs=0.002)
    assert count.counters_agree and count.gap_ops == []


def test_forward_sizes_and_num_classes(mobilevitv3_050):
    torch.manual_seed(0)
    with torch.no_grad():
        assert mobilevitv3_050().eval()(torch.randn(1, 3, 256, 256)).shape == (1, 1000)
        model = mobilevitv3_050(num_classes=10).eval()
        # 200: the 25×25 and 13×13 maps are resized to even sides for the 2×2 patches.
        out = model(torch.randn(1, 3, 200, 200))
    assert out.shape == (1, 10) and torch.isfinite(out).all()
