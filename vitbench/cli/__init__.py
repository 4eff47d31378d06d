"""The ``vitbench`` command line: a thin layer over the library.

:mod:`vitbench.cli.app` holds the Typer app, the exit codes and the helpers every command
shares; each other module here registers its commands on that app when imported, and is
imported below, explicitly (nothing imports back up into this package).
"""

from vitbench.cli.app import app, main
# Each import registers its commands; the order is the order of `vitbench --help`.
from vitbench.cli import run, suites, suitenew, results  # noqa: F401, E402
from vitbench.cli import report, agreement, gate, profile, sweep, selfcheck, schema  # noqa: F401, E402
from vitbench.cli import runtimecheck  # noqa: F401, E402
from vitbench.cli import trend  # noqa: F401, E402
from vitbench.cli import history  # noqa: F401, E402

__all__ = ["app", "main"]
