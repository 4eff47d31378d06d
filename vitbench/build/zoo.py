"""Turn ``zoo:identifier`` into a model with random weights, and an example input for it.

Zoos:
- ``timm:NAME`` — ``timm.create_model(NAME, pretrained=False, **kwargs)``
- ``torchvision:NAME`` — ``torchvision.models.get_model(NAME, weights=None, **kwargs)``
- ``vitbench:NAME`` — the project's own builders (:mod:`vitbench.build.builders`)
- ``python:package.module:callable`` — any callable returning an ``nn.Module``, imported
  only in a worker, found after the installed packages (:mod:`vitbench.build.pythonpath`)
- ``hf:ClassName`` — a Hugging Face ``transformers`` model class (optional extra
  ``pip install 'vitbench[hf]'``), built from ``ClassName.config_class(**kwargs)`` with
  random weights, never from the hub (``HF_HUB_OFFLINE=1`` is set)

Weights are never downloaded: efficiency does not depend on them.

Models whose forward returns a dict, a dataclass (Hugging Face ``ModelOutput``), a list of
dicts (torchvision detectors) or nested tuples are wrapped by :func:`tensor_outputs`, which
returns a flat tuple of tensors, so the JIT-trace counter can follow them.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import os
import re
from typing import Any, Callable, Optional, Sequence

from vitbench.build.pythonpath import import_python_module, locate_module, worker_python_path
from vitbench.config.spec import ZOOS
from vitbench.errors import BuildError, UnknownModelError


@functools.lru_cache(maxsize=None)  # a suite checks every row; list once
def _timm_names() -> tuple[str, ...]:
    import timm

    return tuple(timm.list_models())


@functools.lru_cache(maxsize=None)  # a suite checks every row; list once
def _torchvision_names() -> tuple[str, ...]:
    from torchvision import models

    return tuple(sorted(models.list_models()))


@functools.lru_cache(maxsize=None)  # a suite checks every row; list once
def _vitbench_names() -> tuple[str, ...]:
    from vitbench.build.builders import load_builders

    return tuple(sorted(load_builders()))


#: transformers names that are model classes: ``XxxModel`` or ``XxxForTask``.
_HF_MODEL_CLASS = re.compile(r"^(?!Auto|TF|Flax)[A-Z][A-Za-z0-9]*(Model|For[A-Z][A-Za-z0-9]*)$")


def _import_transformers():
    """``transformers``, offline; a missing install says which extra to add, in one line."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import transformers
    except ImportError:
        raise ImportError("the hf zoo needs the optional dependency transformers: "
                          "pip install 'vitbench[hf]'") from None
    return transformers


def _hf_names() -> tuple[str, ...]:
    transformers = _import_transformers()
    return tuple(sorted(n for n in dir(transformers)
                        if _HF_MODEL_CLASS.match(n) and "PreTrained" not in n))


#: Spelled-out numbers users type for a variant's digit (``pvt_v2_bzero`` means ``b0``).
_NUMBER_WORDS = {word: str(digit) for digit, word in enumerate(
    "zero one two three four five six seven eight nine ten".split())}


def _normalised(name: str) -> str:
    text = name.lower().replace("-", "_")
    for word, digit in _NUMBER_WORDS.items():
        text = text.replace(word, digit)
    return text


def edit_distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance of ``a`` and ``b``, or ``limit + 1`` once it must exceed ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (char_a != char_b)))
        if min(current) > limit:
            return limit + 1
        previous = current
    return previous[-1]


