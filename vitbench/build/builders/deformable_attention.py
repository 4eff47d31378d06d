"""Multi-scale deformable attention and the Deformable-DETR encoder / location decoder.

Zhu et al., "Deformable DETR: Deformable Transformers for End-to-End Object Detection",
ICLR 2021 (arXiv:2010.04159), in the form mmcv 1.3's ``MultiScaleDeformableAttention`` and
mmdet 2.12's ``DeformableDetrTransformer{Encoder,Decoder}`` give it (the versions
Panoptic SegFormer's released code runs on). No ``vitbench:`` model is registered here;
:mod:`vitbench.build.builders.panoptic_segformer` assembles these parts.

Multi-scale deformable attention (MSDA), per query: ``heads`` × ``levels`` × ``points``
sampling locations (a learned offset from the query's reference point) and as many
softmax-normalised weights, both linear in the query (+ its position); the values are a
linear projection of the flattened multi-level feature map. The sampling is written in pure
PyTorch as the reference formulation does it (``F.grid_sample``, bilinear, zero padding,
``align_corners=False``, one call per level), not as a CUDA kernel, so the model runs and
is counted anywhere. What the counters see:

- every linear layer (value, offsets, weights, output) is counted;
- ``grid_sample`` carries 4 multiply-accumulates per sampled value (bilinear) and the
  weighted sum 1 more; vitbench's ``matmul-only`` convention counts neither (both are
  resampling / element-wise). :func:`msda_sampling_macs` gives that uncounted amount,
  ``5 · queries · heads · levels · points · head_dim`` per MSDA layer, so callers can report
  the count with and without it.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "MultiScaleDeformableAttention", "DeformableEncoderLayer", "DeformableDecoderLayer",
    "LocationDecoder", "deformable_sampling", "encoder_reference_points", "msda_sampling_macs",
    "inverse_sigmoid",
]


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``log(x / (1 - x))`` with both terms clamped at ``eps`` (mmdet's form)."""
    x = x.clamp(min=0, max=1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


def deformable_sampling(value: torch.Tensor, shapes: Sequence[tuple[int, int]],
                        locations: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Bilinear sampling of each level at ``locations``, summed with ``weights``.

    ``value`` (B, S, heads, d) holds the levels' tokens one after another (``shapes`` gives
    each level's H×W); ``locations`` (B, Q, heads, levels, points, 2) are (x, y) in [0, 1];
    ``weights`` (B, Q, heads, levels, points). Returns (B, Q, heads·d).
    """
    batch, _, heads, head_dim = value.shape
    _, queries, _, levels, points, _ = locations.shape
    grids = 2 * locations - 1  # grid_sample's [-1, 1] coordinates
    sampled, start = [], 0
    for level, (height, width) in enumerate(shapes):
        level_value = value[:, start:start + height * width]  # B, HW, heads, d
        level_value = level_value.permute(0, 2, 3, 1).reshape(batch * heads, head_dim, height, width)
        level_grid = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)  # B·heads, Q, P, 2
        sampled.append(F.grid_sample(level_value, level_grid, mode="bilinear",
                                     padding_mode="zeros", align_corners=False))
        start += height * width
    stacked = torch.stack(sampled, dim=-2).flatten(-2)  # B·heads, d, Q, levels·P
    weights = weights.transpose(1, 2).reshape(batch * heads, 1, queries, levels * points)
    out = (stacked * weights).sum(-1)  # B·heads, d, Q
    return out.view(batch, heads * head_dim, queries).transpose(1, 2)


def msda_sampling_macs(queries: int, heads: int = 8, levels: int = 4, points: int = 4,
                       head_dim: int = 32) -> int:
    """MACs of one MSDA layer's sampling that ``matmul-only`` leaves out (4 bilinear + 1 sum)."""
    return 5 * queries * heads * levels * points * head_dim


def encoder_reference_points(shapes: Sequence[tuple[int, int]], levels: int, *,
                             device=None, dtype=torch.float32) -> torch.Tensor:
    """Each token's pixel centre, normalised to [0, 1], the same for every level (1, S, L, 2)."""
    points = []
    for height, width in shapes:
        ys = (torch.arange(height, device=device, dtype=dtype) + 0.5) / height
        xs = (torch.arange(width, device=device, dtype=dtype) + 0.5) / width
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack((grid_x.flatten(), grid_y.flatten()), dim=-1))
    return torch.cat(points, 0)[None, :, None, :].expand(1, -1, levels, 2)


class MultiScaleDeformableAttention(nn.Module):
    """MSDA with its own residual (mmcv's form: returns ``query + dropout(attention)``).

    ``reference_points`` (B, Q, levels, 2) are points; (B, Q, levels, 4) are boxes
    (cx, cy, w, h), whose half size scales the offsets (divided by ``points``).
    """

    def __init__(self, dim: int = 256, heads: int = 8, levels: int = 4, points: int = 4,
                 dropout: float = 0.1):
        super().__init__()
        self.heads, self.levels, self.points = heads, levels, points
        self.sampling_offsets = nn.Linear(dim, heads * levels * points * 2)
        self.attention_weights = nn.Linear(dim, heads * levels * points)
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Deformable DETR's start: offsets point out in ``heads`` directions, 1..P steps."""
        nn.init.zeros_(self.sampling_offsets.weight)
        if self.sampling_offsets.bias.is_meta:
            return
        angles = torch.arange(self.heads, dtype=torch.float32) * (2 * math.pi / self.heads)
        grid = torch.stack([angles.cos(), angles.sin()], -1)
        grid = grid / grid.abs().max(-1, keepdim=True)[0]
        grid = grid.view(self.heads, 1, 1, 2).repeat(1, self.levels, self.points, 1)
        grid = grid * torch.arange(1, self.points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        self.sampling_offsets.bias.copy_(grid.flatten())
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.zeros_(self.value_proj.bias)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    def forward(self, query: torch.Tensor, query_pos: torch.Tensor, value: torch.Tensor,
                reference_points: torch.Tensor, shapes: Sequence[tuple[int, int]]) -> torch.Tensor:
        batch, queries, dim = query.shape
        heads, levels, points = self.heads, self.levels, self.points
        located = query + query_pos
        projected = self.value_proj(value).view(batch, value.shape[1], heads, dim // heads)
        offsets = self.sampling_offsets(located).view(batch, queries, heads, levels, points, 2)
        weights = self.attention_weights(located).view(batch, queries, heads, levels * points)
        weights = weights.softmax(-1).view(batch, queries, heads, levels, points)
        if reference_points.shape[-1] == 2:
            # offsets are in pixels of each level: normalise by (W, H)
            normaliser = torch.tensor([[w, h] for h, w in shapes], dtype=query.dtype,
                                      device=query.device)
            locations = (reference_points[:, :, None, :, None, :]
                         + offsets / normaliser[None, None, None, :, None, :])
        else:
            locations = (reference_points[:, :, None, :, None, :2]
                         + offsets / points * reference_points[:, :, None, :, None, 2:] * 0.5)
        attended = deformable_sampling(projected, shapes, locations, weights)
        return query + self.dropout(self.output_proj(attended))


class _FeedForward(nn.Module):
    """Linear → ReLU → Linear with the residual added (mmcv's FFN)."""

    def __init__(self, dim: int, hidden_dim: int, dropout: float):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(dim, hidden_dim), nn.ReLU(inplace=True),
                                    nn.Dropout(dropout), nn.Linear(hidden_dim, dim),
                                    nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


class DeformableEncoderLayer(nn.Module):
    """Post-norm: MSDA over all levels' tokens, LayerNorm, FFN, LayerNorm."""

    def __init__(self, dim: int = 256, ffn_dim: int = 1024, heads: int = 8, levels: int = 4,
                 points: int = 4, dropout: float = 0.1):
        super().__init__()
        self.self_attn = MultiScaleDeformableAttention(dim, heads, levels, points, dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = _FeedForward(dim, ffn_dim, dropout)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x, pos, reference_points, shapes):
        x = self.norm1(self.self_attn(x, pos, x, reference_points, shapes))
        return self.norm2(self.ffn(x))


class DeformableDecoderLayer(nn.Module):
    """Post-norm: query self-attention, MSDA into the memory, FFN, a LayerNorm after each."""

    def __init__(self, dim: int = 256, ffn_dim: int = 1024, heads: int = 8, levels: int = 4,
                 points: int = 4, dropout: float = 0.1):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn = MultiScaleDeformableAttention(dim, heads, levels, points, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = _FeedForward(dim, ffn_dim, dropout)
        self.norm3 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, tgt, query_pos, memory, reference_points, shapes):
        q = k = tgt + query_pos
        tgt = self.norm1(tgt + self.dropout(self.self_attn(q, k, tgt, need_weights=False)[0]))
        tgt = self.norm2(self.cross_attn(tgt, query_pos, memory, reference_points, shapes))
        return self.norm3(self.ffn(tgt))


class LocationDecoder(nn.Module):
    """Deformable DETR's decoder with iterative box refinement (``with_box_refine=True``).

    The first layer samples around a point (a linear map of the query position, sigmoid);
    each layer's box branch then refines the reference into a box (cx, cy, w, h) that the
    next layer samples in. Returns every layer's output and the reference it was given.
    """

    def __init__(self, layers: int = 6, dim: int = 256, ffn_dim: int = 1024, heads: int = 8,
                 levels: int = 4, points: int = 4, dropout: float = 0.1):
        super().__init__()
        self.layers = nn.ModuleList(DeformableDecoderLayer(dim, ffn_dim, heads, levels, points,
                                                           dropout) for _ in range(layers))
        self.levels = levels

    def forward(self, tgt, query_pos, memory, reference, shapes, box_branches):
        states, references = [], []
        for layer, box_branch in zip(self.layers, box_branches):
            references.append(reference)
            per_level = reference[:, :, None].expand(-1, -1, self.levels, -1)
            tgt = layer(tgt, query_pos, memory, per_level, shapes)
            delta = box_branch(tgt)
            if reference.shape[-1] == 4:
                reference = (delta + inverse_sigmoid(reference)).sigmoid()
            else:
                reference = torch.cat((delta[..., :2] + inverse_sigmoid(reference), delta[..., 2:]),
                                      -1).sigmoid()
            reference = reference.detach()
            states.append(tgt)
        return states, references
