"""Where a model's parameters and multiply-accumulates go, module by module.

The per-module GFLOPs are fvcore's ``by_module`` / ``by_module_and_operator`` with
vitbench's handles (:func:`vitbench.measure.counting.fvcore_analysis`: fused attention counted,
norms per convention), so a ViT's ``blocks.N.attn`` shows its projections (``linear``)
and its attention products (``scaled_dot_product_attention``, or ``matmul`` when the
attention is written out) separately. The model-level total is also cross-checked with the
second counter, and every op either counter skipped is listed with its call count.

The model is built in this process: a ``python:`` model is searched, after the installed
packages, in its suite's folders (``SUITE.yaml:ROW``) or the ``python_path`` given (a model
named directly), never in the working directory (:mod:`vitbench.build.inprocess`).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Sequence

from vitbench.conventions import describe_convention
from vitbench.errors import VitbenchError
from vitbench.report.markdown import markdown_grid
from vitbench.report.table import fmt

#: Ops whose MACs are the attention products (Q·Kᵀ and A·V) rather than weights.
ATTENTION_OPS = ("scaled_dot_product_attention", "matmul", "bmm", "einsum", "baddbmm")


@dataclass
class ModuleCost:
    """One module of the tree: its own subtree's parameters and MACs."""

    name: str
    type: str
    depth: int
    params: int
    gflops: float
    share_pct: float
    by_op: dict[str, float] = field(default_factory=dict)
    uncounted_ops: dict[str, int] = field(default_factory=dict)

    @property
    def attention_gflops(self) -> float:
        """MACs of activation-by-activation products (attention) inside this module."""
        return sum(v for op, v in self.by_op.items() if op in ATTENTION_OPS)


@dataclass
class Profile:
    """A per-module breakdown plus the model-level counts and what was not counted."""

    model: str
    image_size: tuple[int, int]
    convention: str
    params: int
    gflops: float
    counter: str
    gflops_crosscheck: Optional[float]
    crosscheck_counter: str
    counters_agree: Optional[bool]
    modules: list[ModuleCost]
    uncounted_ops: dict[str, int]
    gap_ops: list[str]
    crosscheck_uncounted_ops: dict[str, int]
    max_depth: Optional[int] = None

    @property
    def convention_text(self) -> str:
        return describe_convention(self.convention)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["convention_text"] = self.convention_text
        data["units"] = {"params": "parameters", "gflops": "10^9 multiply-accumulates per image",
                         "share_pct": "percent of the model's total GFLOPs"}
        for module, cost in zip(data["modules"], self.modules):
            module["attention_gflops"] = cost.attention_gflops
        return data


def profile_module(module, inputs: tuple, convention: str, *, model: str = "",
                   max_depth: Optional[int] = None) -> Profile:
    """Break ``module``'s cost down by submodule (names as in ``named_modules``)."""
    from vitbench.measure.counting import count_flops, count_params, fvcore_analysis

    count = count_flops(module, inputs, convention)
    if count.error:
        raise VitbenchError(f"{model or type(module).__name__}: per-module counts need fvcore's "
                            f"trace, which failed: {count.error}")
    analysis = fvcore_analysis(module, inputs, convention)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        by_module = analysis.by_module()
        by_module_op = analysis.by_module_and_operator()
        unsupported = {name: dict(analysis.unsupported_ops(name)) for name in by_module}
    total = by_module.get("", 0) / 1e9
    image_size = tuple(inputs[0].shape[-2:]) if hasattr(inputs[0], "shape") else (0, 0)
    modules: list[ModuleCost] = []
    for name, sub in module.named_modules():
        depth = 0 if name == "" else name.count(".") + 1
        if max_depth is not None and depth > max_depth:
            continue
        gflops = by_module.get(name, 0) / 1e9
        modules.append(ModuleCost(
            name=name, type=type(sub).__name__, depth=depth, params=count_params(sub),
            gflops=gflops, share_pct=gflops / total * 100 if total else 0.0,
            by_op={op: n / 1e9 for op, n in sorted(by_module_op.get(name, {}).items()) if n},
            uncounted_ops=dict(sorted(unsupported.get(name, {}).items()))))
    return Profile(
        model=model or type(module).__name__, image_size=image_size, convention=convention,
        params=count_params(module), gflops=count.gmacs, counter=count.counter,
        gflops_crosscheck=count.crosscheck_gmacs, crosscheck_counter=count.crosscheck_counter,
        counters_agree=count.counters_agree, modules=modules, uncounted_ops=count.uncounted_ops,
        gap_ops=count.gap_ops, crosscheck_uncounted_ops=count.crosscheck_uncounted_ops,
        max_depth=max_depth)


