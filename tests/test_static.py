"""Params and GFLOPs of small modules equal hand-computed values, under both counters,
including the ops of the newer families (deformable conv, grid_sample, transposed conv,
unfold/gather attention, pixel shuffle); real timm models equal the papers' numbers."""

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
    assert result.gmacs * 1e9 == 10 * 128 * 64
    assert result.crosscheck_gmacs * 1e9 == 10 * 128 * 64


def test_conv2d():
    conv = nn.Conv2d(3, 16, kernel_size=3, stride=2, padding=1)
    result = gmacs(conv, torch.randn(1, 3, 32, 32))
    assert count_params(conv) == 16 * 3 * 3 * 3 + 16
    out_pixels = 16 * 16
    assert result.gmacs * 1e9 == out_pixels * 16 * 3 * 3 * 3
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
    assert result.gmacs * 1e9 == linear + attention
    assert result.crosscheck_gmacs * 1e9 == linear + attention
    assert "aten::scaled_dot_product_attention" not in result.uncounted_ops


def test_norm_convention():
    block = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8))
    x = torch.randn(1, 4, 8)
    assert gmacs(block, x).gmacs * 1e9 == 4 * 8 * 8
    fv = gmacs(block, x, convention="fvcore")
    assert fv.gmacs * 1e9 == 4 * 8 * 8 + 5 * 4 * 8  # fvcore: LayerNorm 5 per element
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
    assert round(result.gmacs, 1) == gflops
    assert result.counters_agree


# --- operators of the newer families (LIT/LITv2, DAT, EdgeViT, HaloNet/LVT/BiFormer, ResTv2) ---

def counted_by_both(module, *inputs, convention="matmul-only"):
    """Count with both counters; they must agree exactly and report no op that may carry MACs."""
    result = gmacs(module, *inputs, convention=convention)
    assert result.crosscheck_error is None
    assert result.crosscheck_gmacs == result.gmacs
    assert result.gap_ops == [] and result.crosscheck_uncounted_ops == {}
    return result


class DeformableConv(nn.Module):
    """An offset conv (ordinary) predicting the offsets (and mask) of a deformable conv."""

    def __init__(self, c_in, c_out, kernel, stride, padding, groups=1, modulated=False):
        super().__init__()
        from torchvision.ops import DeformConv2d

        taps = kernel[0] * kernel[1]
        self.modulated = modulated
        self.offset = nn.Conv2d(c_in, 3 * taps if modulated else 2 * taps, kernel, stride,
                                padding)
        self.deform = DeformConv2d(c_in, c_out, kernel, stride, padding, groups=groups)

    def forward(self, x):
        predicted = self.offset(x)
        if not self.modulated:
            return self.deform(x, predicted)
        taps = self.deform.kernel_size[0] * self.deform.kernel_size[1]
        return self.deform(x, predicted[:, :2 * taps], predicted[:, 2 * taps:].sigmoid())


@pytest.mark.parametrize("modulated", [False, True], ids=["v1", "modulated"])
@pytest.mark.parametrize("groups", [1, 2])
def test_deform_conv2d_counts_the_convolution_it_replaces(groups, modulated):
    c_in, c_out, (k_h, k_w), stride, size = 4, 6, (3, 2), 2, 12
    module = DeformableConv(c_in, c_out, (k_h, k_w), stride, (1, 0), groups, modulated)
    out_h, out_w = (size + 2 - k_h) // stride + 1, (size - k_w) // stride + 1  # 6 × 6
    positions = out_h * out_w
    offset_conv = positions * (3 if modulated else 2) * k_h * k_w * c_in * k_h * k_w
    deform_conv = positions * c_out * (c_in // groups) * k_h * k_w
    x = torch.randn(1, c_in, size, size)
    # matmul-only: the ordinary conv's MACs; bilinear sampling is resampling, not counted
    result = counted_by_both(module, x)
    assert result.gmacs * 1e9 == offset_conv + deform_conv
    assert "torchvision::deform_conv2d" not in result.uncounted_ops
    # fvcore: + 4 per sampled value (fvcore's grid-sample rate), C_in·k_h·k_w per position
    sampling = 4 * positions * c_in * k_h * k_w
    fv = counted_by_both(module, x, convention="fvcore")
    assert fv.gmacs * 1e9 == offset_conv + deform_conv + sampling


def test_deform_conv2d_with_zero_offsets_counts_as_the_ordinary_conv():
    from torchvision.ops import DeformConv2d

    deform = DeformConv2d(8, 16, 2, stride=2)
    conv = nn.Conv2d(8, 16, 2, stride=2)
    x = torch.randn(1, 8, 14, 14)
    offsets = torch.zeros(1, 2 * 2 * 2, 7, 7)
    with torch.no_grad():
        conv.weight.copy_(deform.weight)
        conv.bias.copy_(deform.bias)
        torch.testing.assert_close(deform(x, offsets), conv(x))  # the same operation
    assert counted_by_both(deform, x, offsets).gmacs == gmacs(conv, x).gmacs == 7 * 7 * 16 * 8 * 4 / 1e9


class SampledKeys(nn.Module):
    """DAT's pattern: project, then bilinearly sample the projection at predicted points."""

    def __init__(self, dim=8):
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x, grid):
        return F.grid_sample(self.proj(x), grid, mode="bilinear", align_corners=True)


