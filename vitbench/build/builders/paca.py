"""PaCa-ViT-Tiny (patch-to-cluster attention) for ImageNet classification, random init.

Grainger et al., "PaCa-ViT: Learning Patch-to-Cluster Attention in Vision Transformers",
CVPR 2023 (arXiv:2203.11987). Written from the configuration of the authors'
``iVMCL/PaCaViT`` ``models/paca_vit.py`` (``_arch_settings["tiny"]`` and the ``PaCaViT``
defaults used by ``pacavit_tiny_p2cconv_100_0``; the source builds its norms and
activations through mmcv, here they are plain ``nn.LayerNorm``/``nn.GELU``):

- stem: 3×3 stride-2 conv to 48, 3×3 stride-2 conv to 96 (both with bias, no activation
  between), LayerNorm2d (eps 1e-6); between stages a 3×3 stride-2 conv + LayerNorm2d;
- four stages, dims 96-192-320-384, heads 2-4-8-16, MLP ratio 4, depths 2-2-4-2; a
  LayerNorm (eps 1e-6) after every stage; mean over tokens and a linear head;
- pre-norm blocks (LayerNorm eps 1e-6): patch-to-cluster attention, then an MLP
  ``fc1 → (x + dwconv3×3(x)) → GELU → fc2``;
- patch-to-cluster attention with 100 clusters in stages 1-3: the first block of a stage
  computes the assignment (``P2CConv2d``: 7×7 depthwise conv, GELU, 1×1 conv, GELU, 1×1
  conv to 100 without bias, softmax over the patches); every block of the stage pools its
  own tokens with that assignment into 100 cluster tokens (``z @ x``) and LayerNorms them
  (eps 1e-6). Queries come from the patches, keys and values from the clusters, through
  separate q/k/v projections with bias and an output projection. Stage 4 has 0 clusters:
  plain self-attention over its 7×7 tokens.

Checked against the source's own module (run locally with mmcv's two builders replaced by
the torch layers they return): the same 12,200,680 parameters, key for key, and the same
logits at 224² and on a rectangular input.

At 224² with 1000 classes: 12.20 M parameters (README: 12.2 M) and 3.219 GMACs under
``matmul-only``, 3.237 with fvcore's norm terms (README: 3.2 G).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from timm.layers import LayerNorm2d, trunc_normal_
from torch import nn

from vitbench.build.builders import register

__all__ = [
    "ConvClustering",
    "PatchToClusterAttention",
    "DwConvMlp",
    "PaCaBlock",
    "PaCaViT",
    "paca_vit_tiny",
]


def _layer_norm(dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=1e-6)


class ConvClustering(nn.Module):
    """``P2CConv2d``: cluster logits ``(B, M, H·W)`` from the tokens laid out as a map."""

    def __init__(self, dim: int, num_clusters: int, kernel_size: int = 7):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim), nn.GELU(),
            nn.Conv2d(dim, dim, 1), nn.GELU(),
            nn.Conv2d(dim, num_clusters, 1, bias=False))

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        x = x.transpose(1, 2).reshape(x.shape[0], -1, height, width)
        return self.net(x).flatten(2)


class PatchToClusterAttention(nn.Module):
    """Queries from the N patches, keys/values from M cluster tokens (``z @ x``)."""

    def __init__(self, dim: int, num_heads: int, num_clusters: int, computes_clusters: bool):
        super().__init__()
        self.num_heads = num_heads
        self.num_clusters = num_clusters
        self.clustering = (ConvClustering(dim, num_clusters)
                           if num_clusters > 0 and computes_clusters else None)
        self.cluster_norm = _layer_norm(dim) if num_clusters > 0 else nn.Identity()
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        return x.reshape(batch, tokens, self.num_heads, dim // self.num_heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, height: int, width: int,
                assignment: Optional[torch.Tensor]) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        if self.num_clusters > 0:
            if self.clustering is not None:
                assignment = self.clustering(x, height, width).softmax(dim=-1)  # B M N
            context = self.cluster_norm(assignment @ x)  # B M C
        else:
            context = x
        out = F.scaled_dot_product_attention(
            self._heads(self.q(x)), self._heads(self.k(context)), self._heads(self.v(context)))
        return self.proj(out.transpose(1, 2).flatten(2)), assignment


class DwConvMlp(nn.Module):
    """``fc1 → x + dwconv3×3(x) → GELU → fc2`` over tokens laid out ``H×W``."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        x = self.fc1(x)
        spatial = x.transpose(1, 2).reshape(x.shape[0], -1, height, width)
        x = x + self.dwconv(spatial).flatten(2).transpose(1, 2)
        return self.fc2(self.act(x))


