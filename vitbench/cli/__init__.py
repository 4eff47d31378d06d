"""The ``vitbench`` command line: a thin layer over the library.

:mod:`vitbench.cli.app` holds the Typer app, the exit codes and the helpers every command
shares; each other module here registers its commands on that app when imported, and is
imported below, explicitly (nothing imports back up into this package).
"""

from vitbench.cli.app import app, main
from vitbench.cli import agreement, gate, profile, report, selfcheck, sweep  # noqa: F401, E402

__all__ = ["app", "main"]
