"""Errors the library raises. The CLI turns each into one clear line and an exit code.

The library never calls ``sys.exit``; a model that fails to build or run is a failed
*row* (see :mod:`vitbench.records`), not an exception that stops the suite.
"""

from __future__ import annotations


class VitbenchError(Exception):
    """Base class: something the user can fix, described in one line."""


class SuiteError(VitbenchError):
    """A suite file is malformed. The message names the file, the entry and the field."""

    def __init__(self, path: str, where: str, problem: str):
        self.path, self.where, self.problem = str(path), where, problem
        location = f"{self.path}: {where}" if where else self.path
        super().__init__(f"{location}: {problem}")


class UnknownModelError(VitbenchError):
    """A ``zoo:identifier`` names no model; the message suggests close names."""


class BuildError(VitbenchError):
    """A model could not be constructed (raised inside the worker, recorded on the row)."""


class ResultsError(VitbenchError):
    """A results file cannot be read (missing, not JSON, or an unknown schema)."""
