"""Panoptic SegFormer (R50, R101, PVTv2-B5) for COCO panoptic segmentation, random init.

Li et al., "Panoptic SegFormer: Delving Deeper into Panoptic Segmentation with
Transformers", CVPR 2022 (arXiv:2109.03814), the seed-002 table "Panoptic Segmentation".
Written from the authors' released configuration (``zhiqi-li/Panoptic-SegFormer``,
``configs/panformer/base.py``, ``panformer_r101_24e_coco_panoptic.py``,
``panformer_pvtb5_24e_coco_panoptic.py``) and model code (``easymd/models/panformer/``);
no code copied.

Configuration facts:

- backbone: ResNet-50/101 (pytorch style, frozen BN, stages 2-4 out: 512/1024/2048 ch,
  strides 8/16/32; timm's ``resnet50``/``resnet101`` features) or PVTv2-B5 (stages 2-4:
  128/320/512 ch; timm's ``pvt_v2_b5`` features, depths 3-6-40-3, MLP ratio 4);
- neck (mmdet ``ChannelMapper``): a 1×1 conv (no bias) + GroupNorm(32) to 256 ch per
  level, and a fourth level from a 3×3 stride-2 conv (no bias) + GN on the last backbone
  map (stride 64);
- sine position encoding (128 frequencies per axis, normalised with offset −0.5) plus a
  learned embedding per level;
- encoder: 6 post-norm Deformable-DETR layers (MSDA, 8 heads, 4 levels, 4 points; FFN
  1024, ReLU) over all four levels' tokens
  (:mod:`vitbench.build.builders.deformable_attention`);
- location decoder: 300 queries (a 512-wide embedding: position | content), 6 post-norm
  layers (self-attention 8 heads, MSDA cross-attention, FFN 1024) with iterative box
  refinement; per layer a class branch (80 thing classes, sigmoid) and a box branch
  (3 linear layers);
- mask decoder (:mod:`vitbench.build.builders.panoptic_segformer_mask`): things 4 blocks
  without self-attention, stuff 6 blocks with it (53 stuff queries, 512-wide embedding);
  memory = the encoder output of the first three levels; deep-supervision branches
  (4 box + 4 class branches for things, 6 class branches for stuff) are parameters too.

The forward is the released inference path (``get_bboxes``): the last location-decoder
layer's class logits and boxes; the 100 highest (query, class) sigmoid scores pick the
thing queries (with repeats) for the things decoder; the stuff decoder runs its 53 queries;
the output is ``(thing_scores [B,100], thing_boxes [B,100,4], stuff_scores [B,53],
mask_logits [B,153,H/8,W/8])``. Resizing the masks to the image and the mask-wise merge are
post-processing without multiply-accumulates. Deep-supervision outputs (earlier decoder
layers' predictions, the mask blocks' own masks) are made in training mode only.

Parameters, all (frozen BN included) / trainable as mmcv counts them (frozen stem, first
stage and BN left out): R50 51.27 / 51.00 M, R101 70.26 / 69.94 M, PVTv2-B5 105.00 M. The
seed prints 47.0 / 65.9 / 100.9 M: 4.0-4.1 M below the trainable counts for all three
backbones alike. GMACs at 1280×800 (matmul-only): R50 234.69, R101 310.45, PVTv2-B5 533.84;
without the attention products that mmcv's counter skips (8.8 G in the heads, 154.6 G in
PVTv2-B5's spatial-reduction attention) 225.9 / 301.6 / 370.4, which the printed
246 / 322 / 391 exceed by 20.1-20.6 G, again alike for all three. Both constant gaps say the
backbones and the input size are right and the table's heads differ: it is arXiv v1's
(Sept. 2021) model, an earlier mask decoder than the one released with the CVPR version
(Dec. 2021), and no published configuration defines it. Deformable attention's sampling
(bilinear ``grid_sample`` and the weighted sum, 5 MACs per sampled value) is not in the
matmul-only count: 2.65 GMACs more at 1280×800 for every backbone
(:func:`~vitbench.build.builders.deformable_attention.msda_sampling_macs`).
"""

from __future__ import annotations

import copy
import math
from typing import Sequence

import torch
from torch import nn

from vitbench.build.builders import register
from vitbench.build.builders.deformable_attention import (
    DeformableEncoderLayer, LocationDecoder, encoder_reference_points, inverse_sigmoid)
from vitbench.build.builders.panoptic_segformer_mask import MaskDecoder

__all__ = ["PanopticSegFormer", "ChannelMapper", "sine_encoding", "panoptic_segformer_r50",
           "panoptic_segformer_r101", "panoptic_segformer_pvtv2_b5"]