def resolve_target(target: str, image_size: Optional[tuple[int, int]] = None,
                   convention: Optional[str] = None) -> tuple[str, dict, tuple[int, int], str]:
    """``zoo:identifier`` or ``SUITE.yaml:ROW`` → (model, kwargs, image size, convention).

    A suite row brings its own kwargs, image size and convention; explicit arguments win.
    """
    from vitbench.conventions import DEFAULT_FLOP_CONVENTION
    from vitbench.config.spec import ModelEntry, resolve_settings

    for suffix in (".yaml:", ".yml:"):
        if suffix in target:
            from vitbench.config.suite import load_suite, select_entries

            path, row = target.split(suffix, 1)
            suite = load_suite(path + suffix[:-1])
            entry = select_entries(suite, [row])[0]
            if entry.unavailable or not entry.model:
                raise VitbenchError(f"{target}: the row is unavailable: {entry.unavailable}")
            settings = resolve_settings(suite.defaults, entry)
            size = image_size or settings["image_size"]
            size = (size, size) if isinstance(size, int) else tuple(size)
            return entry.model, dict(entry.kwargs), size, convention or settings["flops_convention"]
    try:
        ModelEntry(name="profile", model=target)
    except Exception as exc:  # noqa: BLE001 - pydantic's message, in one line
        errors = getattr(exc, "errors", None)
        message = errors()[0]["msg"].removeprefix("Value error, ") if errors else str(exc)
        raise VitbenchError(f"{target}: {message} (or SUITE.yaml:ROW)") from None
    size = image_size or _default_size(target)
    return target, {}, tuple(size), convention or DEFAULT_FLOP_CONVENTION


def _default_size(model: str) -> tuple[int, int]:
    """The model's own input size where its zoo says one (timm's pretrained config), else 224."""
    zoo, ident = model.split(":", 1)
    if zoo == "timm":
        try:
            import timm

            cfg = timm.get_pretrained_cfg(ident)
            if cfg is not None and cfg.input_size:
                return tuple(cfg.input_size[1:])
        except Exception:  # noqa: BLE001 - an unknown name is reported when building
            pass
    return (224, 224)


def profile_model(target: str, *, image_size: Optional[tuple[int, int]] = None,
                  convention: Optional[str] = None, max_depth: Optional[int] = None,
                  kwargs: Optional[dict] = None, python_path: Sequence[str] = ()) -> Profile:
    """Build ``target`` (random weights) and profile one image at ``image_size``.
    ``python_path``: folders searched for a ``python:`` model named directly (a suite row's
    are its suite's folder and ``python_path:``)."""
    import torch

    from vitbench.build import zoo
    from vitbench.build.inprocess import PYTHON_PATH_HINT, command_line_path, use_in_process

    model, suite_kwargs, size, convention = resolve_target(target, image_size, convention)
    suite_file = next((target.split(suffix, 1)[0] + suffix[:-1]
                       for suffix in (".yaml:", ".yml:") if suffix in target), None)
    if suite_file is not None:
        from vitbench.config.suite import load_suite, python_path as suite_python_path

        use_in_process(model, suite_python_path(load_suite(suite_file)))
    else:
        use_in_process(model, command_line_path(python_path), PYTHON_PATH_HINT)
    torch.manual_seed(0)
    module = zoo.build_model(model, {**suite_kwargs, **(kwargs or {})}, size)
    inputs = zoo.example_inputs(module, 1, size)
    result = profile_module(module, inputs, convention, model=model, max_depth=max_depth)
    result.image_size = tuple(size)
    return result


# --- rendering -----------------------------------------------------------------------------

def _ops_text(cost: ModuleCost) -> str:
    return ", ".join(f"{op} {value:.4g}" for op, value in
                     sorted(cost.by_op.items(), key=lambda kv: -kv[1]))


