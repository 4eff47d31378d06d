"""EMO (Efficient MOdel built from inverted residual mobile blocks) for ImageNet, random init.

Zhang et al., "Rethinking Mobile Block for Efficient Attention-based Models", ICCV 2023
(arXiv:2301.01146). Not in timm; written from the paper and the configuration of the
authors' ``zhangzjn/EMO`` ``model/emo.py`` (``EMO_1M``, ``EMO_2M``, ``EMO_5M``):

- a stem (3×3 stride-2 conv + BatchNorm to 24 channels, then one iRMB without the
  expansion conv: 3×3 depthwise conv-BN-SiLU, squeeze-excite at ratio 1, 1×1 projection);
- four stages of inverted residual mobile blocks (iRMB); each stage opens with a stride-2
  block without attention or shortcut at twice the stage's expansion ratio; the later
  blocks of stages 3 and 4 run window attention;
- iRMB: norm → token mixing → 1×1 conv-act (the "v" expansion to ``exp·C``) → depthwise
  ``k×k`` conv-BN-SiLU with its own shortcut → 1×1 projection → block shortcut. Token
  mixing is multi-head attention inside 7×7 windows whose queries and keys come from a
  1×1 conv and whose values are the block input itself (``attn_pre``); EMO's windows take
  every ``n``-th pixel (a dilated partition, ``n`` = side / 7), not contiguous tiles;
- norms BatchNorm (stages 1–2) and channel LayerNorm (stages 3–4, and before the head),
  all with eps 1e-6; activations SiLU (stages 1–2) and GELU (3–4); depthwise kernels 3, 3,
  5, 5; qkv bias; mean pooling and a linear head;
- EMO-1M: depths 2-2-8-3, dims 32-48-80-168, expansion 2-2.5-3-3.5, head dims 16-16-20-21;
  EMO-2M: depths 3-3-9-3, dims 32-48-120-200, head dims 16-16-20-20;
  EMO-5M: depths 3-3-9-3, dims 48-72-160-288, expansion 2-3-4-4, head dims 24-24-32-32.

At 224² with 1000 classes: EMO-1M 1.361 M, EMO-2M 2.377 M, EMO-5M 5.109 M parameters and
0.255 / 0.432 / 0.892 GMACs (matmul-only), 0.261 / 0.439 / 0.903 with fvcore's norm
convention. The authors' training logs (``resources/EMO_*/log_train.txt``, fvcore tables)
print exactly 1.361 / 2.377 / 5.109 M and 0.261 / 0.439 / 0.903 G; the README rounds the
parameters down to 1.3 / 2.3 / 5.1 M (261 / 439 / 903 M FLOPs).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath, LayerNorm2d, SqueezeExcite, to_2tuple, trunc_normal_
from torch import nn

from vitbench.build.builders import register

__all__ = ["EMO", "InvertedResidualMobileBlock", "emo_1m", "emo_2m", "emo_5m"]

_EPS = 1e-6


def _norm(kind: str, dim: int) -> nn.Module:
    return nn.BatchNorm2d(dim, eps=_EPS) if kind == "bn" else LayerNorm2d(dim, eps=_EPS)


_ACTIVATIONS: dict[str, type[nn.Module]] = {"silu": nn.SiLU, "gelu": nn.GELU}


def _window_partition(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """``(B, C, H, W)`` → ``(B·n_h·n_w, C, window, window)`` with dilated windows.

    Window ``(a, b)`` holds the pixels ``(i·n_h + a, j·n_w + b)``: EMO's layout
    ``b c (h1 n1) (w1 n2) -> (b n1 n2) c h1 w1``.
    """
    batch, dim, height, width = x.shape
    n_h, n_w = height // window, width // window
    x = x.reshape(batch, dim, window, n_h, window, n_w).permute(0, 3, 5, 1, 2, 4)
    return x.reshape(batch * n_h * n_w, dim, window, window), (n_h, n_w)


def _window_merge(x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`_window_partition`."""
    n_h, n_w = grid
    windows, dim, window, _ = x.shape
    batch = windows // (n_h * n_w)
    x = x.reshape(batch, n_h, n_w, dim, window, window).permute(0, 3, 4, 1, 5, 2)
    return x.reshape(batch, dim, window * n_h, window * n_w)


