"""The project's own model builders: the ``vitbench:`` zoo.

Models the seed papers print that no installed zoo registers are written here from the
papers' descriptions and their authors' published configurations, one family per module
(as in timm). Each builder is a plain function returning an ``nn.Module`` with random
weights, taking ``img_size`` and ``num_classes`` like timm's; register it with
:func:`register` so suites can say ``vitbench:NAME``. Every module in this package is a
builder module: :func:`load_builders` imports them all (lazily, so ``import vitbench``
stays light), so a new family needs no edit here.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Callable

BUILDERS: dict[str, Callable] = {}



def register(fn: Callable) -> Callable:
    """Add ``fn`` to the ``vitbench:`` zoo under its own name; a name registers once."""
    if fn.__name__ in BUILDERS:
        raise ValueError(f"builder {fn.__name__!r} is registered twice")
    BUILDERS[fn.__name__] = fn
    return fn


def load_builders() -> dict[str, Callable]:
    """Import every builder module and return the registry."""
    for module in sorted(info.name for info in pkgutil.iter_modules(__path__)):
        importlib.import_module(f"{__name__}.{module}")
    return BUILDERS
