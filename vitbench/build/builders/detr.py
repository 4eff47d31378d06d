"""DETR (DEtection TRansformer) for COCO detection, random init; and the table's R101 baseline.

Carion et al., "End-to-End Object Detection with Transformers", ECCV 2020 (arXiv:2005.12872),
as presented in seed ``004_b2f775d5b64d4db4.txt`` (table "vs. Faster R-CNN" and Listing 1).

Two forms are built here, from the paper's text:

``detr_demo_r50`` — **Listing 1** as printed: ResNet-50 conv layers (torchvision, trainable
BatchNorm), a 1×1 conv 2048→256, ``nn.Transformer(256, 8 heads, 6+6 layers, FFN 2048)``,
learned row/column position embeddings (50 each, 128 wide) added to the input only, 100
learned queries, a linear class head (91 + 1 "no object") and a *linear* box head. The
paper says this is a simplified version for readability.

``detr_r50`` (and ``_dc5``, ``detr_r101``, ``detr_r101_dc5``) — the **full DETR** the table's
numbers are for (paper Sec. 3.2 and appendix A.3):

- backbone: ResNet-50/101 (torchvision, random weights) with *frozen* BatchNorm, i.e. the
  normalisation statistics and affine terms are buffers, not parameters; the DC5 variants
  dilate the last stage (stride 16 instead of 32) and drop its stride;
- a 1×1 conv projects C5 (2048 channels) to d = 256;
- fixed 2-D sine positional encodings (128 frequencies per axis, normalised coordinates
  scaled by 2π, temperature 10000) added to queries and keys of **every** attention layer;
- 6 encoder + 6 decoder post-norm layers, 8 heads, FFN 2048 with ReLU, dropout 0.1 (inactive
  in eval), a LayerNorm after the decoder stack;
- 100 learned object queries (added to queries/keys of every decoder layer; the decoder
  input itself starts at zero);
- heads: linear class head over 91 + 1 classes, 3-layer MLP (ReLU) box head with sigmoid;
  only the last decoder layer's prediction is returned (auxiliary losses are training-only).

Parameters: ``detr_r50`` holds 41.52 M parameters; the paper's 41.3 M (printed "41M") is
its *trainable* count, which also leaves out the frozen stem and first ResNet stage
(0.23 M). ``fasterrcnn_resnet101_fpn`` is torchvision's Faster R-CNN with a ResNet-101 FPN
backbone, the "Faster RCNN-R101-FPN" row (torchvision ships only the R50 builder).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vitbench.build.builders import register

__all__ = ["DETR", "DETRDemo", "detr_r50", "detr_r50_dc5", "detr_r101", "detr_r101_dc5",
           "detr_demo_r50", "fasterrcnn_resnet101_fpn"]


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine terms held as buffers (not parameters)."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale[None, :, None, None] + shift[None, :, None, None]


def _resnet_body(depth: int, *, dilation: bool, frozen_bn: bool) -> nn.Sequential:
    """torchvision ResNet-``depth`` without its pooling and classifier (output: C5, 2048 ch)."""
    from torchvision.models import resnet50, resnet101

    factory = {50: resnet50, 101: resnet101}[depth]
    kwargs = {"norm_layer": FrozenBatchNorm2d} if frozen_bn else {}
    net = factory(weights=None, replace_stride_with_dilation=[False, False, dilation], **kwargs)
    return nn.Sequential(*list(net.children())[:-2])


def sine_position_encoding(height: int, width: int, num_feats: int = 128,
                           temperature: float = 10000.0, *, device=None,
                           dtype=torch.float32) -> torch.Tensor:
    """2-D sine/cosine encoding of a ``height×width`` grid, ``(2·num_feats, H, W)``.

    Each axis gets ``num_feats`` channels: coordinates 1..H (1..W) normalised to (0, 2π],
    divided by ``temperature^(2⌊i/2⌋/num_feats)``, sine on even and cosine on odd channels;
    the y channels come first.
    """
    eps, scale = 1e-6, 2 * math.pi
    y = torch.arange(1, height + 1, device=device, dtype=dtype) / (height + eps) * scale
    x = torch.arange(1, width + 1, device=device, dtype=dtype) / (width + eps) * scale
    dim_t = torch.arange(num_feats, device=device, dtype=dtype)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_feats)
    pos_y = y[:, None] / dim_t  # H, F
    pos_x = x[:, None] / dim_t  # W, F
    pos_y = torch.stack((pos_y[:, 0::2].sin(), pos_y[:, 1::2].cos()), dim=2).flatten(1)
    pos_x = torch.stack((pos_x[:, 0::2].sin(), pos_x[:, 1::2].cos()), dim=2).flatten(1)
    pos = torch.cat((pos_y[:, None, :].expand(height, width, num_feats),
                     pos_x[None, :, :].expand(height, width, num_feats)), dim=2)
    return pos.permute(2, 0, 1)


class _EncoderLayer(nn.Module):
    """Post-norm encoder layer; the positional encoding is added to queries and keys."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, src: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        q = k = src + pos
        src = self.norm1(src + self.dropout(self.self_attn(q, k, src, need_weights=False)[0]))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(src))))
        return self.norm2(src + self.dropout(ffn))