class InvertedResidualMobileBlock(nn.Module):
    """iRMB: optional window attention, 1×1 expansion, depthwise conv, 1×1 projection."""

    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        exp_ratio: float = 1.0,
        norm: str | None = "bn",
        act: str = "silu",
        dw_kernel: int = 3,
        stride: int = 1,
        has_skip: bool = True,
        attention: bool = False,
        dim_head: int = 32,
        window_size: int = 7,
        v_proj: bool = True,
        se: bool = False,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        drop: float = 0.0,
        drop_path: float = 0.0,
    ):
        super().__init__()
        dim_mid = int(dim_in * exp_ratio)
        self.norm = _norm(norm, dim_in) if norm else nn.Identity()
        self.has_skip = has_skip and dim_in == dim_out and stride == 1
        self.attention = attention
        if attention:
            if dim_in % dim_head:
                raise ValueError(f"dim {dim_in} is not divisible by head dim {dim_head}")
            self.num_heads = dim_in // dim_head
            self.dim_head = dim_head
            self.window_size = window_size
            self.attn_drop = attn_drop
            self.qk = nn.Conv2d(dim_in, dim_in * 2, 1, bias=qkv_bias)
        self.v = (nn.Sequential(nn.Conv2d(dim_in, dim_mid, 1, bias=qkv_bias), _ACTIVATIONS[act]())
                  if attention or v_proj else nn.Identity())
        self.conv_local = nn.Sequential(
            nn.Conv2d(dim_mid, dim_mid, dw_kernel, stride, (dw_kernel - 1) // 2, groups=dim_mid,
                      bias=False),
            nn.BatchNorm2d(dim_mid, eps=_EPS),
            nn.SiLU(),
        )
        self.se = (SqueezeExcite(dim_mid, rd_channels=dim_mid, act_layer=_ACTIVATIONS[act])
                   if se else nn.Identity())
        self.proj_drop = nn.Dropout(drop)
        self.proj = nn.Conv2d(dim_mid, dim_out, 1, bias=False)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def window_attention(self, x: torch.Tensor) -> torch.Tensor:
        """Attention within dilated windows; the (normed) input itself is the value."""
        height, width = x.shape[-2:]
        window = self.window_size if self.window_size > 0 else max(height, width)
        pad_h, pad_w = (-height) % window, (-width) % window
        x = F.pad(x, (0, pad_w, 0, pad_h))
        windows, grid = _window_partition(x, window)
        count, dim = windows.shape[:2]
        q, k = self.qk(windows).reshape(count, 2, self.num_heads, self.dim_head, -1) \
            .permute(1, 0, 2, 4, 3).unbind(0)
        v = windows.reshape(count, self.num_heads, self.dim_head, -1).transpose(-2, -1)
        out = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        out = out.transpose(-2, -1).reshape(count, dim, window, window)
        return _window_merge(out, grid)[:, :, :height, :width]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm(x)
        if self.attention:
            x = self.window_attention(x)
        x = self.v(x)
        local = self.se(self.conv_local(x))
        x = x + local if self.has_skip else local
        x = self.proj(self.proj_drop(x))
        return shortcut + self.drop_path(x) if self.has_skip else x


class EMO(nn.Module):
    """EMO classifier: stem, four iRMB stages at strides 4/8/16/32, LayerNorm, mean, head.

    Window attention pads to multiples of the window, so any input size runs; ``img_size``
    is only recorded as the size the model is meant for.
    """

    def __init__(
        self,
        img_size: int | Sequence[int] = 224,
        in_chans: int = 3,
        num_classes: int = 1000,
        depths: Sequence[int] = (2, 2, 8, 3),
        stem_dim: int = 24,
        embed_dims: Sequence[int] = (32, 48, 80, 168),
        exp_ratios: Sequence[float] = (2.0, 2.5, 3.0, 3.5),
        norms: Sequence[str] = ("bn", "bn", "ln", "ln"),
        acts: Sequence[str] = ("silu", "silu", "gelu", "gelu"),
        dw_kernels: Sequence[int] = (3, 3, 5, 5),
        dim_heads: Sequence[int] = (16, 16, 20, 21),
        window_size: int = 7,
        attention: Sequence[bool] = (False, False, True, True),
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ):
        super().__init__()
        self.img_size = to_2tuple(img_size)
        self.num_classes = num_classes
        self.num_features = embed_dims[-1]
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, stem_dim, 3, 2, 1),
            nn.BatchNorm2d(stem_dim, eps=_EPS),
            InvertedResidualMobileBlock(
                stem_dim, stem_dim, 1.0, norm=None, act=acts[0], dw_kernel=dw_kernels[0],
                has_skip=False, v_proj=False, se=True, qkv_bias=qkv_bias, drop=drop_rate),
        )
        drop_path_rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        self.stages = nn.ModuleList()
        dim_prev, cursor = stem_dim, 0
        for i, (depth, dim) in enumerate(zip(depths, embed_dims)):
            blocks = []
            for j in range(depth):
                first = j == 0
                blocks.append(InvertedResidualMobileBlock(
                    dim_prev, dim, exp_ratios[i] * (2 if first else 1), norm=norms[i],
                    act=acts[i], dw_kernel=dw_kernels[i], stride=2 if first else 1,
                    has_skip=not first, attention=attention[i] and not first,
                    dim_head=dim_heads[i], window_size=window_size, qkv_bias=qkv_bias,
                    attn_drop=attn_drop_rate, drop=drop_rate,
                    drop_path=drop_path_rates[cursor + j]))
                dim_prev = dim
            self.stages.append(nn.Sequential(*blocks))
            cursor += depth
        self.norm = _norm(norms[-1], embed_dims[-1])
        self.head = nn.Linear(embed_dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.LayerNorm, nn.BatchNorm2d)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _build(kwargs: dict, **config) -> EMO:
    return EMO(**{**config, **kwargs})


@register
def emo_1m(**kwargs) -> nn.Module:
    """EMO-1M: 1.361 M params, 0.261 GMACs (fvcore) at 224², as the authors' log."""
    return _build(kwargs, depths=(2, 2, 8, 3), embed_dims=(32, 48, 80, 168),
                  exp_ratios=(2.0, 2.5, 3.0, 3.5), dim_heads=(16, 16, 20, 21))


@register
def emo_2m(**kwargs) -> nn.Module:
    """EMO-2M: 2.377 M params, 0.439 GMACs (fvcore) at 224², as the authors' log."""
    return _build(kwargs, depths=(3, 3, 9, 3), embed_dims=(32, 48, 120, 200),
                  exp_ratios=(2.0, 2.5, 3.0, 3.5), dim_heads=(16, 16, 20, 20))


@register
def emo_5m(**kwargs) -> nn.Module:
    """EMO-5M: 5.109 M params, 0.903 GMACs (fvcore) at 224², as the authors' log."""
    return _build(kwargs, depths=(3, 3, 9, 3), embed_dims=(48, 72, 160, 288),
                  exp_ratios=(2.0, 3.0, 4.0, 4.0), dim_heads=(24, 24, 32, 32))
