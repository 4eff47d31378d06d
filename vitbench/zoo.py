"""Turn ``zoo:identifier`` into a model with random weights, and an example input for it.

Zoos:
- ``timm:NAME`` — ``timm.create_model(NAME, pretrained=False, **kwargs)``
- ``torchvision:NAME`` — ``torchvision.models.get_model(NAME, weights=None, **kwargs)``
- ``vitbench:NAME`` — the project's own builders (:mod:`vitbench.builders`)
- ``python:package.module:callable`` — any callable returning an ``nn.Module``

Weights are never downloaded: efficiency does not depend on them.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from typing import Any, Callable, Optional

from .errors import BuildError, UnknownModelError


def _timm_names() -> list[str]:
    import timm

    return list(timm.list_models())


def _torchvision_names() -> list[str]:
    from torchvision import models

    return sorted(models.list_models())


def _vitbench_names() -> list[str]:
    from .builders import load_builders

    return sorted(load_builders())


_NAME_LISTS: dict[str, Callable[[], list[str]]] = {
    "timm": _timm_names,
    "torchvision": _torchvision_names,
    "vitbench": _vitbench_names,
}


def suggest(name: str, candidates: list[str], n: int = 5) -> list[str]:
    """Close names for a typo: fuzzy matches first, then names containing the query."""
    squashed = name.lower().replace("-", "_")
    close = difflib.get_close_matches(squashed, candidates, n=n, cutoff=0.6)
    bare = squashed.replace("_", "")
    for candidate in candidates:
        if len(close) >= n:
            break
        if candidate not in close and bare and bare in candidate.replace("_", ""):
            close.append(candidate)
    return close


def check_model(model: str) -> None:
    """Raise :class:`UnknownModelError` (with close names) if ``model`` names nothing."""
    zoo, ident = model.split(":", 1)
    if zoo == "python":
        module_name, attr = ident.split(":", 1)
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise UnknownModelError(f"{model}: cannot import {module_name!r} ({exc})") from None
        if not callable(getattr(module, attr, None)):
            raise UnknownModelError(f"{model}: module {module_name!r} has no callable {attr!r}")
        return
    try:
        names = _NAME_LISTS[zoo]()
    except ImportError as exc:
        raise UnknownModelError(f"{model}: the {zoo} zoo is not installed ({exc})") from None
    if ident in names:
        return
    close = suggest(ident, names)
    hint = f"; did you mean {', '.join(f'{zoo}:{c}' for c in close)}?" if close else ""
    raise UnknownModelError(f"unknown model {model!r}{hint} (see `vitbench models PATTERN`)")


def list_models(pattern: str = "*", zoos: Optional[list[str]] = None) -> dict[str, list[str]]:
    """Model names per zoo matching a shell-style ``pattern`` (case-insensitive)."""
    import fnmatch

    if not any(ch in pattern for ch in "*?["):
        pattern = f"*{pattern}*"
    found: dict[str, list[str]] = {}
    for zoo, names in _NAME_LISTS.items():
        if zoos and zoo not in zoos:
            continue
        try:
            found[zoo] = [n for n in names() if fnmatch.fnmatch(n.lower(), pattern.lower())]
        except ImportError:
            found[zoo] = []
    return found


def _accepts(fn: Callable, keyword: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return keyword in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _build_timm(ident: str, kwargs: dict[str, Any], image_size: tuple[int, int]):
    import timm

    kwargs = dict(kwargs)
    default = timm.get_pretrained_cfg(ident)
    default_size = tuple(default.input_size[1:]) if default is not None else None
    if "img_size" not in kwargs and default_size and tuple(image_size) != default_size:
        # Models with absolute position embeddings must be built for the measured size.
        try:
            return timm.create_model(ident, pretrained=False, img_size=image_size, **kwargs)
        except TypeError as exc:
            if "img_size" not in str(exc):
                raise
    return timm.create_model(ident, pretrained=False, **kwargs)


def _build_torchvision(ident: str, kwargs: dict[str, Any], image_size: tuple[int, int]):
    from torchvision import models

    return models.get_model(ident, weights=None, **kwargs)


def _build_vitbench(ident: str, kwargs: dict[str, Any], image_size: tuple[int, int]):
    from .builders import load_builders

    builder = load_builders()[ident]
    if "img_size" not in kwargs and _accepts(builder, "img_size"):
        kwargs = {**kwargs, "img_size": image_size}
    return builder(**kwargs)


def _build_python(ident: str, kwargs: dict[str, Any], image_size: tuple[int, int]):
    module_name, attr = ident.split(":", 1)
    return getattr(importlib.import_module(module_name), attr)(**kwargs)


_BUILDERS = {
    "timm": _build_timm,
    "torchvision": _build_torchvision,
    "vitbench": _build_vitbench,
    "python": _build_python,
}


def import_zoo(model: str) -> None:
    """Import the library behind ``model`` now, so its import is not counted as the model's memory."""
    zoo, ident = model.split(":", 1)
    module = {"timm": "timm", "torchvision": "torchvision", "vitbench": "vitbench.builders",
              "python": ident.split(":", 1)[0]}[zoo]
    try:
        importlib.import_module(module)
        if zoo == "vitbench":
            _vitbench_names()
    except ImportError:
        pass  # build_model reports it on the row


def build_model(model: str, kwargs: dict[str, Any], image_size: tuple[int, int]):
    """Construct ``model`` with random weights, in eval mode. Raises :class:`BuildError`."""
    import torch

    check_model(model)
    zoo, ident = model.split(":", 1)
    try:
        module = _BUILDERS[zoo](ident, dict(kwargs), tuple(image_size))
    except Exception as exc:  # noqa: BLE001 - any constructor failure is the row's error
        raise BuildError(f"{model} failed to build: {exc.__class__.__name__}: {exc}") from exc
    if not isinstance(module, torch.nn.Module):
        raise BuildError(f"{model} returned {type(module).__name__}, not a torch.nn.Module")
    return module.eval()


def example_inputs(module, batch_size: int, image_size: tuple[int, int], *, device="cpu",
                   dtype=None) -> tuple:
    """Inputs for one forward pass: a random ``B×3×H×W`` image batch by default.

    A model that needs something else defines ``vitbench_example_inputs(batch_size,
    image_size)`` returning a tuple of tensors.
    """
    import torch

    generator = torch.Generator().manual_seed(0)
    custom = getattr(module, "vitbench_example_inputs", None)
    if callable(custom):
        inputs = tuple(custom(batch_size, tuple(image_size)))
    else:
        height, width = image_size
        inputs = (torch.randn(batch_size, 3, height, width, generator=generator),)
    return tuple(t.to(device=device, dtype=dtype if t.is_floating_point() else None)
                 if isinstance(t, torch.Tensor) else t for t in inputs)