class _DecoderLayer(nn.Module):
    """Post-norm decoder layer: self-attention over queries, cross-attention to the memory."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout)
        self.cross_attn = nn.MultiheadAttention(dim, heads, dropout=dropout)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, tgt, memory, pos, query_pos):
        q = k = tgt + query_pos
        tgt = self.norm1(tgt + self.dropout(self.self_attn(q, k, tgt, need_weights=False)[0]))
        attended = self.cross_attn(tgt + query_pos, memory + pos, memory, need_weights=False)[0]
        tgt = self.norm2(tgt + self.dropout(attended))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(tgt))))
        return self.norm3(tgt + self.dropout(ffn))


class _BoxMLP(nn.Module):
    """``layers`` linear layers with ReLU between them."""

    def __init__(self, dim: int, out_dim: int, layers: int = 3):
        super().__init__()
        dims = [dim] * layers + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class DETR(nn.Module):
    """Full DETR: frozen-BN ResNet, sine encodings at every attention, post-norm 6+6 layers.

    ``forward(images)`` returns ``(class_logits [B, Q, num_classes+1], boxes [B, Q, 4])``,
    boxes as normalised (cx, cy, w, h).
    """

    def __init__(self, num_classes: int = 91, *, backbone_depth: int = 50, dilation: bool = False,
                 hidden_dim: int = 256, nheads: int = 8, num_encoder_layers: int = 6,
                 num_decoder_layers: int = 6, ffn_dim: int = 2048, num_queries: int = 100,
                 dropout: float = 0.1):
        super().__init__()
        self.backbone = _resnet_body(backbone_depth, dilation=dilation, frozen_bn=True)
        self.input_proj = nn.Conv2d(2048, hidden_dim, kernel_size=1)
        self.encoder = nn.ModuleList(_EncoderLayer(hidden_dim, nheads, ffn_dim, dropout)
                                     for _ in range(num_encoder_layers))
        self.decoder = nn.ModuleList(_DecoderLayer(hidden_dim, nheads, ffn_dim, dropout)
                                     for _ in range(num_decoder_layers))
        self.decoder_norm = nn.LayerNorm(hidden_dim)
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.class_embed = nn.Linear(hidden_dim, num_classes + 1)
        self.bbox_embed = _BoxMLP(hidden_dim, 4, 3)
        self.hidden_dim = hidden_dim

    def forward(self, images: torch.Tensor):
        features = self.input_proj(self.backbone(images))  # B, d, H/32, W/32
        batch, dim, height, width = features.shape
        pos = sine_position_encoding(height, width, dim // 2, device=features.device,
                                     dtype=features.dtype)
        pos = pos.flatten(1).permute(1, 0).unsqueeze(1).expand(-1, batch, -1)  # HW, B, d
        memory = features.flatten(2).permute(2, 0, 1)  # HW, B, d
        for layer in self.encoder:
            memory = layer(memory, pos)
        query_pos = self.query_embed.weight.unsqueeze(1).expand(-1, batch, -1)  # Q, B, d
        tgt = torch.zeros_like(query_pos)
        for layer in self.decoder:
            tgt = layer(tgt, memory, pos, query_pos)
        hs = self.decoder_norm(tgt).transpose(0, 1)  # B, Q, d
        return self.class_embed(hs), self.bbox_embed(hs).sigmoid()


class DETRDemo(nn.Module):
    """The paper's Listing 1 (the 'DETR demo'), random weights.

    Learned row/column embeddings (50 positions each) limit inputs to 1600 px a side.
    """

    def __init__(self, num_classes: int = 91, hidden_dim: int = 256, nheads: int = 8,
                 num_encoder_layers: int = 6, num_decoder_layers: int = 6):
        super().__init__()
        self.backbone = _resnet_body(50, dilation=False, frozen_bn=False)
        self.conv = nn.Conv2d(2048, hidden_dim, 1)
        self.transformer = nn.Transformer(hidden_dim, nheads, num_encoder_layers,
                                          num_decoder_layers)
        self.linear_class = nn.Linear(hidden_dim, num_classes + 1)
        self.linear_bbox = nn.Linear(hidden_dim, 4)
        self.query_pos = nn.Parameter(torch.rand(100, hidden_dim))
        self.row_embed = nn.Parameter(torch.rand(50, hidden_dim // 2))
        self.col_embed = nn.Parameter(torch.rand(50, hidden_dim // 2))

    def forward(self, inputs: torch.Tensor):
        h = self.conv(self.backbone(inputs))
        batch = h.shape[0]
        height, width = h.shape[-2:]
        pos = torch.cat([
            self.col_embed[:width].unsqueeze(0).repeat(height, 1, 1),
            self.row_embed[:height].unsqueeze(1).repeat(1, width, 1),
        ], dim=-1).flatten(0, 1).unsqueeze(1)
        h = self.transformer(pos + h.flatten(2).permute(2, 0, 1),
                             self.query_pos.unsqueeze(1).repeat(1, batch, 1))
        return self.linear_class(h), self.linear_bbox(h).sigmoid()


@register
def detr_r50(num_classes: int = 91, img_size=None, **kwargs) -> DETR:
    """DETR with a ResNet-50 backbone (paper: 41M params, 86 GFLOPs, 28 FPS on a V100).

    ``img_size`` is accepted and ignored (every DETR here takes any input size).
    """
    return DETR(num_classes, backbone_depth=50, dilation=False, **kwargs)


@register
def detr_r50_dc5(num_classes: int = 91, img_size=None, **kwargs) -> DETR:
    """DETR-DC5: ResNet-50 with a dilated last stage (C5 at stride 16)."""
    return DETR(num_classes, backbone_depth=50, dilation=True, **kwargs)


@register
def detr_r101(num_classes: int = 91, img_size=None, **kwargs) -> DETR:
    """DETR with a ResNet-101 backbone."""
    return DETR(num_classes, backbone_depth=101, dilation=False, **kwargs)


@register
def detr_r101_dc5(num_classes: int = 91, img_size=None, **kwargs) -> DETR:
    """DETR-DC5-R101."""
    return DETR(num_classes, backbone_depth=101, dilation=True, **kwargs)


@register
def detr_demo_r50(num_classes: int = 91, img_size=None, **kwargs) -> DETRDemo:
    """The seed's Listing 1, verbatim in structure (linear box head, learned input-only positions)."""
    return DETRDemo(num_classes, **kwargs)


@register
def fasterrcnn_resnet101_fpn(num_classes: int = 91, img_size=None, **kwargs):
    """torchvision Faster R-CNN with a ResNet-101 FPN backbone (random weights).

    Returns the detector wrapped so its forward gives a flat tuple of tensors (boxes,
    labels, scores per image), which the JIT-trace counter can follow.
    """
    from torchvision.models import resnet101
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.ops import misc

    from vitbench.build.zoo import tensor_outputs

    body = resnet101(weights=None, norm_layer=misc.FrozenBatchNorm2d)
    backbone = _resnet_fpn_extractor(body, trainable_layers=3)
    return tensor_outputs(FasterRCNN(backbone, num_classes=num_classes, **kwargs))
