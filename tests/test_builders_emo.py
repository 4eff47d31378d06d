"""EMO builders: the authors' logged parameter and FLOP counts, the iRMB layout, and window
attention on inputs that are not multiples of the window."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vitbench.build.builders.emo import InvertedResidualMobileBlock
from vitbench.measure.counting import count_flops

VARIANTS = ("emo_1m", "emo_2m", "emo_5m")
#: The authors' training logs (``resources/EMO_*/log_train.txt``, fvcore at 224²): params M
#: and GFLOPs. The README rounds them to 1.3 / 2.3 / 5.1 M and 261 / 439 / 903 M.
LOGGED = {"emo_1m": (1.361, 0.261), "emo_2m": (2.377, 0.439), "emo_5m": (5.109, 0.903)}
README_PARAMS_M = {"emo_1m": 1.3, "emo_2m": 2.3, "emo_5m": 5.1}
#: Self-measured, pinned against regressions (identical to ``zhangzjn/EMO``'s modules).
SELF_MEASURED_PARAMS = {"emo_1m": 1_361_168, "emo_2m": 2_377_472, "emo_5m": 5_108_848}
#: Self-measured at 224² under matmul-only (norms not counted).
SELF_MEASURED_GMACS = {"emo_1m": 0.2552}


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", VARIANTS)
def test_params_match_the_authors_log(builders, name):
    with torch.device("meta"):
        params = _params(builders[name]())
    assert params == SELF_MEASURED_PARAMS[name]
    assert params / 1e6 == pytest.approx(LOGGED[name][0], abs=5e-4)
    # The README truncates: 1.361 -> "1.3", 2.377 -> "2.3".
    assert 0 <= params / 1e6 - README_PARAMS_M[name] < 0.1


def test_emo_1m_flops_match_the_authors_log(builders):
    model = builders["emo_1m"]().eval()
    x = torch.randn(1, 3, 224, 224)
    logged = count_flops(model, (x,), "fvcore")
    assert logged.gmacs == pytest.approx(LOGGED["emo_1m"][1], abs=5e-4)
    matmul = count_flops(model, (x,), "matmul-only")
    assert matmul.gmacs == pytest.approx(SELF_MEASURED_GMACS["emo_1m"], abs=1e-4)
    for count in (logged, matmul):
        assert count.counters_agree and count.gap_ops == []
        assert count.crosscheck_uncounted_ops == {}


def test_stage_layout(builders):
    """Stride-2 opening blocks without attention; attention only in stages 3-4's later blocks."""
    with torch.device("meta"):
        model = builders["emo_1m"]()
    assert [len(stage) for stage in model.stages] == [2, 2, 8, 3]
    for i, stage in enumerate(model.stages):
        first, *rest = stage
        assert not first.attention and not first.has_skip
        assert first.conv_local[0].stride == (2, 2)
        assert all(block.attention == (i >= 2) and block.has_skip for block in rest)
    assert [stage[1].num_heads for stage in model.stages[2:]] == [4, 8]  # 80/20, 168/21
    assert [stage[1].conv_local[0].kernel_size for stage in model.stages] == [(3, 3), (3, 3),
                                                                             (5, 5), (5, 5)]


def test_window_attention_mixes_only_within_dilated_windows():
    """On a 14×14 map (two windows a side), pixel (0, 0) attends to the pixels of even rows
    and columns only: EMO's windows take every second pixel, not a contiguous 7×7 tile."""
    torch.manual_seed(0)
    block = InvertedResidualMobileBlock(16, 16, 1.0, norm=None, attention=True, dim_head=8)
    x = torch.randn(1, 16, 14, 14, requires_grad=True)
    block.window_attention(x)[0, :, 0, 0].sum().backward()
    touched = x.grad.abs().sum(dim=(0, 1)) > 0
    expected = torch.zeros(14, 14, dtype=torch.bool)
    expected[::2, ::2] = True
    assert torch.equal(touched, expected)


def test_forward_sizes_and_num_classes(builders):
    torch.manual_seed(0)
    with torch.no_grad():
        assert builders["emo_1m"]().eval()(torch.randn(1, 3, 224, 224)).shape == (1, 1000)
        # 200² leaves 13×13 and 7×7 maps in the attention stages: padded to the window.
        model = builders["emo_1m"](img_size=200, num_classes=10).eval()
        out = model(torch.randn(1, 3, 200, 200))
    assert out.shape == (1, 10) and torch.isfinite(out).all()
