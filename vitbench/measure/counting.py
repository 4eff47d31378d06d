"""Static cost of a model: parameters and GFLOPs (multiply-accumulates), attention included.

Two independent counters:

* the **primary** count is fvcore's ``FlopCountAnalysis`` (a JIT trace), with a handle for
  ``aten::scaled_dot_product_attention`` that fvcore lacks (without it fvcore drops
  2.7–18.7 % of a ViT's MACs: DeiT-S 4.25 instead of 4.6), one for
  ``torchvision::deform_conv2d`` (:func:`deform_conv2d_macs`; LIT/LITv2), and the
  norm/resampling handles switched on or off by the convention (:mod:`vitbench.conventions`);
* the **cross-check** is ``torch.utils.flop_counter.FlopCounterMode`` (dispatcher level),
  with the CPU flash-attention kernel and ``torchvision::deform_conv2d`` registered (torch's
  registry misses both and silently counts 0) and, for the ``fvcore`` convention, fvcore's
  norm and resampling formulas added.

Both count one image (batch 1) in float32 on the CPU: counts do not depend on hardware.
Every op the primary counter skipped is reported with its call count; ops that may carry
multiply-accumulates are flagged as gaps, never hidden. The cross-check reports the ops it
ran without a formula that are not element-wise/data movement
(``FlopCount.crosscheck_uncounted_ops``), so an op neither counter knows shows up twice.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from math import prod
from typing import Any, Optional

from vitbench.conventions import NORM_AND_RESAMPLE_OPS, is_cheap_op

# fvcore scripts a loss function at import time; torch 2.14 warns on every import. It is
# fvcore's business, not the user's: silence exactly that message.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated",
                        category=FutureWarning)

#: Relative disagreement between the two counters above which a row is flagged.
CROSSCHECK_TOLERANCE = 0.01


@dataclass
class FlopCount:
    """The outcome of counting one model once."""

    #: giga multiply-accumulates per forward pass (what papers print as "GFLOPs")
    gmacs: Optional[float]
    convention: str
    counter: str = "fvcore+sdpa"
    uncounted_ops: dict[str, int] = field(default_factory=dict)
    gap_ops: list[str] = field(default_factory=list)
    crosscheck_gmacs: Optional[float] = None
    crosscheck_counter: str = "torch.utils.flop_counter+cpu-sdpa"
    #: aten ops the cross-check ran with no formula that may carry MACs (not cheap per
    #: :func:`vitbench.conventions.is_cheap_op`), with call counts.
    crosscheck_uncounted_ops: dict[str, int] = field(default_factory=dict)
    error: Optional[str] = None
    crosscheck_error: Optional[str] = None

    @property
    def crosscheck_delta_pct(self) -> Optional[float]:
        if not self.gmacs or self.crosscheck_gmacs is None:
            return None
        return (self.crosscheck_gmacs - self.gmacs) / self.gmacs * 100

    @property
    def counters_agree(self) -> Optional[bool]:
        delta = self.crosscheck_delta_pct
        return None if delta is None else abs(delta) <= CROSSCHECK_TOLERANCE * 100


def count_params(module) -> int:
    """Every parameter, trainable or not (tied weights once)."""
    return sum(p.numel() for p in module.parameters())


# --- fvcore ------------------------------------------------------------------------------

def _sdpa_macs(q_shape, k_shape, v_shape) -> int:
    """MACs of softmax(Q·Kᵀ)·V: one per channel per (query, key) pair, in each product."""
    batch_heads = prod(q_shape[:-2])
    q_len, head_dim = q_shape[-2], q_shape[-1]
    k_len, v_dim = k_shape[-2], v_shape[-1]
    return batch_heads * q_len * k_len * (head_dim + v_dim)


def _sdpa_jit_handle(inputs: list[Any], outputs: list[Any]) -> int:
    from fvcore.nn.jit_handles import get_shape

    return _sdpa_macs(get_shape(inputs[0]), get_shape(inputs[1]), get_shape(inputs[2]))


def _excluded_by_convention(inputs: list[Any], outputs: list[Any]) -> int:
    return 0


#: fvcore's rate for bilinear resampling (its ``aten::grid_sampler`` and
#: ``aten::upsample_bilinear2d`` handles): 4 multiply-accumulates per sampled value.
BILINEAR_MACS_PER_SAMPLE = 4


def deform_conv2d_macs(input_shape, weight_shape, out_shape, convention: str) -> int:
    """MACs of ``torchvision::deform_conv2d``: the ordinary convolution it replaces, and its
    bilinear sampling only under the ``fvcore`` convention.

    The convolution is C_out · C_in/groups · k_h · k_w per output position, as LIT's and
    LITv2's own ``flops()`` count their deformable patch embeddings (the offset conv is an
    ordinary conv, counted by the conv formula). The sampling (each of the C_in · k_h · k_w
    values of an output position's column interpolates 4 neighbours) is resampling, so it
    follows ``grid_sample``: left out under ``matmul-only``, as LIT's own count leaves it
    out; counted at fvcore's grid-sample rate of 4 per sampled value under ``fvcore``. The
    mask of a modulated (v2) deformable conv is an element-wise product: not counted.
    """
    batch, c_in = input_shape[0], input_shape[1]
    c_out, c_in_per_group, k_h, k_w = weight_shape
    positions = batch * prod(out_shape[2:])
    macs = positions * c_out * c_in_per_group * k_h * k_w
    if convention == "fvcore":
        macs += positions * c_in * k_h * k_w * BILINEAR_MACS_PER_SAMPLE
    return macs


def _deform_conv2d_jit_handle(convention: str):
    def handle(inputs: list[Any], outputs: list[Any]) -> int:
        from fvcore.nn.jit_handles import get_shape

        return deform_conv2d_macs(get_shape(inputs[0]), get_shape(inputs[1]),
                                  get_shape(outputs[0]), convention)
    return handle


def fvcore_analysis(module, inputs: tuple, convention: str):
    """A configured ``FlopCountAnalysis`` (quiet, SDPA handled, norms per convention)."""
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(module, inputs)
    analysis.set_op_handle("aten::scaled_dot_product_attention", _sdpa_jit_handle)
    analysis.set_op_handle("torchvision::deform_conv2d", _deform_conv2d_jit_handle(convention))
    if convention == "matmul-only":
        # A None handle would leave fvcore's own handle in place: count these as zero.
        analysis.set_op_handle(**{op: _excluded_by_convention for op in NORM_AND_RESAMPLE_OPS})
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    return analysis


def _count_fvcore(module, inputs: tuple, convention: str) -> tuple[float, dict[str, int]]:
    analysis = fvcore_analysis(module, inputs, convention)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        total = analysis.total()
        skipped = dict(sorted(analysis.unsupported_ops().items()))
    return total / 1e9, skipped


# --- torch.utils.flop_counter ----------------------------------------------------------

def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * _sdpa_macs(query_shape, key_shape, value_shape)


def _norm_flops(per_element_affine: int, per_element_plain: int, weight_index: int):
    """fvcore's norm formulas, in FlopCounterMode's unit (2 per MAC-equivalent)."""
    def formula(*args, out_shape=None, **kwargs) -> int:
        has_affine = len(args) > weight_index and args[weight_index] is not None
        per_element = per_element_affine if has_affine else per_element_plain
        return 2 * prod(args[0]) * per_element
    return formula


def _deform_conv2d_flops(convention: str):
    """:func:`deform_conv2d_macs` in FlopCounterMode's unit (2 per MAC); the op's arguments
    are (input, weight, offset, mask, bias, strides, paddings, dilations, groups, ...)."""
    def formula(input_shape, weight_shape, *args, out_shape=None, **kwargs) -> int:
        return 2 * deform_conv2d_macs(input_shape, weight_shape, out_shape, convention)
    return formula


def _crosscheck_mapping(convention: str) -> dict:
    import sys

    import torch

    aten = torch.ops.aten
    mapping: dict = {aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops}
    if "torchvision" in sys.modules:
        # torchvision registers its ops on import; a model that calls one has imported it.
        mapping[torch.ops.torchvision.deform_conv2d] = _deform_conv2d_flops(convention)
    if convention == "fvcore":
        mapping.update({
            aten.native_layer_norm: _norm_flops(5, 4, 2),
            aten.native_group_norm: _norm_flops(5, 4, 1),
            aten._native_batch_norm_legit_no_training: _norm_flops(2, 1, 1),
            aten.native_batch_norm: _norm_flops(2, 1, 1),
            aten.upsample_nearest2d: lambda *a, out_shape=None, **k: 2 * prod(out_shape),
            aten.upsample_bilinear2d: lambda *a, out_shape=None, **k: 2 * 4 * prod(out_shape),
            aten._adaptive_avg_pool2d: lambda *a, out_shape=None, **k: 2 * prod(a[0]),
            aten.grid_sampler_2d: lambda *a, out_shape=None, **k: 2 * 4 * prod(out_shape),
        })
    return mapping


#: Tensor-creation, metadata and error-check ops that carry no MACs but whose names
#: :func:`vitbench.conventions.is_cheap_op` does not recognise (seen at dispatcher level).
_NO_MAC_OPS = frozenset({
    "t", "unbind", "eye", "empty", "empty_like", "new_empty", "new_zeros", "new_ones", "full",
    "full_like", "alias", "detach", "lift_fresh", "as_strided", "_unsafe_view", "unsafe_split",
    "split_with_sizes", "unsafe_split_with_sizes", "_to_copy", "zero", "resize", "set",
    "_linalg_check_errors", "scalar_tensor", "item", "_local_scalar_dense", "is_nonzero",
    "equal", "any", "all", "isnan", "isinf", "nonzero", "randn", "randperm", "empty_strided",
    "_reshape_alias", "diagonal", "tril", "triu", "constant_pad_nd",
})


def _is_cheap(op_name: str) -> bool:
    """:func:`is_cheap_op`, plus ops that only create, alias or check tensors."""
    bare = op_name.split("::")[-1].strip("_").lower()
    return is_cheap_op(op_name) or bare in _NO_MAC_OPS or f"_{bare}" in _NO_MAC_OPS


def _excluded_by_name(op_name: str, convention: str) -> bool:
    """Norm/resampling ops the ``matmul-only`` convention leaves out on purpose."""
    if convention != "matmul-only":
        return False
    bare = op_name.split("::")[-1].strip("_").lower().removeprefix("native_")
    return any(bare.startswith(op.split("::")[-1]) for op in NORM_AND_RESAMPLE_OPS)


def _crosscheck_op_name(func_packet) -> str:
    """The packet of ``aten.linalg_solve_ex`` → ``aten::_linalg_solve_ex`` (fvcore's spelling)."""
    name = getattr(func_packet, "_qualified_op_name", None)
    return name if name else str(func_packet).replace(".", "::", 1)


def _count_flop_counter_mode(module, inputs: tuple, convention: str) -> tuple[float, dict[str, int]]:
    """Total MACs (FlopCounterMode counts 2 per MAC) and the ops it ran with no formula.

    FlopCounterMode calls ``_count_flops(packet, ...)`` for every op that did not decompose
    into others; an op there without a registry entry added zero. We record those calls.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    mode = FlopCounterMode(display=False, custom_mapping=_crosscheck_mapping(convention))
    skipped: dict[str, int] = {}
    count_flops = mode._count_flops

    def recording_count_flops(func_packet, out, args, kwargs):
        if func_packet not in mode.flop_registry:
            name = _crosscheck_op_name(func_packet)
            skipped[name] = skipped.get(name, 0) + 1
        return count_flops(func_packet, out, args, kwargs)

    mode._count_flops = recording_count_flops
    # Parameters that require grad make the mode's module tracker hook autograd; some models
    # (DETR feeds its query embedding in as an input) then fail. Counting needs no autograd.
    requires_grad = [(p, p.requires_grad) for p in module.parameters()]
    try:
        for parameter, _ in requires_grad:
            parameter.requires_grad_(False)
        with torch.no_grad(), mode:
            module(*inputs)
    finally:
        for parameter, flag in requires_grad:
            parameter.requires_grad_(flag)
    uncounted = {op: n for op, n in sorted(skipped.items())
                 if not _is_cheap(op) and not _excluded_by_name(op, convention)}
    return mode.get_total_flops() / 2 / 1e9, uncounted


# --- both ----------------------------------------------------------------------------------

def count_flops(module, inputs: tuple, convention: str, *, crosscheck: bool = True) -> FlopCount:
    """Count GFLOPs (MACs) of one forward over ``inputs`` with both counters."""
    result = FlopCount(gmacs=None, convention=convention)
    try:
        result.gmacs, result.uncounted_ops = _count_fvcore(module, inputs, convention)
        result.gap_ops = [op for op in result.uncounted_ops if not _is_cheap(op)]
    except Exception as exc:  # noqa: BLE001 - a trace failure is reported, not fatal
        result.error = f"fvcore could not trace the model: {exc.__class__.__name__}: {exc}"
    if crosscheck:
        try:
            result.crosscheck_gmacs, result.crosscheck_uncounted_ops = _count_flop_counter_mode(
                module, inputs, convention)
        except Exception as exc:  # noqa: BLE001
            result.crosscheck_error = f"{exc.__class__.__name__}: {exc}"
    if result.gmacs is None and result.crosscheck_gmacs is not None:
        # fvcore's JIT trace failed (dict outputs, data-dependent control flow): fall back.
        result.gmacs, result.counter = result.crosscheck_gmacs, result.crosscheck_counter
        result.crosscheck_gmacs = None
    return result
