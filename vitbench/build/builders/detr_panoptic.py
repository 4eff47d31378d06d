"""DETR for COCO panoptic segmentation: DETR plus its box-attention FPN-style mask head.

Carion et al., "End-to-End Object Detection with Transformers", ECCV 2020 (arXiv:2005.12872),
Sec. 4.4 and Fig. 8, as the authors' ``facebookresearch/detr`` defines it
(``models/segmentation.py``: ``DETRsegm``, ``MHAttentionMap``, ``MaskHeadSmallConv``;
written here from that definition, not copied). The detector is vitbench's full DETR
(:func:`vitbench.build.builders.detr.detr_r101`, frozen BatchNorm) with the panoptic
class head: 250 classes + "no object" (DETR sets ``num_classes = 250`` for COCO panoptic,
"large enough to hold max_obj_id + 1").

Mask head, on top of the last decoder layer's 100 query embeddings:

- box attention (``MHAttentionMap``): per query and head (8 × 32), the softmax over all
  H/32·W/32 positions of scaled dot products between a linear map of the query and a
  1×1 conv of the projected C5 features (no values: the maps themselves are the output);
- a small FPN per query: the projected C5 (256 ch) concatenated with the query's 8
  attention maps (264 ch); 3×3 conv 264→264, 264→128 at stride 32; then three times: a
  1×1 adapter of C4/C3/C2 (1024→128, 512→64, 256→32) plus the nearest-upsampled map,
  3×3 conv (128→64, 64→32, 32→16); a 3×3 conv 16→1 gives one mask logit map per query at
  stride 4. GroupNorm(8) and ReLU after every 3×3 conv but the last.

Parameters: 61.84 M in all (the printed 61.8 M; 61.62 M without the frozen stem and first
stage). The mask head runs once per query (100 times) from stride 32 to stride 4, so it
dominates the cost: at 800×1200 the whole model counts 335.96 GMACs, of which the mask
head and box attention are 173.9 (1.72 per query) and the detector 162.1 (DETR-R101 prints
152 G at its averaged COCO size). The printed 157 G is the detector's size, not the
panoptic model's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vitbench.build.builders import register
from vitbench.build.builders.detr import DETR, detr_r101, sine_position_encoding

__all__ = ["BoxAttentionMap", "MaskHeadSmallConv", "DETRPanoptic", "detr_r101_panoptic"]


class BoxAttentionMap(nn.Module):
    """Each query's per-head softmax attention over the feature map (no values)."""

    def __init__(self, dim: int = 256, heads: int = 8):
        super().__init__()
        self.heads, self.scale = heads, (dim / heads) ** -0.5
        self.q_linear = nn.Linear(dim, dim)
        self.k_linear = nn.Linear(dim, dim)

    def forward(self, queries: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """``queries`` (B, Q, d), ``features`` (B, d, H, W) → maps (B, Q, heads, H, W)."""
        batch, num_queries, dim = queries.shape
        height, width = features.shape[-2:]
        q = self.q_linear(queries).view(batch, num_queries, self.heads, dim // self.heads)
        k = F.conv2d(features, self.k_linear.weight[..., None, None], self.k_linear.bias)
        k = k.view(batch, self.heads, dim // self.heads, height * width)
        logits = torch.einsum("bqnc,bncs->bqns", q * self.scale, k)
        return logits.softmax(-1).view(batch, num_queries, self.heads, height, width)


class MaskHeadSmallConv(nn.Module):
    """Per-query FPN-style conv head: stride 32 → stride 4, one logit map per query."""

    def __init__(self, dim: int = 264, fpn_dims=(1024, 512, 256), context_dim: int = 256):
        super().__init__()
        inter = [dim, context_dim // 2, context_dim // 4, context_dim // 8, context_dim // 16]
        self.lay1, self.gn1 = nn.Conv2d(dim, dim, 3, padding=1), nn.GroupNorm(8, dim)
        self.lay2, self.gn2 = nn.Conv2d(dim, inter[1], 3, padding=1), nn.GroupNorm(8, inter[1])
        self.lay3, self.gn3 = nn.Conv2d(inter[1], inter[2], 3, padding=1), nn.GroupNorm(8, inter[2])
        self.lay4, self.gn4 = nn.Conv2d(inter[2], inter[3], 3, padding=1), nn.GroupNorm(8, inter[3])
        self.lay5, self.gn5 = nn.Conv2d(inter[3], inter[4], 3, padding=1), nn.GroupNorm(8, inter[4])
        self.out_lay = nn.Conv2d(inter[4], 1, 3, padding=1)
        self.adapter1 = nn.Conv2d(fpn_dims[0], inter[1], 1)
        self.adapter2 = nn.Conv2d(fpn_dims[1], inter[2], 1)
        self.adapter3 = nn.Conv2d(fpn_dims[2], inter[3], 1)

    def forward(self, features: torch.Tensor, maps: torch.Tensor, fpns) -> torch.Tensor:
        """``features`` (B, d, h, w), ``maps`` (B, Q, heads, h, w), ``fpns`` C4, C3, C2."""
        batch, num_queries = maps.shape[:2]

        def per_query(x: torch.Tensor) -> torch.Tensor:
            return x.repeat_interleave(num_queries, dim=0)

        x = torch.cat([per_query(features), maps.flatten(0, 1)], 1)
        x = F.relu(self.gn1(self.lay1(x)))
        x = F.relu(self.gn2(self.lay2(x)))
        for adapter, conv, norm, fpn in ((self.adapter1, self.lay3, self.gn3, fpns[0]),
                                         (self.adapter2, self.lay4, self.gn4, fpns[1]),
                                         (self.adapter3, self.lay5, self.gn5, fpns[2])):
            lateral = per_query(adapter(fpn))
            x = lateral + F.interpolate(x, size=lateral.shape[-2:], mode="nearest")
            x = F.relu(norm(conv(x)))
        return self.out_lay(x).view(batch, num_queries, *x.shape[-2:])


class DETRPanoptic(nn.Module):
    """A :class:`~vitbench.build.builders.detr.DETR` with the box-attention mask head.

    ``forward(images)`` returns ``(class_logits [B,100,251], boxes [B,100,4],
    mask_logits [B,100,H/4,W/4])``.
    """

    def __init__(self, detr: DETR, heads: int = 8):
        super().__init__()
        self.detr = detr
        dim = detr.hidden_dim
        self.bbox_attention = BoxAttentionMap(dim, heads)
        self.mask_head = MaskHeadSmallConv(dim + heads, (1024, 512, 256), dim)

    def forward(self, images: torch.Tensor):
        detr = self.detr
        stages, x = [], images
        for index, module in enumerate(detr.backbone):  # conv1 bn1 relu maxpool layer1..4
            x = module(x)
            if index >= 4:
                stages.append(x)
        features = detr.input_proj(stages[-1])
        batch, dim, height, width = features.shape
        pos = sine_position_encoding(height, width, dim // 2, device=features.device,
                                     dtype=features.dtype)
        pos = pos.flatten(1).permute(1, 0).unsqueeze(1).expand(-1, batch, -1)
        memory = features.flatten(2).permute(2, 0, 1)
        for layer in detr.encoder:
            memory = layer(memory, pos)
        query_pos = detr.query_embed.weight.unsqueeze(1).expand(-1, batch, -1)
        tgt = torch.zeros_like(query_pos)
        for layer in detr.decoder:
            tgt = layer(tgt, memory, pos, query_pos)
        hs = detr.decoder_norm(tgt).transpose(0, 1)
        memory_map = memory.permute(1, 2, 0).reshape(batch, dim, height, width)
        maps = self.bbox_attention(hs, memory_map)
        masks = self.mask_head(features, maps, stages[2::-1])
        return detr.class_embed(hs), detr.bbox_embed(hs).sigmoid(), masks


@register
def detr_r101_panoptic(num_classes: int = 250, img_size=None, **kwargs) -> DETRPanoptic:
    """DETR-R101 with the panoptic mask head (paper: 61.8 M params, PQ 45.1 on COCO val).

    ``img_size`` is accepted and ignored (any input size).
    """
    return DETRPanoptic(detr_r101(num_classes=num_classes, **kwargs))
