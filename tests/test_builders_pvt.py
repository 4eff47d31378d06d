"""PVT v1 builders: paper parameter counts, shapes, non-224 inputs, fused == explicit attention."""

from __future__ import annotations

import pytest
import torch


PAPER_PARAMS_M = {"pvt_v1_tiny": 13.23, "pvt_v1_small": 24.49}


def _params_m(model: torch.nn.Module) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


def test_all_sizes_registered(builders):
    for name in ("pvt_v1_tiny", "pvt_v1_small", "pvt_v1_medium", "pvt_v1_large"):
        assert name in builders


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS_M))
def test_param_count_matches_paper(builders, name):
    model = builders[name]()
    assert _params_m(model) == pytest.approx(PAPER_PARAMS_M[name], abs=0.01)


def test_forward_224_and_num_classes(builders):
    torch.manual_seed(0)
    model = builders["pvt_v1_tiny"]().eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 224, 224)).shape == (1, 1000)
    small_head = builders["pvt_v1_tiny"](num_classes=10).eval()
    with torch.no_grad():
        assert small_head(torch.randn(1, 3, 224, 224)).shape == (1, 10)


def test_non_square_input_interpolates_pos_embed(builders):
    """Built for 224², fed 192×256: the position embeddings are resized on the fly."""
    torch.manual_seed(0)
    model = builders["pvt_v1_tiny"]().eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 192, 256))
    assert out.shape == (1, 1000)
    assert torch.isfinite(out).all()


def test_img_size_tuple_builds_for_that_size(builders):
    model = builders["pvt_v1_tiny"](img_size=(192, 256)).eval()
    # Stage 1 runs at stride 4 (48×64 tokens); the last at stride 32 plus the class token.
    assert model.pos_embeds[0].shape == (1, 48 * 64, 64)
    assert model.pos_embeds[3].shape == (1, 6 * 8 + 1, 512)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 192, 256)).shape == (1, 1000)


def test_fused_matches_explicit_attention(builders):
    torch.manual_seed(0)
    fused = builders["pvt_v1_tiny"](fused_attn=True).eval()
    explicit = builders["pvt_v1_tiny"](fused_attn=False).eval()
    explicit.load_state_dict(fused.state_dict())
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = fused(x), explicit(x)
    assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
