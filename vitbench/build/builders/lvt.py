"""LVT (Lite Vision Transformer) for ImageNet classification, random init.

Yang et al., "Lite Vision Transformer with Enhanced Self-Attention", CVPR 2022
(arXiv:2112.10809). Source: ``Chenglin-Yang/LVT`` ``classification/models/lvt.py`` and
``lvt_cls.py`` (``lvt_cls``) with ``classification/configs/lvt_imagenet.py``. Written here
from those configuration facts; timm supplies VOLO's class-attention block, which LVT's
post layers are.

Configuration (``lvt_cls``): four stages of 2 blocks, widths 64-64-160-256, heads 2-2-5-8,
MLP ratios 4-8-4-4; overlapping patch embeddings (7×7 stride-4 conv, then 3×3 stride-2
convs, each + LayerNorm), channels-last; pre-norm blocks, no qkv bias.

- **Stage 1, convolutional self-attention (CSA)**: for every 3×3 stride-2 neighbourhood
  (``F.unfold``, padding 1) a linear map of the 2×2-average-pooled input gives per head a
  9×9 attention matrix (softmax over the 9 sources); the 9 unfolded vectors pass a
  position-wise linear map (a 1×1 conv with 9 groups, C→C per position), are mixed by the
  attention (a matmul), folded back (``F.fold``: overlapping contributions add) and
  projected. Plain linear MLP.
- **Stages 2-4, recursive atrous self-attention (RASA)**: queries pass a shared 3×3
  depthwise kernel at dilations 1, 3, 5 (each + SiLU, summed); keys/values come from a
  stride-``sr`` conv + LayerNorm (``sr`` 4, 2, 1); the attention runs twice with the same
  weights, ``y = SiLU(A(x)); y = SiLU(A(y + x))``. MLP: 1×1 conv, 3×3 depthwise conv,
  GELU, 1×1 conv.
- **Head**: a class token and two class-attention blocks (VOLO's, MLP ratio 4), LayerNorm,
  then ``head(cls) + ½·max over tokens of aux_head(token)`` (token labelling's inference
  output). The training-time MixToken and the auxiliary outputs are not built.

At 224² with 1000 classes (self-measured; parameters and, with the same weights, outputs
equal the source's own ``lvt_cls``): 5.522 M parameters, of which the four stages hold
3.429 M (the README's "Backbone Params" 3.4 M), the class-attention layers 1.58 M and the
two heads 0.51 M; 0.889 GMACs matmul-only (0.897 with fvcore's norm convention), both
counters agreeing (README 0.9 G). CSA's MACs are all in the linear map, the grouped 1×1
conv and the attention matmul, which both counters count; ``F.unfold``/``F.fold``
(``aten::im2col``/``col2im``) only move and add values.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, to_2tuple, trunc_normal_
from timm.models.volo import ClassBlock
from torch import nn

from vitbench.build.builders import register

__all__ = ["LiteVisionTransformer", "ConvSelfAttention", "RecursiveAtrousAttention", "lvt_cls"]


class ConvSelfAttention(nn.Module):
    """CSA on ``(B, H, W, C)`` (module docstring): 3×3 neighbourhoods, stride 2."""

    def __init__(self, dim: int, num_heads: int, kernel: int = 3, stride: int = 2):
        super().__init__()
        self.num_heads, self.kernel, self.stride = num_heads, kernel, stride
        self.scale = (dim // num_heads) ** -0.5
        self.attn = nn.Linear(dim, kernel ** 4 * num_heads)
        # Position-wise C→C maps of the k² unfolded vectors (the source's grouped 1×1 conv).
        self.weight = nn.Conv2d(kernel ** 2 * dim, kernel ** 2 * dim, 1, groups=kernel ** 2,
                                bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, dim = x.shape
        k2, heads, pad = self.kernel ** 2, self.num_heads, self.kernel // 2
        rows, cols = math.ceil(height / self.stride), math.ceil(width / self.stride)
        image = x.permute(0, 3, 1, 2)

        pooled = F.avg_pool2d(image, self.stride, self.stride, ceil_mode=True)
        attn = self.attn(pooled.permute(0, 2, 3, 1)).reshape(batch, rows * cols, heads, k2, k2)
        attn = (attn.transpose(1, 2) * self.scale).softmax(dim=-1)  # (B, heads, N, k², k²)

        v = F.unfold(image, self.kernel, padding=pad, stride=self.stride)  # (B, C·k², N)
        v = v.reshape(batch, dim, k2, rows * cols).permute(0, 3, 2, 1)
        v = self.weight(v.reshape(-1, k2 * dim, 1, 1))
        v = v.reshape(batch, rows * cols, k2, heads, -1).permute(0, 3, 1, 2, 4)

        out = (attn @ v).permute(0, 1, 4, 3, 2).reshape(batch, dim * k2, rows * cols)
        out = F.fold(out, (height, width), self.kernel, padding=pad, stride=self.stride)
        return self.proj(out.permute(0, 2, 3, 1))


class RecursiveAtrousAttention(nn.Module):
    """RASA on ``(B, H, W, C)`` (module docstring)."""

    def __init__(self, dim: int, num_heads: int, sr_ratio: int,
                 atrous_rates: Sequence[int] = (1, 3, 5), recursions: int = 2):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.atrous_rates, self.recursions = tuple(atrous_rates), recursions
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(dim, 2 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim)
        # One 3×3 depthwise kernel shared by the dilations (the source's ds_conv2d).
        self.ds_weight = nn.Parameter(torch.empty(dim, 1, 3, 3))
        nn.init.kaiming_uniform_(self.ds_weight)

    def _attention(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, dim = x.shape
        q = self.q(x).permute(0, 3, 1, 2)
        q = sum(F.silu(F.conv2d(q, self.ds_weight, padding=rate, dilation=rate, groups=dim))
                for rate in self.atrous_rates)
        q = q.reshape(batch, self.num_heads, -1, height * width).transpose(-1, -2)
        source = x
        if self.sr_ratio > 1:
            source = self.norm(self.sr(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))
        kv = self.kv(source).reshape(batch, -1, 2, self.num_heads, dim // self.num_heads)
        k, v = kv.permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(batch, height, width, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.silu(self._attention(x)) if self.recursions > 1 else self._attention(x)
        for _ in range(self.recursions - 1):
            x = out + x
            out = F.silu(self._attention(x))
        return out


class ConvMlp(nn.Module):
    """1×1 conv, 3×3 depthwise conv, GELU, 1×1 conv on ``(B, H, W, C)``."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.depconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc2(self.act(self.depconv(self.fc1(x.permute(0, 3, 1, 2)))))
        return x.permute(0, 2, 3, 1)


