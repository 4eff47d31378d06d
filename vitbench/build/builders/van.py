"""VAN (Visual Attention Network, large-kernel attention) for ImageNet, random init.

Guo et al., "Visual Attention Network", CVMJ 2023 (arXiv:2202.09741). timm 1.0 does not
register VAN (Hugging Face transformers only keeps it among deprecated models); written from
the paper and the configuration of the authors' ``Visual-Attention-Network/VAN-Classification``
``models/van.py``:

- four stages behind overlapping patch embeddings (a 7×7 stride-4 conv for the first, 3×3
  stride-2 convs after, each followed by BatchNorm); a LayerNorm (eps 1e-6) over the tokens
  after every stage; mean pooling and a linear head;
- block: BatchNorm → attention → layer scale (init 1e-2) → residual; BatchNorm → MLP →
  layer scale → residual. Attention is 1×1 conv, GELU, large-kernel attention, 1×1 conv,
  plus its own shortcut. Large-kernel attention (LKA) multiplies its input by a map from a
  5×5 depthwise conv, a 7×7 depthwise conv with dilation 3 and a 1×1 conv. The MLP is
  1×1 conv → 3×3 depthwise conv → GELU → 1×1 conv;
- VAN-B0: dims 32-64-160-256, MLP ratios 8-8-4-4, depths 3-3-5-2.

At 224² with 1000 classes VAN-B0 has 4.106 M parameters and 0.864 GMACs (README: 4.1 M,
0.9 GFLOPs); at 256² it is 1.129 GMACs.
"""

from __future__ import annotations

from typing import Sequence

import torch
from timm.layers import DropPath, LayerScale2d, to_2tuple, trunc_normal_
from torch import nn

from vitbench.build.builders import register

__all__ = ["VAN", "van_b0"]


class LargeKernelAttention(nn.Module):
    """``x · conv1×1(dwconv7×7,d3(dwconv5×5(x)))``: the paper's decomposed 21×21 kernel.

    Its footprint is 23×23 (radius 2 + 3·3).
    """

    def __init__(self, dim: int):
        super().__init__()
        self.conv0 = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.conv_spatial = nn.Conv2d(dim, dim, 7, padding=9, groups=dim, dilation=3)
        self.conv1 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv1(self.conv_spatial(self.conv0(x)))


class SpatialAttention(nn.Module):
    """1×1 conv → GELU → LKA → 1×1 conv, with a shortcut around it."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj_1 = nn.Conv2d(dim, dim, 1)
        self.activation = nn.GELU()
        self.spatial_gating_unit = LargeKernelAttention(dim)
        self.proj_2 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.proj_2(self.spatial_gating_unit(self.activation(self.proj_1(x))))


class ConvMlp(nn.Module):
    """1×1 conv → 3×3 depthwise conv → GELU → 1×1 conv."""

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden_dim, 1)
        self.dwconv = nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1, groups=hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden_dim, dim, 1)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.dwconv(self.fc1(x))))))


class Block(nn.Module):
    """BatchNorm pre-norm block: LKA attention and conv MLP, each layer-scaled."""

    def __init__(self, dim: int, mlp_ratio: float, drop: float = 0.0, drop_path: float = 0.0,
                 layer_scale_init: float = 1e-2):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = SpatialAttention(dim)
        self.layer_scale_1 = LayerScale2d(dim, layer_scale_init)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio), drop)
        self.layer_scale_2 = LayerScale2d(dim, layer_scale_init)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.layer_scale_1(self.attn(self.norm1(x))))
        return x + self.drop_path(self.layer_scale_2(self.mlp(self.norm2(x))))


class VAN(nn.Module):
    """VAN classifier: four LKA stages at strides 4/8/16/32, mean pooling, linear head.

    Fully convolutional apart from the per-stage token LayerNorm, so any input size runs;
    ``img_size`` is only recorded as the size the model is meant for.
    """

    def __init__(
        self,
        img_size: int | Sequence[int] = 224,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dims: Sequence[int] = (64, 128, 256, 512),
        mlp_ratios: Sequence[float] = (4, 4, 4, 4),
        depths: Sequence[int] = (3, 4, 6, 3),
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ):
        super().__init__()
        self.img_size = to_2tuple(img_size)
        self.num_classes = num_classes
        self.num_features = embed_dims[-1]
        drop_path_rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        self.patch_embeds = nn.ModuleList()
        self.stages = nn.ModuleList()
        self.norms = nn.ModuleList()
        in_dim, cursor = in_chans, 0
        for i, (dim, depth) in enumerate(zip(embed_dims, depths)):
            kernel, stride = (7, 4) if i == 0 else (3, 2)
            self.patch_embeds.append(nn.Sequential(
                nn.Conv2d(in_dim, dim, kernel, stride, kernel // 2), nn.BatchNorm2d(dim)))
            self.stages.append(nn.Sequential(*(
                Block(dim, mlp_ratios[i], drop_rate, drop_path_rates[cursor + j])
                for j in range(depth))))
            self.norms.append(nn.LayerNorm(dim, eps=1e-6))
            in_dim, cursor = dim, cursor + depth
        self.head = nn.Linear(embed_dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d):
            fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
            nn.init.normal_(module.weight, 0.0, (2.0 / (fan_out // module.groups)) ** 0.5)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Run the four stages; returns the normalised last-stage tokens ``(B, N, C)``."""
        for i, (embed, stage, norm) in enumerate(zip(self.patch_embeds, self.stages, self.norms)):
            x = stage(embed(x))
            batch, dim, height, width = x.shape
            x = norm(x.flatten(2).transpose(1, 2))
            if i < len(self.stages) - 1:
                x = x.transpose(1, 2).reshape(batch, dim, height, width)
        return x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.mean(dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register
def van_b0(**kwargs) -> nn.Module:
    """VAN-B0: 4.106 M params, 0.864 GMACs at 224² (README: 4.1 M, 0.9 G)."""
    return VAN(**{"embed_dims": (32, 64, 160, 256), "mlp_ratios": (8, 8, 4, 4),
                  "depths": (3, 3, 5, 2), **kwargs})
