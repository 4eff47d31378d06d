"""The everyday command-line surface: version, machine-readable output, one model without a
suite file, and the impossible settings refused before any model is built."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from vitbench import __version__
from vitbench.cli import app


def test_version_prints_one_line_and_exits_0():
    done = CliRunner().invoke(app, ["--version"])
    assert done.exit_code == 0
    assert re.fullmatch(rf"vitbench {re.escape(__version__)} \(Python 3\.\d+\.\d+\)\n", done.output)