class PaCaBlock(nn.Module):
    """Pre-norm: x + PaCa(LN(x)); x + MLP(LN(x)). Passes the stage's assignment on."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, num_clusters: int,
                 computes_clusters: bool):
        super().__init__()
        self.norm1 = _layer_norm(dim)
        self.attn = PatchToClusterAttention(dim, num_heads, num_clusters, computes_clusters)
        self.norm2 = _layer_norm(dim)
        self.mlp = DwConvMlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, height: int, width: int,
                assignment: Optional[torch.Tensor]) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        attended, assignment = self.attn(self.norm1(x), height, width, assignment)
        x = x + attended
        return x + self.mlp(self.norm2(x), height, width), assignment


class PaCaViT(nn.Module):
    """Conv stem, four stages of PaCa blocks with strided-conv transitions, mean + linear head."""

    def __init__(self, embed_dims: Sequence[int] = (96, 192, 320, 384),
                 num_heads: Sequence[int] = (2, 4, 8, 16),
                 mlp_ratios: Sequence[float] = (4, 4, 4, 4),
                 depths: Sequence[int] = (2, 2, 4, 2),
                 clusters: Sequence[int] = (100, 100, 100, 0),
                 num_classes: int = 1000, in_chans: int = 3,
                 img_size: int | Sequence[int] = 224):
        super().__init__()
        # img_size is accepted for the zoo: nothing in the model depends on it.
        del img_size
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, embed_dims[0] // 2, 3, stride=2, padding=1),
            nn.Conv2d(embed_dims[0] // 2, embed_dims[0], 3, stride=2, padding=1),
            LayerNorm2d(embed_dims[0], eps=1e-6))
        self.stages = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.transitions = nn.ModuleList()
        for index, dim in enumerate(embed_dims):
            self.stages.append(nn.ModuleList(
                PaCaBlock(dim, num_heads[index], mlp_ratios[index], clusters[index],
                          computes_clusters=block == 0)
                for block in range(depths[index])))
            self.norms.append(_layer_norm(dim))
            if index < len(embed_dims) - 1:
                self.transitions.append(nn.Sequential(
                    nn.Conv2d(dim, embed_dims[index + 1], 3, stride=2, padding=1),
                    LayerNorm2d(embed_dims[index + 1], eps=1e-6)))
        self.head = (nn.Linear(embed_dims[-1], num_classes) if num_classes > 0
                     else nn.Identity())
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for index, (blocks, norm) in enumerate(zip(self.stages, self.norms)):
            height, width = x.shape[-2:]
            x = x.flatten(2).transpose(1, 2)
            assignment = None
            for block in blocks:
                x, assignment = block(x, height, width, assignment)
            x = norm(x)
            if index < len(self.transitions):
                x = x.transpose(1, 2).reshape(x.shape[0], -1, height, width)
                x = self.transitions[index](x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x).mean(dim=1))


@register
def paca_vit_tiny(**kwargs) -> nn.Module:
    """PaCa-ViT-Tiny (conv clustering, 100 clusters): 12.20 M params, 3.219 GMACs at 224²
    (README: 12.2 M, 3.2 G)."""
    return PaCaViT(**kwargs)
