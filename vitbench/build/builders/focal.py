"""Focal Transformer (focal self-attention, v1) for ImageNet classification, random init.

Yang et al., "Focal Self-attention for Local-Global Interactions in Vision Transformers",
NeurIPS 2021 (arXiv:2107.00641). Not timm's ``focalnet_*`` (FocalNets, focal *modulation*, a
later model by the same authors). Written here from the paper's definition of focal
self-attention and the configuration of the authors' ``microsoft/Focal-Transformer``
(``configs/focal_{tiny,small,base}_patch4_window7_224.yaml``; the block internals follow
``classification/focal_transformer.py``, whose parameter layout this module keeps).

Configuration (Focal-T / Focal-S / Focal-B):

- Swin-like macro design: ``4×4`` stride-4 patch embedding and ``2×2`` stride-2 patch
  merging convs, each followed by LayerNorm; width 96 (B: 128), doubling per stage; depths
  2-2-6-2 (S and B: 2-2-18-2); heads 3-6-12-24 (B: 4-8-16-32); MLP ratio 4; qkv bias; no
  window shift; final LayerNorm, mean pooling, linear head;
- focal self-attention with window 7, focal levels 2 and pooling ``fc``. The queries of each
  7×7 window attend to three sets of keys and values, all projected by the one ``qkv`` layer:

  1. *fine, in-window*: the window's own 49 tokens, with Swin's relative position bias;
  2. *fine, surrounding* (expand size 3): the tokens of the window shifted by ±3 rows and
     ±3 columns (cyclically, as the source's ``torch.roll`` does), less the ones inside the
     window: 4 × (49 − 4²) = 132 tokens (the 13×13 surround, with the tokens next to the
     four edge midlines twice), each with its own learned bias per (query, key) pair;
  3. *coarse*: every 7×7 window pooled to one token by a learned ``Linear(49, 1)`` over its
     tokens (``fc``), then the ``fw × fw`` pooled tokens around the query's window
     (focal windows fw = 7, 5, 3, 1 per stage; zero padding outside the map, its logits
     −100 as in the source), with a relative position bias.

  A stage whose map is no larger than one window (stage 4 at 224²) attends inside that
  single window without the surrounding fine tokens. The source runs the pooled tokens
  through the whole ``qkv`` layer (the queries it makes there go unused); so does this one,
  so the MAC count is that of the source's model.

Inputs that are no whole number of windows are zero-padded at the bottom and right, as in the
source (224² needs none).

At 224² with 1000 classes (self-measured; matmul-only MACs, both counters agree, no op
either skips carries MACs: the rolls, gathers, pads and unfolds only move data). The
parameter counts and, given the same weights, the outputs are those of the source's own
``FocalTransformer``:

=======  ==========  ======  ===============  ================  ============
model    params (M)  GMACs   source flops()   README            seed print
=======  ==========  ======  ===============  ================  ============
Focal-T  28.88       4.953   4.924            28.9 M, 4.9 G     29 M, 4.9 G
Focal-S  51.14       9.480   9.432            51.1 M, 9.4 G     51 M, 9.1 G
Focal-B  89.82       --      16.371           89.8 M, 16.4 G    --
=======  ==========  ======  ===============  ================  ============

The README's GFLOPs are the source's analytic ``FocalTransformer.flops()``, which counts
(w + 2e)² − w² = 120 surrounding keys per window where its attention takes 132 (the 12
tokens next to the edge midlines come twice), and adds one MAC per element for each
LayerNorm and for the mean pool: measured = flops() − 0.0036 G (norms, pool) + 0.0325 G
(duplicate keys) for T, − 0.0054 + 0.0542 G for S, exactly. The paper (and the seed) print
9.1 G for Focal-S, which neither the code nor its formula gives.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, to_2tuple, trunc_normal_
from torch import nn

from vitbench.build.builders import register

__all__ = ["FocalTransformer", "FocalWindowAttention", "focal_tiny", "focal_small",
           "focal_base"]

#: Logit added to coarse keys that fall outside the map (the source's mask value).
OUTSIDE_LOGIT = -100.0
#: Roll shifts (rows, cols) whose windows hold the fine surrounding tokens, in source order.
_SURROUND_SHIFTS = ((-1, -1), (-1, 1), (1, -1), (1, 1))


def _linear_rates(last: float, count: int) -> list[float]:
    """``count`` stochastic-depth rates from 0 to ``last`` (plain floats: builds on ``meta``)."""
    return [last * i / (count - 1) if count > 1 else 0.0 for i in range(count)]


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """``(B, H, W, C)`` → ``(B, H/w, W/w, w·w, C)``."""
    batch, height, width, dim = x.shape
    x = x.reshape(batch, height // window, window, width // window, window, dim)
    return x.transpose(2, 3).reshape(batch, height // window, width // window, window * window,
                                     dim)


def relative_position_index(query: int, key: int) -> torch.Tensor:
    """``(q², k²)`` indices into a ``(q + k − 1)²`` bias table of a ``q×q`` query grid
    against a ``k×k`` key grid (both row-major); ``q = k`` gives Swin's window table."""
    q_rows, q_cols = torch.meshgrid(torch.arange(query), torch.arange(query), indexing="ij")
    k_rows, k_cols = torch.meshgrid(torch.arange(key), torch.arange(key), indexing="ij")
    d_rows = q_rows.flatten()[:, None] - k_rows.flatten()[None, :] + key - 1
    d_cols = q_cols.flatten()[:, None] - k_cols.flatten()[None, :] + key - 1
    return d_rows * (query + key - 1) + d_cols


