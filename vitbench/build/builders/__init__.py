"""The project's own model builders: the ``vitbench:`` zoo.

Models the seed papers print that no installed zoo registers are written here from the
papers' descriptions. Each builder is a plain function returning an ``nn.Module`` with
random weights; register it with :func:`register` so suites can say ``vitbench:NAME``.
"""

from __future__ import annotations

import importlib
from typing import Callable

BUILDERS: dict[str, Callable] = {}

#: Modules whose import registers builders (kept lazy so ``import vitbench`` stays light).
_BUILDER_MODULES = ("vitbench.build.builders.pvt", "vitbench.build.builders.fixtures", "vitbench.build.builders.detr",
                    "vitbench.build.builders.segmenter")


def register(fn: Callable) -> Callable:
    """Add ``fn`` to the ``vitbench:`` zoo under its own name; a name registers once."""
    if fn.__name__ in BUILDERS:
        raise ValueError(f"builder {fn.__name__!r} is registered twice")
    BUILDERS[fn.__name__] = fn
    return fn


def load_builders() -> dict[str, Callable]:
    """Import every builder module and return the registry."""
    for module in _BUILDER_MODULES:
        importlib.import_module(module)
    return BUILDERS
