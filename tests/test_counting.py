"""Counting: closed-form ViT params/MACs, the two counters agreeing, fused = explicit
attention, uncountable ops reported by both counters, and golden values of real models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vitbench.measure import counting


# --- a model neither counter can count fully ---------------------------------------------

class _Solver(nn.Module):
    """A linear layer, then a linear solve: an op with MACs that neither counter knows."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.proj = nn.Linear(width, width)

    def forward(self, x):
        y = self.proj(x)
        system = y.transpose(-1, -2) @ y + torch.eye(y.shape[-1]) * y.shape[-1]
        return torch.linalg.solve(system, y.transpose(-1, -2))

    def vitbench_example_inputs(self, batch_size, image_size):
        return (torch.randn(batch_size, 8, 8),)


def solver_model(width: int = 8) -> nn.Module:
    """Importable as ``python:tests.test_counting:solver_model``."""
    return _Solver(width)


# --- closed form ------------------------------------------------------------------------------

def _vit(depth, width, heads, patch, image, num_classes=10, fused=True):
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(img_size=image, patch_size=patch, embed_dim=width, depth=depth,
                              num_heads=heads, mlp_ratio=4.0, num_classes=num_classes).eval()
    if not fused:
        _unfuse(model)
    return model


def _unfuse(model) -> int:
    changed = 0
    for module in model.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = False
            changed += 1
    return changed


def vit_params(depth, width, patch, image, num_classes=10):
    """timm VisionTransformer (class token, qkv bias, mlp ratio 4, final norm, linear head)."""
    tokens = (image // patch) ** 2 + 1
    d = width
    patch_embed = 3 * patch * patch * d + d
    embeddings = d + tokens * d  # class token, position embedding
    block = 2 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * d + (4 * d * d + 4 * d) + (4 * d * d + d)
    return patch_embed + embeddings + depth * block + 2 * d + (d * num_classes + num_classes)


def vit_macs(depth, width, patch, image, num_classes=10, norms=False):
    """MACs of one image: patch conv, per block qkv/proj/MLP + Q·Kᵀ and A·V, head on the class token.

    ``norms``: add fvcore's LayerNorm cost, 5 per element, for 2 norms per block + the final one.
    """
    patches = (image // patch) ** 2
    tokens = patches + 1
    d = width
    per_block = tokens * d * 3 * d + tokens * d * d + 2 * tokens * d * 4 * d + 2 * tokens * tokens * d
    total = patches * 3 * patch * patch * d + depth * per_block + d * num_classes
    if norms:
        total += 5 * tokens * d * (2 * depth + 1)
    return total


SIZES = [  # depth, width, heads, patch, image
    (2, 64, 2, 16, 64),
    (1, 32, 4, 8, 32),
    (3, 48, 3, 16, 96),
    (2, 96, 6, 32, 128),
]


@pytest.mark.parametrize("depth,width,heads,patch,image", SIZES)
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "explicit"])
def test_vit_closed_form_both_counters(depth, width, heads, patch, image, fused):
    model = _vit(depth, width, heads, patch, image, fused=fused)
    assert counting.count_params(model) == vit_params(depth, width, patch, image)
    x = (torch.randn(1, 3, image, image),)
    count = counting.count_flops(model, x, "matmul-only")
    expected = vit_macs(depth, width, patch, image) / 1e9
    assert count.gmacs == pytest.approx(expected, rel=1e-9)
    assert count.crosscheck_gmacs == pytest.approx(expected, rel=1e-9)
    assert count.gap_ops == [] and count.crosscheck_uncounted_ops == {}


@pytest.mark.parametrize("depth,width,heads,patch,image", SIZES[:2])
def test_vit_closed_form_fvcore_convention_adds_layernorm(depth, width, heads, patch, image):
    model = _vit(depth, width, heads, patch, image)
    count = counting.count_flops(model, (torch.randn(1, 3, image, image),), "fvcore")
    expected = vit_macs(depth, width, patch, image, norms=True) / 1e9
    assert count.gmacs == pytest.approx(expected, rel=1e-9)
    assert count.crosscheck_gmacs == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("name,size", [("timm:test_vit", 160), ("timm:pvt_v2_b0", 224),
                                       ("timm:test_vit_relpos", 160)])
