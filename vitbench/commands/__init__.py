"""Extra ``vitbench`` sub-commands, one module each.

Every module here is imported by :mod:`vitbench.cli` and registers its command(s) on the
shared Typer ``app`` (``from ..cli import app`` then ``@app.command()``). Keep the command a
thin layer: parse options, call the library, render, map errors to exit codes.
"""

from __future__ import annotations

import importlib
import pkgutil


def load_all() -> None:
    """Import every command module so its commands register on the app."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{info.name}")
