"""SETR-PUP (ViT-L/16): the printed 318.3 M of the ADE20K row, the Cityscapes build, and the
auxiliary heads' bookkeeping (counted in params, never run)."""

from __future__ import annotations

import pytest
import torch

from vitbench.build.builders import load_builders

#: SegFormer paper / seed 002 Table 2, SETR (ViT-Large) on ADE20K: Params 318.3 M.
PAPER_ADE_PARAMS_M = 318.3
#: Self-measured (pinned): every parameter of the fudan-zvg/SETR ADE20K PUP configuration.
SELF_MEASURED_ADE_PARAMS = 318_307_292


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def build():
    return load_builders()["setr_pup_vit_large"]


def test_ade20k_params_match_the_print(build):
    with torch.device("meta"):
        model = build()
    assert _params(model) == SELF_MEASURED_ADE_PARAMS
    assert _params(model) / 1e6 == pytest.approx(PAPER_ADE_PARAMS_M, abs=0.05)


def test_params_by_part(build):
    """ViT-L at 512 (1025 position embeddings, no final norm), the PUP decoder, four
    auxiliary heads; each head also holds mmseg's never-called 512→150 ``conv_seg``."""
    with torch.device("meta"):
        model = build()
    blocks = 24 * (4 * 1024 + 1024 * 3072 + 3072 + 1024 * 1024 + 1024 + 2 * 4096 * 1024
                   + 4096 + 1024)
    assert _params(model.encoder) == blocks + 3 * 256 * 1024 + 1024 + 1024 + 1025 * 1024
    unused_conv_seg = 512 * 150 + 150
    decode = (2 * 1024 + (1024 * 9 + 1) * 256 + 3 * (256 * 9 + 1) * 256 + 4 * 2 * 256
              + 256 * 150 + 150 + unused_conv_seg)
    assert _params(model.decode_head) == decode
    aux = 2 * 1024 + (1024 * 9 + 1) * 256 + 2 * 256 + 256 * 150 + 150 + unused_conv_seg
    assert _params(model.auxiliary_head) == 4 * aux


def test_cityscapes_build_has_position_embeddings_for_the_whole_image(build):
    with torch.device("meta"):
        model = build(num_classes=19, img_size=(1024, 2048))
    assert model.encoder.pos_embed.shape == (1, 64 * 128 + 1, 1024)
    assert model.decode_head.classifier.out_channels == 19


def test_forward_upsamples_to_the_input_and_skips_auxiliary_heads(build):
    torch.manual_seed(0)
    model = build(img_size=(64, 96), embed_dim=64, depth=2, num_heads=2).eval()
    calls = []
    for head in model.auxiliary_head:
        head.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 96))
    assert out.shape == (1, 150, 64, 96)
    assert torch.isfinite(out).all()
    assert calls == []


def test_size_must_fit_the_patch_grid(build):
    with pytest.raises(ValueError, match="multiple of patch"):
        build(img_size=(500, 512))
