"""Units and counting conventions: the one place that says what every number means.

Every report quotes :func:`describe_convention` and :data:`UNITS`, so a reader never has to
guess whether "GFLOPs" means multiply-accumulates or whether attention was counted.
"""

from __future__ import annotations

import re
from typing import Literal

FlopConvention = Literal["matmul-only", "fvcore"]

#: Default convention: what the seed papers' tables print for most families.
DEFAULT_FLOP_CONVENTION: FlopConvention = "matmul-only"

FLOP_CONVENTIONS: dict[str, str] = {
    "matmul-only": (
        "GFLOPs = 10^9 multiply-accumulates per image (one MAC counted as one FLOP, as fvcore "
        "and the papers count) of convolutions, linear layers, matrix products and attention "
        "(Q·Kᵀ and A·V, fused scaled_dot_product_attention included); norms, activations, "
        "pooling and element-wise ops are not counted"
    ),
    "fvcore": (
        "GFLOPs = 10^9 multiply-accumulates per image of convolutions, linear layers, matrix "
        "products and attention (fused scaled_dot_product_attention included), plus fvcore's "
        "norm, upsampling, adaptive-pooling and grid-sample handles (e.g. LayerNorm at 5 "
        "FLOPs per element; a deformable convolution's bilinear sampling at grid-sample's 4 "
        "per sampled value); activations and element-wise ops are not counted"
    ),
}

#: Ops fvcore's default table counts that the ``matmul-only`` convention switches off.
NORM_AND_RESAMPLE_OPS: tuple[str, ...] = (
    "aten::batch_norm",
    "aten::group_norm",
    "aten::layer_norm",
    "aten::instance_norm",
    "aten::upsample_nearest2d",
    "aten::upsample_bilinear2d",
    "aten::adaptive_avg_pool2d",
    "aten::grid_sampler",
)

#: Op-name fragments that carry no multiply-accumulates worth counting under either
#: convention (element-wise arithmetic, activations, reductions, data movement: ``unfold``,
#: ``gather``, ``topk`` of unfold/gather-based attention, ``pixel_shuffle`` and
#: ``pixel_unshuffle``, which only move channels into space and back). Any *other* op a
#: counter skips is reported as a possible gap in the count.
CHEAP_OP_MARKERS: tuple[str, ...] = (
    "add", "sub", "mul", "div", "neg", "pow", "sqrt", "rsqrt", "exp", "log", "abs", "clamp",
    "gelu", "relu", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid", "softplus", "elu",
    "mish", "softmax", "mean", "sum", "max", "min", "amax", "norm", "var", "std", "pool",
    "pad", "expand", "repeat", "roll", "index", "gather", "scatter", "dropout", "fill", "zeros",
    "ones", "where", "masked", "cumsum", "floor", "ceil", "round", "sign", "erf", "sin", "cos", "reciprocal",
    "im2col", "col2im", "unfold", "fold", "flip", "copy", "clone", "contiguous", "to", "type_as",
    "square", "lerp", "addcmul", "addcdiv", "topk", "sort", "argmax", "argmin", "cat", "stack",
    "split", "chunk", "narrow", "select", "slice", "view", "reshape", "permute", "transpose",
    "flatten", "squeeze", "unsqueeze", "arange", "linspace", "meshgrid", "rand", "normal",
    "bernoulli", "rsub", "softmax", "unflatten", "shape", "eq", "ne", "lt", "gt", "le", "ge", "logical", "bitwise", "remainder", "fmod",
    "shuffle", "unshuffle",
)


def describe_convention(convention: str) -> str:
    """One sentence that says what a GFLOPs figure under ``convention`` counts."""
    return FLOP_CONVENTIONS[convention]


#: Op-name fragments that mean multiply-accumulates: a skipped op like this is a real gap.
MAC_OP_MARKERS: tuple[str, ...] = (
    "mm", "matmul", "conv", "linear", "einsum", "attention", "lstm", "gru", "rnn", "tensordot",
    "bilinear", "dot", "outer", "kron", "baddbmm", "addbmm", "addmv", "mv",
)


def is_cheap_op(op_name: str) -> bool:
    """True when a skipped op is element-wise/data movement, i.e. not a gap in a MAC count."""
    bare = op_name.split("::")[-1].strip("_").lower()
    if any(marker in bare for marker in MAC_OP_MARKERS):
        return False
    tokens = {t for t in re.split(r"[_\d]+", bare) if t}
    return bare in CHEAP_OP_MARKERS or bool(tokens & set(CHEAP_OP_MARKERS))


#: Units of every number vitbench prints, keyed by the result field / CSV column.
UNITS: dict[str, str] = {
    "params_m": "millions of parameters (all parameters, trainable or not)",
    "gflops": "10^9 multiply-accumulates per image (see flops_convention)",
    "latency_ms": "milliseconds of wall time per forward pass of one batch",
    "throughput_img_s": "images per second = batch_size / median latency",
    "peak_memory_mb": "MiB (2^20 bytes), see memory_method",
    "delta_pct": "(measured - printed) / printed × 100",
}

#: How the default tolerance is widened: a printed value stands for an interval of
#: ± half a unit in its last printed digit (0.4 stands for 0.35–0.45).
DEFAULT_TOLERANCE_PCT = 5.0