def test_grid_sample_interpolation_is_counted_only_under_the_fvcore_convention():
    dim, size, points_h, points_w = 8, 10, 5, 3
    x, grid = torch.randn(1, dim, size, size), torch.rand(1, points_h, points_w, 2) * 2 - 1
    projection = size * size * dim * dim
    # matmul-only (the default, as DAT's and most papers' counters): interpolation is free
    result = counted_by_both(SampledKeys(dim), x, grid)
    assert result.gmacs * 1e9 == projection
    # fvcore: its grid_sampler handle, 4 per sampled value (bilinear), in both counters
    fv = counted_by_both(SampledKeys(dim), x, grid, convention="fvcore")
    assert fv.gmacs * 1e9 == projection + 4 * dim * points_h * points_w


@pytest.mark.parametrize("channels,r,size", [(8, 2, 16), (6, 4, 24)])
def test_depthwise_conv_transpose_is_one_mac_per_output_element(channels, r, size):
    """EdgeViT's local propagation: k = stride = r, depthwise, on an (H/r)×(W/r) map."""
    up = nn.ConvTranspose2d(channels, channels, kernel_size=r, stride=r, groups=channels)
    result = counted_by_both(up, torch.randn(1, channels, size // r, size // r))
    assert result.gmacs * 1e9 == channels * size * size


@pytest.mark.parametrize("kernel,stride,padding,output_padding", [(2, 2, 0, 0), (3, 2, 1, 1)])
def test_dense_conv_transpose(kernel, stride, padding, output_padding):
    c_in, c_out, size = 6, 4, 5
    up = nn.ConvTranspose2d(c_in, c_out, kernel, stride, padding, output_padding)
    result = counted_by_both(up, torch.randn(1, c_in, size, size))
    # every input value meets every weight of its channel: C_in·C_out·k² per input position,
    # whatever the overlap of the output windows (padding only crops the output)
    assert result.gmacs * 1e9 == size * size * c_in * c_out * kernel * kernel
    assert result.gmacs * 1e9 == counted_by_both(up, torch.randn(1, c_in, size, size),
                                                  convention="fvcore").gmacs * 1e9


class UnfoldAttention(nn.Module):
    """HaloNet/LVT pattern: each query attends to its k×k neighbourhood gathered by unfold."""

    def __init__(self, dim=8, k=3, use_tensor_unfold=False):
        super().__init__()
        self.k, self.use_tensor_unfold = k, use_tensor_unfold
        self.q, self.kv = nn.Conv2d(dim, dim, 1), nn.Conv2d(dim, 2 * dim, 1)

    def neighbourhoods(self, t):  # B, C, H, W → B, H·W, k², C
        b, c, h, w = t.shape
        if self.use_tensor_unfold:
            t = F.pad(t, [self.k // 2] * 4).unfold(2, self.k, 1).unfold(3, self.k, 1)
            return t.reshape(b, c, h * w, self.k * self.k).permute(0, 2, 3, 1)
        return F.unfold(t, self.k, padding=self.k // 2).reshape(b, c, self.k * self.k, h * w) \
            .permute(0, 3, 2, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        q = self.q(x).flatten(2).transpose(1, 2).unsqueeze(2)  # B, N, 1, C
        k, v = self.neighbourhoods(self.kv(x)).chunk(2, dim=-1)  # B, N, k², C each
        attn = (q @ k.transpose(-1, -2)).softmax(-1)
        return (attn @ v).squeeze(2)


class GatherRouting(nn.Module):
    """BiFormer pattern: region affinities, top-k regions per region, gathered keys/values."""

    def __init__(self, dim=8, regions=4, tokens_per_region=6, topk=2):
        super().__init__()
        self.regions, self.tokens, self.topk = regions, tokens_per_region, topk
        self.qkv = nn.Linear(dim, 3 * dim)

    def forward(self, x):  # B, regions, tokens, C
        b, r, t, c = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        affinity = q.mean(2) @ k.mean(2).transpose(-1, -2)  # B, r, r
        index = affinity.topk(self.topk, dim=-1).indices  # B, r, topk
        index = index.view(b, r, self.topk, 1, 1).expand(-1, -1, -1, t, c)
        k_sel = torch.gather(k.unsqueeze(1).expand(-1, r, -1, -1, -1), 2, index)
        v_sel = torch.gather(v.unsqueeze(1).expand(-1, r, -1, -1, -1), 2, index)
        k_sel, v_sel = k_sel.reshape(b, r, self.topk * t, c), v_sel.reshape(b, r, self.topk * t, c)
        attn = (q @ k_sel.transpose(-1, -2)).softmax(-1)
        return attn @ v_sel


@pytest.mark.parametrize("use_tensor_unfold", [False, True], ids=["F.unfold", "Tensor.unfold"])
def test_unfold_attention_counts_its_matmuls(use_tensor_unfold):
    dim, k, size = 8, 3, 6
    tokens = size * size
    result = counted_by_both(UnfoldAttention(dim, k, use_tensor_unfold), torch.randn(1, dim, size, size))
    projections = tokens * dim * dim + tokens * dim * 2 * dim
    attention = 2 * tokens * k * k * dim  # q·kᵀ and a·v over k² neighbours per query
    assert result.gmacs * 1e9 == projections + attention


def test_gather_routed_attention_counts_its_matmuls():
    dim, regions, tokens, topk = 8, 4, 6, 2
    x = torch.randn(1, regions, tokens, dim)
    result = counted_by_both(GatherRouting(dim, regions, tokens, topk), x)
    qkv = regions * tokens * dim * 3 * dim
    routing = regions * regions * dim
    attention = 2 * regions * tokens * topk * tokens * dim
    assert result.gmacs * 1e9 == qkv + routing + attention
    assert "aten::topk" in result.uncounted_ops  # skipped, listed, and not a gap


@pytest.mark.parametrize("op", ["aten::unfold", "aten::im2col", "aten::gather", "aten::topk",
                                "aten::pixel_shuffle", "aten::pixel_unshuffle"])
def test_data_movement_is_cheap_not_a_gap(op):
    from vitbench.conventions import is_cheap_op

    assert is_cheap_op(op)


@pytest.mark.parametrize("op", ["torchvision::deform_conv2d", "aten::linalg_solve", "aten::cdist"])
def test_ops_with_macs_are_not_cheap(op):
    from vitbench.conventions import is_cheap_op

    assert not is_cheap_op(op)


def test_pixel_shuffle_moves_data_and_raises_no_gap():
    """ResTv2's up branch: conv to r²·C channels, PixelShuffle(r); and the way back."""
    block = nn.Sequential(nn.Conv2d(4, 16, 1), nn.PixelShuffle(2), nn.PixelUnshuffle(2))
    result = counted_by_both(block, torch.randn(1, 4, 6, 6))
    assert result.gmacs * 1e9 == 6 * 6 * 16 * 4
    assert result.uncounted_ops == {"aten::pixel_shuffle": 1, "aten::pixel_unshuffle": 1}