def sine_encoding(height: int, width: int, num_feats: int = 128, temperature: float = 10000.0,
                  offset: float = -0.5, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """mmcv's normalised sine encoding of an unpadded ``height×width`` map, (2·num_feats, H, W).

    Coordinates 1..H (1..W) shifted by ``offset`` and divided by H (W), times 2π; each axis
    has ``num_feats`` channels, sine on even and cosine on odd ones; y first.
    """
    eps, scale = 1e-6, 2 * math.pi
    y = (torch.arange(1, height + 1, device=device, dtype=dtype) + offset) / (height + eps) * scale
    x = (torch.arange(1, width + 1, device=device, dtype=dtype) + offset) / (width + eps) * scale
    dim_t = torch.arange(num_feats, device=device, dtype=dtype)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_feats)
    pos_y, pos_x = y[:, None] / dim_t, x[:, None] / dim_t
    pos_y = torch.stack((pos_y[:, 0::2].sin(), pos_y[:, 1::2].cos()), dim=2).flatten(1)
    pos_x = torch.stack((pos_x[:, 0::2].sin(), pos_x[:, 1::2].cos()), dim=2).flatten(1)
    pos = torch.cat((pos_y[:, None, :].expand(height, width, num_feats),
                     pos_x[None, :, :].expand(height, width, num_feats)), dim=2)
    return pos.permute(2, 0, 1)