class Block(nn.Module):
    """Pre-norm attention and MLP with residuals on ``(B, H, W, C)``."""

    def __init__(self, dim: int, attn: nn.Module, mlp: nn.Module, drop_path: float = 0.0):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), attn
        self.norm2, self.mlp = nn.LayerNorm(dim), mlp
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    """Overlapping patch embedding of ``(B, C, H, W)``: a strided conv, then LayerNorm;
    channels-last out."""

    def __init__(self, in_chans: int, dim: int, kernel: int, stride: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel, stride=stride, padding=kernel // 2)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class LiteVisionTransformer(nn.Module):
    """LVT with class-attention post layers (module docstring)."""

    def __init__(self, depths: Sequence[int] = (2, 2, 2, 2),
                 dims: Sequence[int] = (64, 64, 160, 256), heads: Sequence[int] = (2, 2, 5, 8),
                 mlp_ratios: Sequence[float] = (4, 8, 4, 4), sr_ratios: Sequence[int] = (8, 4, 2, 1),
                 post_layers: int = 2, img_size: int | Sequence[int] = 224, in_chans: int = 3,
                 num_classes: int = 1000, drop_path_rate: float = 0.0):
        super().__init__()
        to_2tuple(img_size)  # any size: every layer adapts to the input
        self.num_classes = num_classes
        total = sum(depths)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        self.stages = nn.ModuleList()
        for i, (depth, dim, head, ratio) in enumerate(zip(depths, dims, heads, mlp_ratios)):
            embed = PatchEmbed(in_chans if i == 0 else dims[i - 1], dim, 7 if i == 0 else 3,
                               4 if i == 0 else 2)
            blocks = []
            for j in range(depth):
                if i == 0:
                    attn, mlp = ConvSelfAttention(dim, head), Mlp(dim, int(dim * ratio))
                else:
                    attn = RecursiveAtrousAttention(dim, head, sr_ratios[i])
                    mlp = ConvMlp(dim, int(dim * ratio))
                blocks.append(Block(dim, attn, mlp, rates[sum(depths[:i]) + j]))
            self.stages.append(nn.Sequential(embed, *blocks))
        self.num_features = dim = dims[-1]
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.post_network = nn.ModuleList(ClassBlock(dim, heads[-1], mlp_ratio=mlp_ratios[-1])
                                          for _ in range(post_layers))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()
        self.aux_head = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()
        trunc_normal_(self.cls_token, std=0.02)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone and class-attention layers: ``(B, 1 + L, C)``, class token first."""
        for index, stage in enumerate(self.stages):
            if index:  # the next embedding convolves an image: channels first
                x = x.permute(0, 3, 1, 2)
            x = stage(x)
        x = x.flatten(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        for block in self.post_network:
            x = block(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x[:, 0]) + 0.5 * self.aux_head(x[:, 1:]).max(dim=1)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register
def lvt_cls(**kwargs) -> LiteVisionTransformer:
    """LVT (``lvt_cls``): 5.52 M (stages 3.43 M), 0.89 GMACs at 224² (README: backbone
    3.4 M, 0.9 G)."""
    return LiteVisionTransformer(**kwargs)
