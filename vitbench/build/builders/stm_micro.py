"""STM-Evaluation's micro models: U-Swin, U-ConvNeXt and U-HaloNet (~4.4 M), random init.

Hu et al., "Demystify Transformers & Convolutions in Modern Image Deep Networks"
(arXiv:2211.05781; TPAMI 2025) fit several spatial token mixers (STMs) into one unified
architecture. Source: ``OpenGVLab/STM-Evaluation``, ``classification/models/meta_arch.py``
(the architecture), ``blocks/{swin,convnext,halonet}.py`` (the mixers) and
``model_factory/*_factory.py`` (``unified_{swin,convnext,halo}_micro``). Written here from
those configuration facts; timm supplies the layers (``WindowAttention``, ``PosEmbedRel``).

The unified architecture (all three micro models):

- stem: 3×3 stride-2 conv to C/2, LayerNorm2d, GELU, 3×3 stride-2 conv to C, LayerNorm2d;
- between stages: 3×3 stride-2 conv (no bias) + LayerNorm2d; a LayerNorm2d after every stage;
- blocks: pre-norm, token mixer and MLP (ratio 4) each with layer scale (1e-6) and residual;
- head: 1×1 conv (no bias) to 1.5·C4, BatchNorm, GELU, global average pool, linear;
- dims 32·2^i = 32/64/128/256; LayerNorm eps 1e-6 except the Halo block's (torch's 1e-5).

Mixers:

- **U-Swin-Micro** (depths 2-2-9-2, heads 1-2-4-8): 7×7 window attention with a relative
  position bias, shifted by 3 in odd blocks; a stage no larger than the window attends over
  all of it unshifted (so at 224² stage 4 is one 7×7 window). Other input sizes are zero-padded
  to whole windows (as Swin's detection backbone does; 224² needs none).
- **U-ConvNeXt-Micro** (depths 3-3-8-3): LayerNorm2d, 1×1 conv, 7×7 depthwise conv, 1×1 conv.
- **U-HaloNet-Micro** (depths 2-2-9-2, heads 1-2-4-8): 7×7 query blocks attend to 13×13 key
  windows (halo 3, keys from a bias-free 1×1 conv, queries from a bias-free linear) with
  query-related 1-D relative logits (timm's ``PosEmbedRel``) and a mask over the zero halo
  beyond the image border, then a linear projection. Inputs whose stage maps are not whole
  blocks are padded to whole blocks and the padding masked the same way (224² needs none).

At 224² with 1000 classes (self-measured; matmul-only MACs, both counters agree; the same
counts and, with the same weights, the same outputs as the source's own modules):

==========  ==========  ======  ======================  ============
model       params (M)  GMACs   README (params, top-1)  seed print
==========  ==========  ======  ======================  ============
U-Swin      4.381       0.701   ~4.5 M, 74.4 %          4.4 M, 0.7 G
U-ConvNeXt  4.440       0.648   ~4.5 M, 75.1 %          4.4 M, 0.7 G
U-HaloNet   4.390       0.861   ~4.5 M, 75.8 %          4.4 M, 0.7 G
==========  ==========  ======  ======================  ============

The repository prints no per-model GFLOPs: its README's per-family tables (commented out)
all repeat one row, "Micro 4.4 M, 0.71 GMACs, 74.4 %", whose top-1 is U-Swin's. U-HaloNet's
13×13 key windows hold 3.4× the keys of Swin's 7×7 windows, which puts it 0.16 GMACs above
U-Swin although the two share every other layer, so the seed's 0.7 G for it is not a MAC
count of this model. The key windows are views (``Tensor.unfold``) and the attention runs as
plain matmuls, so every MAC of the mixer is visible to both counters.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath, LayerNorm2d, Mlp, to_2tuple, trunc_normal_
from timm.layers.halo_attn import PosEmbedRel
from timm.models.swin_transformer import WindowAttention, window_partition, window_reverse
from torch import nn

from vitbench.build.builders import register

__all__ = [
    "UnifiedMetaArch",
    "SwinMixerBlock",
    "ConvNeXtMixerBlock",
    "HaloMixerBlock",
    "HaloAttention",
    "shifted_window_mask",
    "stm_swin_micro",
    "stm_convnext_micro",
    "stm_halonet_micro",
]

MICRO_DIMS = (32, 64, 128, 256)
MICRO_HEADS = (1, 2, 4, 8)
#: Swin's attention-mask value for token pairs from different regions of a shifted window.
SHIFT_MASK_VALUE = -100.0


def _layer_scale(init: float, shape: tuple[int, ...]) -> nn.Parameter | None:
    return nn.Parameter(init * torch.ones(shape)) if init > 0 else None


def _scaled(gamma: nn.Parameter | None, x: torch.Tensor) -> torch.Tensor:
    return x if gamma is None else gamma * x


def shifted_window_mask(height: int, width: int, window: int, shift: int) -> torch.Tensor:
    """Swin's SW-MSA mask for an ``height×width`` map: ``(windows, w², w²)``, 0 or -100.

    After the cyclic shift a window may hold tokens from up to three bands per axis; pairs
    from different bands must not attend to each other.
    """
    def bands(size: int) -> torch.Tensor:
        index = torch.arange(size)
        return (index >= size - window).long() + (index >= size - shift).long()

    regions = (bands(height)[:, None] * 3 + bands(width)[None, :]).float()
    windows = window_partition(regions[None, :, :, None], (window, window)).flatten(1)
    diff = windows[:, None, :] - windows[:, :, None]
    return torch.zeros_like(diff).masked_fill(diff != 0, SHIFT_MASK_VALUE)


class SwinMixerBlock(nn.Module):
    """U-Swin block on ``(B, C, H, W)``: (shifted) window attention, then an MLP."""

    def __init__(self, dim: int, num_heads: int, resolution: tuple[int, int], window: int,
                 shifted: bool, layer_scale: float, drop_path: float = 0.0):
        super().__init__()
        self.window = window
        self.shift = window // 2 if shifted else 0
        if min(resolution) <= window:  # the whole stage fits one window: no shift
            self.window, self.shift = min(resolution), 0
        self.norm1 = LayerNorm2d(dim)
        self.attn = WindowAttention(dim, num_heads=num_heads, window_size=self.window,
                                    qkv_bias=True)
        self.gamma_1 = _layer_scale(layer_scale, (dim,))
        self.norm2 = LayerNorm2d(dim)
        self.mlp = Mlp(dim, 4 * dim)
        self.gamma_2 = _layer_scale(layer_scale, (dim,))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self._masks: dict[tuple, torch.Tensor] = {}

    def _mask(self, height: int, width: int, like: torch.Tensor) -> torch.Tensor | None:
        if not self.shift:
            return None
        key = (height, width, str(like.device), like.dtype)
        if key not in self._masks:
            mask = shifted_window_mask(height, width, self.window, self.shift)
            self._masks[key] = mask.to(device=like.device, dtype=like.dtype)
        return self._masks[key]

    def _mix(self, x: torch.Tensor) -> torch.Tensor:
        """Window attention over ``(B, H, W, C)``, padded to whole windows and cropped back."""
        _, height, width, dim = x.shape
        pad_h, pad_w = (-height) % self.window, (-width) % self.window
        if pad_h or pad_w:
            x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
        padded_h, padded_w = height + pad_h, width + pad_w
        if self.shift:
            x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
        window = (self.window, self.window)
        windows = window_partition(x, window).view(-1, self.window * self.window, dim)
        windows = self.attn(windows, mask=self._mask(padded_h, padded_w, x))
        x = window_reverse(windows.view(-1, *window, dim), window, padded_h, padded_w)
        if self.shift:
            x = torch.roll(x, shifts=(self.shift, self.shift), dims=(1, 2))
        return x[:, :height, :width]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = _scaled(self.gamma_1, self._mix(self.norm1(x).permute(0, 2, 3, 1)))
        x = x + self.drop_path(mixed.permute(0, 3, 1, 2))
        mlp = _scaled(self.gamma_2, self.mlp(self.norm2(x).permute(0, 2, 3, 1)))
        return x + self.drop_path(mlp.permute(0, 3, 1, 2))


class ConvNeXtMixerBlock(nn.Module):
    """U-ConvNeXt block on ``(B, C, H, W)``: 1×1 → k×k depthwise → 1×1 conv, then an MLP."""

    def __init__(self, dim: int, layer_scale: float, kernel_size: int = 7,
                 drop_path: float = 0.0):
        super().__init__()
        self.dw_norm = LayerNorm2d(dim)
        self.dw_input_proj = nn.Conv2d(dim, dim, 1)
        self.dwconv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.dw_out_proj = nn.Conv2d(dim, dim, 1)
        self.gamma_1 = _layer_scale(layer_scale, (1, dim, 1, 1))
        self.pw_norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, 4 * dim)
        self.gamma_2 = _layer_scale(layer_scale, (1, 1, 1, dim))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = self.dw_out_proj(self.dwconv(self.dw_input_proj(self.dw_norm(x))))
        x = x + self.drop_path(_scaled(self.gamma_1, mixed))
        mlp = _scaled(self.gamma_2, self.mlp(self.pw_norm(x.permute(0, 2, 3, 1))))
        return x + self.drop_path(mlp.permute(0, 3, 1, 2))


class HaloAttention(nn.Module):
    """Blocked local attention over ``(B, H, W, C)``: each ``b×b`` query block attends to
    the ``(b+2h)×(b+2h)`` window around it; keys outside the image are masked out."""

    def __init__(self, dim: int, num_heads: int, block_size: int = 7, halo_size: int = 3):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.block_size = block_size
        self.halo_size = halo_size
        self.win_size = block_size + 2 * halo_size
        self.kv = nn.Conv2d(dim, 2 * dim, 1, bias=False)
        self.q = nn.Linear(dim, dim, bias=False)
        self.pos_embed = PosEmbedRel(block_size, self.win_size, self.head_dim, self.scale)
        self.proj = nn.Linear(dim, dim)
        self._masks: dict[tuple, torch.Tensor] = {}

    def _outside(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        """``(1, blocks, 1, win²)``: True where a window's key lies outside the image."""
        key = (height, width, str(device))
        if key not in self._masks:
            block, halo, win = self.block_size, self.halo_size, self.win_size
            pads = (halo, halo + (-width) % block, halo, halo + (-height) % block)
            inside = F.pad(torch.ones(1, 1, height, width, device=device), pads)
            inside = inside.unfold(2, win, block).unfold(3, win, block)
            self._masks[key] = ~inside.reshape(1, -1, 1, win * win).bool()
        return self._masks[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, dim = x.shape
        block, halo, win, heads = self.block_size, self.halo_size, self.win_size, self.num_heads
        pad_h, pad_w = (-height) % block, (-width) % block
        rows, cols = (height + pad_h) // block, (width + pad_w) // block

        q = F.pad(self.q(x), (0, 0, 0, pad_w, 0, pad_h))
        q = q.reshape(batch, rows, block, cols, block, heads, self.head_dim)
        q = q.permute(0, 5, 1, 3, 2, 4, 6).reshape(batch * heads, rows * cols, block * block, -1)

        # Keys/values: the 1×1 conv runs on the image once; the overlapping windows are views.
        kv = F.pad(self.kv(x.permute(0, 3, 1, 2)), (halo, halo + pad_w, halo, halo + pad_h))
        kv = kv.unfold(2, win, block).unfold(3, win, block)
        kv = kv.reshape(batch * heads, 2 * self.head_dim, rows * cols, win * win)
        k, v = kv.permute(0, 2, 3, 1).split(self.head_dim, dim=-1)

        attn = (q * self.scale) @ k.transpose(-1, -2) + self.pos_embed(q)
        attn = attn.masked_fill(self._outside(height, width, x.device),
                                torch.finfo(attn.dtype).min)
        out = attn.softmax(dim=-1) @ v
        out = out.reshape(batch, heads, rows, cols, block, block, self.head_dim)
        out = out.permute(0, 2, 4, 3, 5, 1, 6).reshape(batch, rows * block, cols * block, dim)
        return self.proj(out[:, :height, :width])


class HaloMixerBlock(nn.Module):
    """U-HaloNet block on channels-last ``(B, H, W, C)``: halo attention, then an MLP."""

    channels_last = True

    def __init__(self, dim: int, num_heads: int, layer_scale: float, block_size: int = 7,
                 halo_size: int = 3, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = HaloAttention(dim, num_heads, block_size, halo_size)
        self.gamma_1 = _layer_scale(layer_scale, (1, 1, 1, dim))
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim)
        self.gamma_2 = _layer_scale(layer_scale, (1, 1, 1, dim))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(_scaled(self.gamma_1, self.attn(self.norm1(x))))
        return x + self.drop_path(_scaled(self.gamma_2, self.mlp(self.norm2(x))))


#: ``make_block(dim, stage, index, resolution, layer_scale, drop_path) -> nn.Module``.
BlockFactory = Callable[[int, int, int, tuple[int, int], float, float], nn.Module]


class UnifiedMetaArch(nn.Module):
    """The unified four-stage classifier; ``make_block`` supplies each stage's blocks.

    Blocks see ``(B, C, H, W)`` unless their class sets ``channels_last``, in which case
    each stage runs on ``(B, H, W, C)`` and is permuted back before its norm.
    """

    def __init__(self, make_block: BlockFactory, depths: Sequence[int],
                 dims: Sequence[int] = MICRO_DIMS, img_size: int | Sequence[int] = 224,
                 in_chans: int = 3, num_classes: int = 1000, layer_scale: float = 1e-6,
                 head_ratio: float = 1.5, drop_path_rate: float = 0.0):
        super().__init__()
        img_size = to_2tuple(img_size)
        self.num_classes = num_classes
        self.num_features = int(dims[-1] * head_ratio)
        stem_dim = dims[0] // 2
        self.downsample_layers = nn.ModuleList([nn.Sequential(
            nn.Conv2d(in_chans, stem_dim, 3, stride=2, padding=1), LayerNorm2d(stem_dim),
            nn.GELU(),
            nn.Conv2d(stem_dim, dims[0], 3, stride=2, padding=1), LayerNorm2d(dims[0]))])
        self.downsample_layers.extend(
            nn.Sequential(nn.Conv2d(dims[i], dims[i + 1], 3, stride=2, padding=1, bias=False),
                          LayerNorm2d(dims[i + 1]))
            for i in range(len(dims) - 1))

        total = sum(depths)  # linearly rising drop-path rates (plain floats: meta-safe)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        self.stages = nn.ModuleList()
        self.stage_norms = nn.ModuleList()
        cursor = 0
        for stage, (depth, dim) in enumerate(zip(depths, dims)):
            stride = 4 * 2 ** stage
            resolution = (img_size[0] // stride, img_size[1] // stride)
            self.stages.append(nn.ModuleList(
                make_block(dim, stage, j, resolution, layer_scale, rates[cursor + j])
                for j in range(depth)))
            self.stage_norms.append(LayerNorm2d(dim))
            cursor += depth

        self.conv_head = nn.Sequential(nn.Conv2d(dims[-1], self.num_features, 1, bias=False),
                                       nn.BatchNorm2d(self.num_features), nn.GELU())
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Stem, four stages and the 1×1 head conv; returns ``(B, 1.5·C4, H/32, W/32)``."""
        for downsample, blocks, norm in zip(self.downsample_layers, self.stages,
                                            self.stage_norms):
            x = downsample(x)
            channels_last = getattr(blocks[0], "channels_last", False)
            if channels_last:
                x = x.permute(0, 2, 3, 1)
            for block in blocks:
                x = block(x)
            if channels_last:
                x = x.permute(0, 3, 1, 2)
            x = norm(x)
        return self.conv_head(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _swin_block(heads: Sequence[int], window: int) -> BlockFactory:
    def make(dim, stage, index, resolution, layer_scale, drop_path):
        return SwinMixerBlock(dim, heads[stage], resolution, window, shifted=index % 2 == 1,
                              layer_scale=layer_scale, drop_path=drop_path)
    return make


def _convnext_block(kernel_size: int) -> BlockFactory:
    def make(dim, stage, index, resolution, layer_scale, drop_path):
        return ConvNeXtMixerBlock(dim, layer_scale, kernel_size, drop_path)
    return make


def _halo_block(heads: Sequence[int], block_size: int, halo_size: int) -> BlockFactory:
    def make(dim, stage, index, resolution, layer_scale, drop_path):
        return HaloMixerBlock(dim, heads[stage], layer_scale, block_size, halo_size, drop_path)
    return make


@register
def stm_swin_micro(**kwargs) -> nn.Module:
    """U-Swin-Micro (``unified_swin_micro``): depths 2-2-9-2, window 7; 4.381 M, 0.701 GMACs."""
    return UnifiedMetaArch(_swin_block(MICRO_HEADS, window=7), depths=(2, 2, 9, 2), **kwargs)


@register
def stm_convnext_micro(**kwargs) -> nn.Module:
    """U-ConvNeXt-Micro (``unified_convnext_micro``): depths 3-3-8-3, 7×7 depthwise;
    4.440 M, 0.648 GMACs."""
    return UnifiedMetaArch(_convnext_block(kernel_size=7), depths=(3, 3, 8, 3), **kwargs)


@register
def stm_halonet_micro(**kwargs) -> nn.Module:
    """U-HaloNet-Micro (``unified_halo_micro``): depths 2-2-9-2, block 7, halo 3;
    4.390 M, 0.861 GMACs."""
    return UnifiedMetaArch(_halo_block(MICRO_HEADS, block_size=7, halo_size=3),
                           depths=(2, 2, 9, 2), **kwargs)