class ChannelMapper(nn.Module):
    """1×1 conv + GN per input level, plus one 3×3 stride-2 conv + GN on the last input."""

    def __init__(self, in_channels: Sequence[int], dim: int = 256, groups: int = 32):
        super().__init__()
        def conv_gn(in_ch: int, kernel: int, stride: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(in_ch, dim, kernel, stride, kernel // 2, bias=False),
                                 nn.GroupNorm(groups, dim))
        self.convs = nn.ModuleList(conv_gn(c, 1, 1) for c in in_channels)
        self.extra = conv_gn(in_channels[-1], 3, 2)

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [conv(f) for conv, f in zip(self.convs, features)] + [self.extra(features[-1])]


def _box_branch(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU(),
                         nn.Linear(dim, 4))


def _clones(module: nn.Module, count: int) -> nn.ModuleList:
    return nn.ModuleList(copy.deepcopy(module) for _ in range(count))


class PanopticSegFormer(nn.Module):
    """Backbone + ChannelMapper + deformable encoder + location decoder + mask decoders."""

    def __init__(self, backbone: nn.Module, in_channels: Sequence[int], *,
                 num_things: int = 80, num_stuff: int = 53, dim: int = 256,
                 num_queries: int = 300, max_per_img: int = 100, encoder_layers: int = 6,
                 decoder_layers: int = 6, things_layers: int = 4, stuff_layers: int = 6,
                 levels: int = 4, dropout: float = 0.1):
        super().__init__()
        self.backbone = backbone
        self.neck = ChannelMapper(in_channels, dim)
        self.level_embeds = nn.Parameter(torch.randn(levels, dim))
        self.encoder = nn.ModuleList(DeformableEncoderLayer(dim, 4 * dim, 8, levels, 4, dropout)
                                     for _ in range(encoder_layers))
        self.decoder = LocationDecoder(decoder_layers, dim, 4 * dim, 8, levels, 4, dropout)
        self.reference_points = nn.Linear(dim, 2)
        self.query_embedding = nn.Embedding(num_queries, 2 * dim)
        self.stuff_query = nn.Embedding(num_stuff, 2 * dim)
        self.cls_branches = _clones(nn.Linear(dim, num_things), decoder_layers)
        self.reg_branches = _clones(_box_branch(dim), decoder_layers)
        # deep supervision of the mask decoders (training losses); parameters all the same
        self.reg_branches2 = _clones(_box_branch(dim), things_layers)
        self.cls_thing_branches = _clones(nn.Linear(dim, num_things), things_layers)
        self.cls_stuff_branches = _clones(nn.Linear(dim, 1), stuff_layers)
        self.things_mask_head = MaskDecoder(dim, 8, things_layers, self_attn=False)
        self.stuff_mask_head = MaskDecoder(dim, 8, stuff_layers, self_attn=True)
        self.dim, self.num_things, self.max_per_img = dim, num_things, max_per_img

    def _encode(self, levels: list[torch.Tensor]):
        shapes = [tuple(level.shape[-2:]) for level in levels]
        src = torch.cat([level.flatten(2).transpose(1, 2) for level in levels], 1)
        pos = torch.cat([
            (sine_encoding(h, w, self.dim // 2, device=src.device, dtype=src.dtype).flatten(1).transpose(0, 1)
             + self.level_embeds[i]) for i, (h, w) in enumerate(shapes)], 0)[None]
        reference = encoder_reference_points(shapes, len(shapes), device=src.device,
                                             dtype=src.dtype)
        memory = src
        for layer in self.encoder:
            memory = layer(memory, pos, reference, shapes)
        return memory, shapes

    def _locate(self, memory: torch.Tensor, shapes):
        """Location decoder, then the class logits and boxes of its last layer.

        The released head predicts for every layer; the first five layers' predictions
        are deep supervision (training losses) and are left out here in eval mode, as
        vitbench leaves auxiliary heads out of GFLOPs (0.2 GMACs).
        """
        batch = memory.shape[0]
        query_pos, tgt = self.query_embedding.weight.split(self.dim, dim=1)
        query_pos = query_pos[None].expand(batch, -1, -1)
        tgt = tgt[None].expand(batch, -1, -1)
        reference = self.reference_points(query_pos).sigmoid()
        states, references = self.decoder(tgt, query_pos, memory, reference, shapes,
                                          self.reg_branches)
        logits, boxes = [], []
        first = 0 if self.training else len(states) - 1
        for state, ref, cls_branch, reg_branch in list(zip(
                states, references, self.cls_branches, self.reg_branches))[first:]:
            logits.append(cls_branch(state))
            delta = reg_branch(state)
            if ref.shape[-1] == 4:
                boxes.append((delta + inverse_sigmoid(ref)).sigmoid())
            else:
                boxes.append(torch.cat((delta[..., :2] + inverse_sigmoid(ref), delta[..., 2:]),
                                       -1).sigmoid())
        return states[-1], logits[-1], boxes[-1]

    def forward(self, images: torch.Tensor):
        levels = self.neck(self.backbone(images))
        memory, shapes = self._encode(levels)
        state, logits, boxes = self._locate(memory, shapes)
        batch = images.shape[0]
        # the 100 best (query, class) pairs pick the thing queries, repeats allowed
        scores, flat_index = logits.sigmoid().flatten(1).topk(self.max_per_img, dim=1)
        query_index = torch.div(flat_index, self.num_things, rounding_mode="floor")
        thing_query = state.gather(1, query_index[..., None].expand(-1, -1, self.dim))
        thing_boxes = boxes.gather(1, query_index[..., None].expand(-1, -1, 4))
        last_level = shapes[-1][0] * shapes[-1][1]
        mask_memory = memory[:, :memory.shape[1] - last_level]
        thing_masks, _, _ = self.things_mask_head(mask_memory, thing_query, None, shapes)
        stuff_query, stuff_pos = self.stuff_query.weight.split(self.dim, dim=1)
        stuff_masks, _, stuff_states = self.stuff_mask_head(
            mask_memory, stuff_query[None].expand(batch, -1, -1),
            stuff_pos[None].expand(batch, -1, -1), shapes)
        stuff_scores = self.cls_stuff_branches[-1](stuff_states[-1]).sigmoid().squeeze(-1)
        height, width = shapes[0]
        masks = torch.cat([thing_masks, stuff_masks], 1).view(batch, -1, height, width)
        return scores, thing_boxes, stuff_scores, masks


def _timm_features(name: str, out_indices: Sequence[int]) -> nn.Module:
    import timm

    return timm.create_model(name, pretrained=False, features_only=True,
                             out_indices=tuple(out_indices))


def _panoptic_segformer(backbone_name: str, out_indices: Sequence[int], num_classes: int,
                        num_stuff_classes: int, **kwargs) -> PanopticSegFormer:
    backbone = _timm_features(backbone_name, out_indices)
    return PanopticSegFormer(backbone, backbone.feature_info.channels(),
                             num_things=num_classes - num_stuff_classes,
                             num_stuff=num_stuff_classes, **kwargs)


@register
def panoptic_segformer_r50(num_classes: int = 133, img_size=None, num_stuff_classes: int = 53,
                           **kwargs) -> PanopticSegFormer:
    """Panoptic SegFormer, ResNet-50 (COCO: 80 thing + 53 stuff classes).

    ``img_size`` is accepted and ignored (the network takes any input size).
    """
    return _panoptic_segformer("resnet50", (2, 3, 4), num_classes, num_stuff_classes, **kwargs)


@register
def panoptic_segformer_r101(num_classes: int = 133, img_size=None, num_stuff_classes: int = 53,
                            **kwargs) -> PanopticSegFormer:
    """Panoptic SegFormer, ResNet-101."""
    return _panoptic_segformer("resnet101", (2, 3, 4), num_classes, num_stuff_classes, **kwargs)


@register
def panoptic_segformer_pvtv2_b5(num_classes: int = 133, img_size=None,
                                num_stuff_classes: int = 53, **kwargs) -> PanopticSegFormer:
    """Panoptic SegFormer, PVTv2-B5."""
    return _panoptic_segformer("pvt_v2_b5", (1, 2, 3), num_classes, num_stuff_classes, **kwargs)
