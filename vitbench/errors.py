"""Errors the library raises. The CLI turns each into one clear line and an exit code.

The library never calls ``sys.exit``; a model that fails to build or run is a failed
*row* (see :mod:`vitbench.records`), not an exception that stops the suite.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Every command's exit codes: the one table (README "Exit codes", docs/ci-gate.md).

    A gate verdict never shares a code with bad input: click's own usage errors exit 2, so
    2 means "the command was wrong" for every command, and the gate's INCONCLUSIVE is 3.
    """

    OK = 0  #: done; a gate PASS (WARN and IMPROVED pass too)
    FAILED = 1  #: run: some rows failed or timed out; compare/ab/gate-selftest: a regression
    BAD_INPUT = 2  #: usage error, bad option value, malformed suite or results file, unknown model
    INCONCLUSIVE = 3  #: the gate could not decide (too noisy, or nothing comparable)
    ERROR = 4  #: vitbench itself could not finish: an unexpected error, a disk it cannot write
    INTERRUPTED = 130  #: Ctrl-C (SIGINT); results measured so far are on disk


class VitbenchError(Exception):
    """Base class: something the user can fix, described in one line."""

    #: what the command line exits with when this error stops a command
    exit_code: ExitCode = ExitCode.BAD_INPUT


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