def suggest(name: str, candidates: Sequence[str], n: int = 5) -> list[str]:
    """Close names for a typo, closest first.

    Full names the query begins (``deit_tiny`` → ``deit_tiny_patch16_224``) come first, then
    names by edit distance after normalising case, ``-``/``_`` and spelled numbers, ties
    broken by the longer shared prefix: among ``pvt_v2_b0`` … ``pvt_v2_b5``, all equally
    similar to ``pvt_v2_bzero`` by difflib's ratio, ``b0`` comes first. Names that contain
    the query fill the remaining places.
    """
    query = _normalised(name)
    limit = max(2, len(query) // 3)
    scored = []
    for candidate in candidates:
        target = _normalised(candidate)
        if target.startswith(query):  # a prefix of a full name: the user stopped typing early
            scored.append((0, 0, len(candidate), candidate))
            continue
        distance = edit_distance(query, target, limit)
        if distance <= limit:
            prefix = len(os.path.commonprefix([query, target]))
            scored.append((1 + distance, -prefix, len(candidate), candidate))
    close = [candidate for *_, candidate in sorted(scored)[:n]]
    bare = query.replace("_", "")
    for candidate in candidates:
        if len(close) >= n:
            break
        if candidate not in close and bare and bare in _normalised(candidate).replace("_", ""):
            close.append(candidate)
    return close


def check_model(model: str, python_path: Sequence[str] = (), hint: str = "") -> None:
    """Raise :class:`UnknownModelError` (with close names) if ``model`` names nothing.

    A ``python:pkg.mod:fn`` model is located, not imported: nothing of ``pkg`` or ``pkg.mod``
    is executed, only file-system look-ups over the installed packages, then ``python_path``
    (the suite's folder and ``python_path:``) and ``PYTHONPATH``, as a worker searches them
    (:func:`vitbench.build.pythonpath.locate_module`). Whether ``fn`` exists and is callable
    can only be known by importing, so the worker checks it (a failed row if not). ``hint``
    says where to put a module not found (default: beside the suite)."""
    zoo, ident = model.split(":", 1)
    if zoo == "python":
        module_name = ident.split(":", 1)[0]
        folders = [f for f in worker_python_path(python_path).split(os.pathsep) if f]
        spec, missing = locate_module(module_name, folders)
        if spec is None:
            where = ", ".join(folders) or "nothing else"
            hint = hint or "put it beside the suite or list its folder under python_path:"
            raise UnknownModelError(f"{model}: no module {missing!r} in the installed packages "
                                    f"or the python path ({where}); {hint}")
        return
    try:
        names = ZOO_TABLE[zoo].names()
    except ImportError as exc:
        if ZOO_TABLE[zoo].extra:
            raise UnknownModelError(f"{model}: {exc}") from None
        raise UnknownModelError(f"{model}: the {zoo} zoo is not installed ({exc})") from None
    if ident in names:
        return
    close = suggest(ident, names)
    hint = f"; did you mean {', '.join(f'{zoo}:{c}' for c in close)}?" if close else ""
    raise UnknownModelError(f"unknown model {model!r}{hint} (see `vitbench models PATTERN`)")


def default_image_size(model: str) -> Optional[tuple[int, int]]:
    """The input size a model's zoo declares for it (timm's pretrained config), or None."""
    zoo, ident = model.split(":", 1)
    if zoo != "timm":
        return None
    import timm

    cfg = timm.models.get_pretrained_cfg(ident)
    size = getattr(cfg, "input_size", None)
    return (int(size[1]), int(size[2])) if size and len(size) == 3 else None


def list_models(pattern: str = "*", zoos: Optional[list[str]] = None) -> dict[str, list[str]]:
    """Model names per zoo matching a shell-style ``pattern`` (case-insensitive)."""
    import fnmatch

    if not any(ch in pattern for ch in "*?["):
        pattern = f"*{pattern}*"
    found: dict[str, list[str]] = {}
    for zoo in ZOO_TABLE.values():
        if zoo.names is None or (zoos and zoo.name not in zoos):
            continue
        try:
            found[zoo.name] = [n for n in zoo.names()
                               if fnmatch.fnmatch(n.lower(), pattern.lower())]
        except ImportError:
            found[zoo.name] = []
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

    builder_params = inspect.signature(models.get_model_builder(ident)).parameters
    if "weights_backbone" not in kwargs and "weights_backbone" in builder_params:
        # Detection/segmentation builders otherwise download ImageNet backbone weights.
        kwargs = {**kwargs, "weights_backbone": None}
    return models.get_model(ident, weights=None, **kwargs)


def _build_vitbench(ident: str, kwargs: dict[str, Any], image_size: tuple[int, int]):
    from vitbench.build.builders import load_builders

    builder = load_builders()[ident]
    if "img_size" not in kwargs and _accepts(builder, "img_size"):
        kwargs = {**kwargs, "img_size": image_size}
    return builder(**kwargs)


def _build_python(ident: str, kwargs: dict[str, Any], image_size: tuple[int, int]):
    module_name, attr = ident.split(":", 1)
    builder = getattr(import_python_module(module_name), attr, None)
    if not callable(builder):
        problem = "has no attribute" if builder is None else "has a non-callable"
        raise BuildError(f"module {module_name!r} {problem} {attr!r}")
    return builder(**kwargs)


def _build_hf(ident: str, kwargs: dict[str, Any], image_size: tuple[int, int]):
    """``ident``'s config class built from ``kwargs`` (random weights), outputs as a tuple."""
    transformers = _import_transformers()
    model_class = getattr(transformers, ident)
    config_class = getattr(model_class, "config_class", None)
    if config_class is None:
        raise TypeError(f"transformers.{ident} has no config_class; name a concrete model class")
    config = config_class(**kwargs)
    return tensor_outputs(model_class(config))


@dataclasses.dataclass(frozen=True)
class Zoo:
    """One zoo: how to list its names, build a model, and which module to import first."""

    name: str
    build: Callable[[str, dict[str, Any], tuple[int, int]], Any]
    #: the module behind an identifier, imported before the memory baseline is taken
    library: Callable[[str], str]
    #: the zoo's model names (None: any importable ``module:callable``)
    names: Optional[Callable[[], tuple[str, ...]]] = None
    #: the optional extra that installs the zoo's library, for the error a missing one gives
    extra: Optional[str] = None


#: Every zoo, by the prefix a suite writes (``timm:``, ...); the names are
#: :data:`vitbench.config.spec.ZOOS`, which validates suites without importing this module.
ZOO_TABLE: dict[str, Zoo] = {zoo.name: zoo for zoo in (
    Zoo("timm", _build_timm, lambda ident: "timm", _timm_names),
    Zoo("torchvision", _build_torchvision, lambda ident: "torchvision", _torchvision_names),
    Zoo("python", _build_python, lambda ident: ident.split(":", 1)[0]),
    Zoo("vitbench", _build_vitbench, lambda ident: "vitbench.build.builders", _vitbench_names),
    Zoo("hf", _build_hf, lambda ident: "transformers", _hf_names, extra="hf"),
)}
assert tuple(ZOO_TABLE) == ZOOS, "vitbench.config.spec.ZOOS and ZOO_TABLE name the same zoos"


def flatten_outputs(outputs: Any) -> tuple:
    """Every tensor in ``outputs`` (tensor, dict, dataclass, ModelOutput, list/tuple, nested),
    in order, as a flat tuple; ``None`` and non-tensor leaves are dropped."""
    import torch

    if isinstance(outputs, torch.Tensor):
        return (outputs,)
    if isinstance(outputs, dict):  # ModelOutput is an OrderedDict holding its non-None fields
        values = list(outputs.values())
    elif dataclasses.is_dataclass(outputs) and not isinstance(outputs, type):
        values = [getattr(outputs, f.name) for f in dataclasses.fields(outputs)]
    elif isinstance(outputs, (list, tuple)):
        values = list(outputs)
    else:
        return ()
    flat: list = []
    for value in values:
        flat.extend(flatten_outputs(value))
    return tuple(flat)


@functools.lru_cache(maxsize=None)
def _tensor_outputs_class():
    import torch

    class TensorOutputs(torch.nn.Module):
        """Wraps a model so its forward returns a flat tuple of tensors (:func:`flatten_outputs`).

        Parameters, buffers and FLOPs are the wrapped model's (its only child, ``model``);
        only the shape of the return value changes, so JIT tracing and timing see tensors.
        """

        def __init__(self, model):
            super().__init__()
            self.model = model
            # The one attribute vitbench asks a model for; nothing else is forwarded (a
            # catch-all __getattr__ would hide typos as attributes of the wrapped model).
            if callable(getattr(model, "vitbench_example_inputs", None)):
                self.vitbench_example_inputs = model.vitbench_example_inputs

        def forward(self, *args, **kwargs):
            return flatten_outputs(self.model(*args, **kwargs))

    return TensorOutputs


def tensor_outputs(model):
    """``model`` wrapped so that its forward returns a flat tuple of tensors (torch loaded lazily)."""
    return _tensor_outputs_class()(model)


def _needs_tensor_outputs(zoo: str, ident: str, module) -> bool:
    """torchvision detection/segmentation models return dicts (lists of dicts in eval)."""
    if zoo != "torchvision":
        return False
    return type(module).__module__.startswith(("torchvision.models.detection",
                                               "torchvision.models.segmentation"))


def import_zoo(model: str) -> None:
    """Import the library behind ``model`` now, so its import is not counted as the model's memory."""
    zoo, ident = model.split(":", 1)
    try:
        if zoo == "python":  # runs the module's code: workers only
            import_python_module(ZOO_TABLE[zoo].library(ident))
            return
        importlib.import_module(ZOO_TABLE[zoo].library(ident))
        if zoo == "vitbench":
            _vitbench_names()
    except (ImportError, BuildError):
        pass  # build_model reports it on the row


def build_model(model: str, kwargs: dict[str, Any], image_size: tuple[int, int]):
    """Construct ``model`` with random weights, in eval mode. Raises :class:`BuildError`."""
    import torch

    zoo, ident = model.split(":", 1)
    if zoo != "python":  # a python: module is found, or not, by importing it below
        check_model(model)
    try:
        module = ZOO_TABLE[zoo].build(ident, dict(kwargs), tuple(image_size))
    except BuildError as exc:
        raise BuildError(f"{model}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - any constructor failure is the row's error
        raise BuildError(f"{model} failed to build: {exc.__class__.__name__}: {exc}") from exc
    if not isinstance(module, torch.nn.Module):
        raise BuildError(f"{model} returned {type(module).__name__}, not a torch.nn.Module")
    if _needs_tensor_outputs(zoo, ident, module):
        module = tensor_outputs(module)
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