def test_fused_and_explicit_attention_give_the_same_total(name, size):
    from vitbench.build import zoo

    model = zoo.build_model(name, {}, (size, size))
    x = zoo.example_inputs(model, 1, (size, size))
    fused = counting.count_flops(model, x, "matmul-only")
    assert _unfuse(model) > 0
    explicit = counting.count_flops(model, x, "matmul-only")
    assert explicit.gmacs == pytest.approx(fused.gmacs, rel=1e-9)
    assert explicit.crosscheck_gmacs == pytest.approx(fused.crosscheck_gmacs, rel=1e-9)


# --- the two counters agree on small real models --------------------------------------------

AGREE = [
    ("timm:test_vit", 160), ("timm:test_convnext", 160), ("timm:test_efficientnet", 160),
    ("timm:test_resnet", 160), ("timm:resnet18", 224), ("timm:pvt_v2_b0", 224),
    ("timm:mobilevit_xxs", 256), ("vitbench:pvt_v1_tiny", 224),
]


@pytest.mark.parametrize("convention", ["matmul-only", "fvcore"])
@pytest.mark.parametrize("name,size", AGREE)
def test_counters_agree_on_real_models(name, size, convention):
    from vitbench.build import zoo

    model = zoo.build_model(name, {}, (size, size))
    count = counting.count_flops(model, zoo.example_inputs(model, 1, (size, size)), convention)
    assert count.error is None and count.crosscheck_error is None
    assert count.counters_agree, (count.gmacs, count.crosscheck_gmacs)
    assert count.gap_ops == [] and count.crosscheck_uncounted_ops == {}


# --- what neither counter handles is reported, with call counts -------------------------------

def test_uncountable_op_is_reported_by_both_counters():
    count = counting.count_flops(solver_model(), (torch.randn(1, 8, 8),), "matmul-only")
    assert "aten::linalg_solve" in count.gap_ops
    assert count.uncounted_ops["aten::linalg_solve"] == 1
    assert any("linalg_solve" in op for op in count.crosscheck_uncounted_ops)
    # element-wise and tensor-creation ops are not reported as possible gaps
    assert "aten::eye" not in count.gap_ops
    assert not any(op.endswith(("::t", "::eye")) for op in count.crosscheck_uncounted_ops)


def test_matmul_only_does_not_flag_resampling_it_excludes():
    class Up(nn.Module):
        def forward(self, x):
            return nn.functional.interpolate(x, scale_factor=2, mode="bilinear")

    x = (torch.randn(1, 3, 8, 8),)
    assert counting.count_flops(Up(), x, "matmul-only").crosscheck_uncounted_ops == {}
    fv = counting.count_flops(Up(), x, "fvcore")
    assert fv.gmacs == pytest.approx(4 * 3 * 16 * 16 / 1e9)
    assert fv.counters_agree


# --- golden values (the research note's measurements) ----------------------------------------

@pytest.mark.parametrize("name,size,params_m,gflops", [
    ("timm:deit_small_patch16_224", 224, 22.05, 4.60),
    ("timm:pvt_v2_b0", 224, 3.67, 0.566),
    ("timm:resnet18", 224, 11.69, 1.814),
])
def test_golden_counts(name, size, params_m, gflops):
    from vitbench.build import zoo

    model = zoo.build_model(name, {}, (size, size))
    count = counting.count_flops(model, zoo.example_inputs(model, 1, (size, size)), "matmul-only")
    assert counting.count_params(model) / 1e6 == pytest.approx(params_m, abs=0.005)
    assert count.gmacs == pytest.approx(gflops, abs=0.0005 if gflops < 1 else 0.005)
    assert count.counters_agree