def table_rows(profile: Profile) -> list[dict[str, Any]]:
    """Flat rows (one per module) for CSV export."""
    return [{"module": m.name or "(model)", "type": m.type, "depth": m.depth,
             "params": m.params, "params_m": m.params / 1e6, "gflops": m.gflops,
             "share_pct": m.share_pct, "attention_gflops": m.attention_gflops,
             "by_op_gflops": _ops_text(m),
             "uncounted_ops": "; ".join(f"{op}:{n}" for op, n in m.uncounted_ops.items())}
            for m in profile.modules]


def header_lines(profile: Profile) -> list[str]:
    """What was profiled, the totals from both counters, and the convention, as plain text."""
    height, width = profile.image_size
    check = ("–" if profile.gflops_crosscheck is None else f"{profile.gflops_crosscheck:.4f}")
    agree = {True: "agree within 1 %", False: "DISAGREE by more than 1 %", None: "not compared"}
    return [
        f"{profile.model} at {height}x{width}, batch 1: {profile.params / 1e6:.3f} M params, "
        f"{profile.gflops:.4f} GFLOPs ({profile.counter}); cross-check {check} "
        f"({profile.crosscheck_counter}): {agree[profile.counters_agree]}",
        f"convention {profile.convention}: {profile.convention_text}",
    ]


def uncounted_lines(profile: Profile) -> list[str]:
    """Ops neither counted nor hidden: call counts per op, gaps flagged."""
    def calls(ops: dict[str, int]) -> str:
        return ", ".join(f"{op} ×{n}" for op, n in ops.items()) or "none"

    lines = [f"not counted by {profile.counter} (call counts): {calls(profile.uncounted_ops)}"]
    if profile.gap_ops:
        lines.append("  may carry MACs (a gap in the count): " + ", ".join(profile.gap_ops))
    lines.append(f"ops {profile.crosscheck_counter} ran without a formula, not element-wise: "
                 f"{calls(profile.crosscheck_uncounted_ops)}")
    return lines


def render_markdown(profile: Profile) -> list[str]:
    """A Markdown report: header, the module table (indented names), uncounted ops."""
    lines = [f"# Profile: {profile.model}", ""]
    lines += [f"- {line}" for line in header_lines(profile)]
    lines.append("")
    lines += markdown_grid(
        ["module", "type", "params (M)", "GFLOPs", "share %", "attention GFLOPs", "by op (GFLOPs)"],
        [[("&nbsp;&nbsp;" * m.depth) + (m.name or "(model)"), m.type, fmt(m.params / 1e6, 4),
          fmt(m.gflops, 4), fmt(m.share_pct, 1), fmt(m.attention_gflops, 4), _ops_text(m)]
         for m in profile.modules],
        ["left", "left", "right", "right", "right", "right", "left"], padded=False).splitlines()
    lines += [""] + [f"- {line}" for line in uncounted_lines(profile)]
    return lines


def render_tree(profile: Profile, *, hide_empty: bool = True):
    """A Rich tree: each module with params, GFLOPs, share and the op split.

    Modules with neither parameters nor counted MACs (Identity, Dropout, activations) are
    left out unless ``hide_empty`` is False; the exports always list every module.
    """
    from rich.markup import escape
    from rich.tree import Tree

    def label(m: ModuleCost) -> str:
        text = (f"[bold]{escape(m.name.rsplit('.', 1)[-1] or profile.model)}[/bold] "
                f"[dim]{escape(m.type)}[/dim]  {m.params / 1e6:.3f} M  "
                f"[cyan]{m.gflops:.4f} GFLOPs[/cyan] ({m.share_pct:.1f} %)")
        if m.by_op and m.gflops:
            text += "  [dim]" + escape(_ops_text(m)) + "[/dim]"
        if m.attention_gflops:
            text += f"  [magenta]attention {m.attention_gflops:.4f}[/magenta]"
        if m.uncounted_ops and m.depth == profile.modules[0].depth:
            text += "  [yellow]uncounted: " + escape(", ".join(m.uncounted_ops)) + "[/yellow]"
        return text

    root = Tree(label(profile.modules[0]))
    nodes = {profile.modules[0].name: root}
    for m in profile.modules[1:]:
        if hide_empty and m.params == 0 and m.gflops == 0:
            continue
        parent_name = m.name.rsplit(".", 1)[0] if "." in m.name else ""
        parent = nodes.get(parent_name)
        if parent is None:
            continue
        nodes[m.name] = parent.add(label(m))
    return root
