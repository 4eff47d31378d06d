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
    HANGUP = 129  #: SIGHUP (terminal closed); stopped like Ctrl-C, results so far on disk
    INTERRUPTED = 130  #: Ctrl-C (SIGINT); results measured so far are on disk
    TERMINATED = 143  #: SIGTERM (a cancelled CI job, ``kill``); stopped like Ctrl-C


#: the exit code of a command stopped by each signal: the shell's 128 + signal number
SIGNAL_EXIT_CODES = {"SIGHUP": ExitCode.HANGUP, "SIGINT": ExitCode.INTERRUPTED,
                     "SIGTERM": ExitCode.TERMINATED}


class Interrupted(KeyboardInterrupt):
    """A signal (SIGINT, SIGTERM, SIGHUP) that stops a command the way Ctrl-C does.

    A :class:`KeyboardInterrupt`, so every ``except KeyboardInterrupt`` cleanup (worker
    killed, finished rows saved, the rest marked ``interrupted``) serves all three signals.
    """

    def __init__(self, signal_name: str = "SIGINT"):
        super().__init__(signal_name)
        self.signal_name = signal_name

    @property
    def exit_code(self) -> ExitCode:
        return SIGNAL_EXIT_CODES.get(self.signal_name, ExitCode.INTERRUPTED)


def signal_name_of(exc: BaseException) -> str:
    """The signal behind an interrupt: a plain ``KeyboardInterrupt`` is Ctrl-C (SIGINT)."""
    return getattr(exc, "signal_name", "SIGINT")


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


class DiskError(VitbenchError):
    """A file could not be written (a full disk, a quota, a read-only file system, no
    permission): ``cannot write PATH: CAUSE``. vitbench could not finish, exit 4; a run that
    stops on one says where its measured rows are (:class:`RunStoppedError`)."""

    exit_code = ExitCode.ERROR

    def __init__(self, path: object, cause: str):
        self.path, self.cause = str(path), cause
        super().__init__(f"cannot write {self.path}: {cause}")


class RunStoppedError(DiskError):
    """``vitbench run`` stopped because ``results.json`` could not be written. The message
    says how many rows were measured, which are in the last ``results.json`` and where a copy
    of the rest went; ``run`` is the measured run, to print."""

    def __init__(self, error: DiskError, message: str, run: object):
        super().__init__(error.path, error.cause)
        self.args = (message,)
        self.run = run

    def __str__(self) -> str:
        return str(self.args[0])


class OutputFolderError(VitbenchError):
    """``--out`` cannot be used: a file, not writable, in use by another run, or holding a
    previous run (without ``--force``). Bad input, exit 2, one line naming the folder."""
