"""Params and GFLOPs of small modules equal hand-computed values; real timm models equal
the papers' numbers."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from vitbench.measure.counting import count_flops, count_params


def gmacs(module, *inputs, convention="matmul-only"):
    result = count_flops(module.eval(), inputs, convention)
    assert result.error is None
    return result


def test_linear():
    layer = nn.Linear(128, 64)
    result = gmacs(layer, torch.randn(1, 10, 128))
    assert count_params(layer) == 128 * 64 + 64
    assert result.gflops * 1e9 == 10 * 128 * 64
    assert result.gflops_crosscheck * 1e9 == 10 * 128 * 64


def test_conv2d():
    conv = nn.Conv2d(3, 16, kernel_size=3, stride=2, padding=1)
    result = gmacs(conv, torch.randn(1, 3, 32, 32))
    assert count_params(conv) == 16 * 3 * 3 * 3 + 16
    out_pixels = 16 * 16
    assert result.gflops * 1e9 == out_pixels * 16 * 3 * 3 * 3
    assert result.counters_agree


class SDPABlock(nn.Module):
    """One multi-head self-attention block written with F.scaled_dot_product_attention."""

    def __init__(self, dim=64, heads=4):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


def test_attention_block_counts_both_attention_products():
    dim, heads, tokens = 64, 4, 50
    result = gmacs(SDPABlock(dim, heads), torch.randn(1, tokens, dim))
    linear = tokens * dim * 3 * dim + tokens * dim * dim
    attention = 2 * tokens * tokens * dim  # Q·Kᵀ and A·V, every head together
    assert result.gflops * 1e9 == linear + attention
    assert result.gflops_crosscheck * 1e9 == linear + attention
    assert "aten::scaled_dot_product_attention" not in result.uncounted_ops


def test_norm_convention():
    block = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8))
    x = torch.randn(1, 4, 8)
    assert gmacs(block, x).gflops * 1e9 == 4 * 8 * 8
    fv = gmacs(block, x, convention="fvcore")
    assert fv.gflops * 1e9 == 4 * 8 * 8 + 5 * 4 * 8  # fvcore: LayerNorm 5 per element
    assert fv.counters_agree


class Uncountable(nn.Module):
    def forward(self, x):
        return torch.cdist(x, x)


def test_an_uncountable_op_is_reported_not_hidden():
    result = count_flops(Uncountable(), (torch.randn(1, 5, 3),), "matmul-only")
    assert result.uncounted_ops.get("aten::cdist") == 1
    assert "aten::cdist" in result.gap_ops


@pytest.mark.parametrize("name, params_m, gflops, size", [
    ("deit_small_patch16_224", 22.1, 4.6, 224),  # DeiT paper / 002 table
    ("resnet18", 11.7, 1.8, 224),
    ("pvt_v2_b0", 3.7, 0.6, 224),
])
def test_real_timm_models_match_printed(name, params_m, gflops, size):
    import timm

    model = timm.create_model(name, pretrained=False)
    result = gmacs(model, torch.randn(1, 3, size, size))
    assert round(count_params(model) / 1e6, 1) == params_m
    assert round(result.gflops, 1) == gflops
    assert result.counters_agree