def surround_index(window: int, expand: int) -> torch.Tensor:
    """Positions, in the four rolled windows stacked, of the tokens outside the window.

    The window rolled by ``(∓e, ∓e)`` holds the original rows/cols shifted by ``±e``; its
    tokens that lie inside the unrolled window are dropped (the source's ``valid_ind_rolled``).
    """
    area = window * window
    keep = []
    for n, (shift_rows, shift_cols) in enumerate(_SURROUND_SHIFTS):
        for row in range(window):
            for col in range(window):
                inside_rows = row < window - expand if shift_rows < 0 else row >= expand
                inside_cols = col < window - expand if shift_cols < 0 else col >= expand
                if not (inside_rows and inside_cols):
                    keep.append(n * area + row * window + col)
    return torch.tensor(keep)


class FocalWindowAttention(nn.Module):
    """Focal self-attention of 7×7 query windows (two focal levels, see the module docstring).

    ``forward(x, pooled)`` takes the normalised map ``(B, H, W, C)`` (whole windows) and its
    window-pooled tokens ``(B, H/w, W/w, C)``; it returns the attended map ``(B, H, W, C)``.
    """

    def __init__(self, dim: int, num_heads: int, window: int, expand: int, focal_window: int,
                 qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.window = window
        self.expand = expand
        self.focal_window = focal_window
        area = window * window
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index",
                             relative_position_index(window, window), persistent=False)
        if expand > 0:
            index = surround_index(window, expand)
            self.register_buffer("surround_index", index, persistent=False)
            self.relative_position_bias_table_to_neighbors = nn.Parameter(
                torch.zeros(1, num_heads, area, index.numel()))
            trunc_normal_(self.relative_position_bias_table_to_neighbors, std=0.02)
        self.relative_position_bias_table_to_windows = nn.ParameterList(
            [nn.Parameter(torch.zeros(num_heads, (window + focal_window - 1) ** 2))])
        trunc_normal_(self.relative_position_bias_table_to_windows[0], std=0.02)
        self.register_buffer("relative_position_index_0",
                             relative_position_index(window, focal_window), persistent=False)

    def _surrounding(self, t: torch.Tensor) -> torch.Tensor:
        """The fine tokens around each window: ``(B, H, W, C)`` → ``(B, nWh, nWw, 132, C)``."""
        rolled = [window_partition(torch.roll(t, (sr * self.expand, sc * self.expand), (1, 2)),
                                   self.window) for sr, sc in _SURROUND_SHIFTS]
        return torch.cat(rolled, dim=3)[:, :, :, self.surround_index]

    def _coarse(self, t: torch.Tensor) -> torch.Tensor:
        """The ``fw × fw`` pooled tokens around each window (zero outside the map):
        ``(B, nWh, nWw, C)`` → ``(B, nWh, nWw, fw², C)``."""
        half = self.focal_window // 2
        t = F.pad(t, (0, 0, half, half, half, half))
        t = t.unfold(1, self.focal_window, 1).unfold(2, self.focal_window, 1)
        return t.flatten(4).transpose(3, 4)

    def _bias(self, grid: tuple[int, int], device: torch.device,
              dtype: torch.dtype) -> torch.Tensor:
        """Logit bias ``(nWh, nWw, heads, w², keys)``: relative positions, −100 off the map."""
        area = self.window * self.window
        parts = [self.relative_position_bias_table[self.relative_position_index.flatten()]
                 .reshape(area, area, -1).permute(2, 0, 1)]
        if self.expand > 0:
            parts.append(self.relative_position_bias_table_to_neighbors[0])
        table = self.relative_position_bias_table_to_windows[0]
        parts.append(table[:, self.relative_position_index_0.flatten()].reshape(
            self.num_heads, area, -1))
        bias = torch.cat(parts, dim=-1).to(dtype)
        inside = self._coarse(torch.ones(1, *grid, 1, device=device, dtype=dtype))[0, ..., 0]
        coarse_mask = (1 - inside) * OUTSIDE_LOGIT  # (nWh, nWw, fw²)
        fine = bias.shape[-1] - coarse_mask.shape[-1]
        mask = F.pad(coarse_mask, (fine, 0))[:, :, None, None, :]
        return bias + mask

    def forward(self, x: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        batch, height, width, dim = x.shape
        grid = (height // self.window, width // self.window)
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        k_coarse, v_coarse = self.qkv(pooled).chunk(3, dim=-1)[1:]
        keys, values = [window_partition(k, self.window)], [window_partition(v, self.window)]
        if self.expand > 0:
            keys.append(self._surrounding(k))
            values.append(self._surrounding(v))
        keys.append(self._coarse(k_coarse))
        values.append(self._coarse(v_coarse))

        def heads(t: torch.Tensor) -> torch.Tensor:
            """``(B, nWh, nWw, N, C)`` → ``(B, nWh, nWw, heads, N, C/heads)``."""
            return t.reshape(*t.shape[:4], self.num_heads, -1).transpose(3, 4)

        out = F.scaled_dot_product_attention(
            heads(window_partition(q, self.window)), heads(torch.cat(keys, dim=3)),
            heads(torch.cat(values, dim=3)), attn_mask=self._bias(grid, x.device, x.dtype))
        out = self.proj(out.transpose(3, 4).flatten(4))  # (B, nWh, nWw, w², C)
        out = out.reshape(batch, *grid, self.window, self.window, dim).transpose(2, 3)
        return out.reshape(batch, height, width, dim)


class FocalBlock(nn.Module):
    """Pre-norm block: window pooling, focal self-attention and an MLP on a channels-last map.

    A map no larger than the window (at the size the model is built for) shrinks the window
    to the map and drops the surrounding fine tokens, as in the source.
    """

    def __init__(self, dim: int, num_heads: int, resolution: tuple[int, int], window: int,
                 expand: int, focal_window: int, mlp_ratio: float = 4.0,
                 drop_path: float = 0.0):
        super().__init__()
        if min(resolution) <= window:
            window, expand = min(resolution), 0
        self.window = window
        self.pool = nn.Linear(window * window, 1)  # the "fc" window pooling
        self.norm1 = nn.LayerNorm(dim)
        self.attn = FocalWindowAttention(dim, num_heads, window, expand, focal_window)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, height, width, _ = x.shape
        shortcut = x
        x = self.norm1(x)
        pad_h, pad_w = -height % self.window, -width % self.window
        if pad_h or pad_w:
            x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
        pooled = self.pool(window_partition(x, self.window).transpose(3, 4)).squeeze(-1)
        x = self.attn(x, pooled)[:, :height, :width]
        x = shortcut + self.drop_path(x)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    """Non-overlapping ``P×P`` patches by a stride-``P`` conv, then LayerNorm (channels-last)."""

    def __init__(self, patch_size: int, in_dim: int, out_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_dim, out_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class FocalTransformer(nn.Module):
    """Focal Transformer classifier: four stages of focal self-attention, mean pool, head.

    ``img_size`` (int or ``(h, w)``) decides where a stage fits in one window (there the
    window shrinks to the map). Tokens stay channels-last ``(B, H, W, C)``.
    """

    def __init__(
        self,
        img_size: int | Sequence[int] = 224,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_size: int = 7,
        focal_windows: Sequence[int] = (7, 5, 3, 1),
        expand_size: int = 3,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.0,
    ):
        super().__init__()
        height, width = to_2tuple(img_size)
        self.num_classes = num_classes
        rates = _linear_rates(drop_path_rate, sum(depths))
        self.embeds = nn.ModuleList()
        self.stages = nn.ModuleList()
        dim, in_dim, patch, cursor = embed_dim, in_chans, 4, 0
        for depth, heads, focal_window in zip(depths, num_heads, focal_windows):
            self.embeds.append(PatchEmbed(patch, in_dim, dim))
            height, width = height // patch, width // patch
            self.stages.append(nn.Sequential(*(
                FocalBlock(dim, heads, (height, width), window_size, expand_size, focal_window,
                           mlp_ratio, rates[cursor + j])
                for j in range(depth))))
            cursor += depth
            in_dim, dim, patch = dim, dim * 2, 2
        self.num_features = in_dim
        self.norm = nn.LayerNorm(in_dim)
        self.head = nn.Linear(in_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the normalised last-stage map, channels-last ``(B, H, W, C)``."""
        for i, (embed, stage) in enumerate(zip(self.embeds, self.stages)):
            x = stage(embed(x if i == 0 else x.permute(0, 3, 1, 2)))
        return self.norm(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.mean(dim=(1, 2)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register
def focal_tiny(**kwargs) -> nn.Module:
    """Focal-T (``focal_tiny_patch4_window7_224``). README: 28.9 M, 4.9 G."""
    return FocalTransformer(**{"embed_dim": 96, "depths": (2, 2, 6, 2), **kwargs})


@register
def focal_small(**kwargs) -> nn.Module:
    """Focal-S (``focal_small_patch4_window7_224``). README: 51.1 M, 9.4 G (paper 9.1 G)."""
    return FocalTransformer(**{"embed_dim": 96, "depths": (2, 2, 18, 2), **kwargs})


@register
def focal_base(**kwargs) -> nn.Module:
    """Focal-B (``focal_base_patch4_window7_224``). README: 89.8 M, 16.4 G."""
    return FocalTransformer(**{"embed_dim": 128, "depths": (2, 2, 18, 2),
                               "num_heads": (4, 8, 16, 32), **kwargs})
