"""SIGTERM and SIGHUP stop a command the way Ctrl-C does.

A cancelled CI job sends SIGTERM, a closed terminal SIGHUP; by default either ends Python on
the spot, leaving the worker's temp folder behind, rows ``pending`` and nothing said. Inside
:func:`signals_interrupt` each of SIGINT, SIGTERM and SIGHUP raises
:class:`~vitbench.errors.Interrupted` instead, so the one ``except KeyboardInterrupt`` path
(worker killed, finished rows saved, one line, exit 128 + the signal) serves all three.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    import typer

from vitbench.errors import ExitCode, Interrupted, signal_name_of

#: the signals that stop a command cleanly; those a platform lacks (SIGHUP on Windows) are skipped
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """Turn the first SIGINT/SIGTERM/SIGHUP into :class:`Interrupted`; ignore later ones, so
    a second signal (CI runners often send two) cannot cut the save short.

    A signal the process was started ignoring (``nohup`` ignores SIGHUP) stays ignored. The
    previous handlers come back when the block ends normally; after an interrupt they stay
    ignoring until the command exits. Outside the main thread (where Python cannot set
    handlers) the block changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopped = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopped
        if stopped:
            return
        stopped = True
        raise Interrupted(signal.Signals(signum).name)

    previous = {}
    for name in STOP_SIGNALS:
        signum = getattr(signal, name, None)
        if signum is not None and signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, stop)
    try:
        yield
    finally:
        if not stopped:
            for signum, handler in previous.items():
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def interrupted(exc: KeyboardInterrupt, what: str) -> typer.Exit:
    """Print the one line of a command that ``exc`` stopped (``interrupted by SIGTERM; WHAT``:
    what was kept, and where) and return the :class:`typer.Exit` to raise, with the signal's
    exit code (143, 129, 130)."""
    from vitbench.cli.app import fail

    return fail(f"interrupted by {signal_name_of(exc)}; {what}",
                getattr(exc, "exit_code", ExitCode.INTERRUPTED))
