"""Worker process: measure one job and write its row as JSON.

Usage (by the runner, not by people): ``python -m vitbench.measure.worker JOB.json ROW.json``,
started without the working directory on ``sys.path``
(:func:`vitbench.build.pythonpath.worker_command`).
Stage names go to stdout, one per line (``stage build``), so the parent can show progress.
Threads are fixed by the parent through ``OMP_NUM_THREADS`` before torch is imported.

A worker never outlives its parent or its budget: started by the runner (which sets
``VITBENCH_PARENT_PID`` and holds the worker's stdin open), it asks Linux for SIGKILL when
the parent dies, exits at once if the parent is already gone, and exits when its stdin
reaches end-of-file (the parent's end closed: the portable fallback). It also arms its own
deadline, ``timeout_s`` + :data:`DEADLINE_GRACE_S`, so a hung worker dies even when the
parent is stuck. The lockstep worker (:mod:`vitbench.measure.lockstep_worker`) uses the same
two guards, its commands arriving through the stdin watcher.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    import queue

#: the parent's pid, set by :func:`vitbench.run.workers.run_worker`; without it (a worker
#: started by hand) nothing watches the parent
PARENT_PID_ENV = "VITBENCH_PARENT_PID"
#: how long after ``timeout_s`` the worker's own deadline kills it: later than the parent's
#: timeout (which reports the row), with room for a slow start-up on a busy machine
DEADLINE_GRACE_S = 30.0
#: exit status of a worker whose parent is gone (nobody is left to read it)
ORPHANED = 3
PR_SET_PDEATHSIG = 1


def die_with_parent(lines: Optional[queue.Queue[bytes]] = None) -> None:
    """Tie this process's life to the parent named by ``VITBENCH_PARENT_PID``: the kernel's
    parent-death signal (Linux), a check that closes the race with a parent that died before
    it was set, and a thread that exits when stdin (a pipe the parent holds) closes.

    With ``lines``, stdin also carries the parent's commands (the lockstep worker): the thread
    puts each line it reads on ``lines``, so end-of-file is seen even while the main thread
    is busy measuring. Without ``VITBENCH_PARENT_PID`` nothing watches the parent, but
    ``lines`` is still fed (a worker started by hand)."""
    try:
        parent = int(os.environ.get(PARENT_PID_ENV, ""))
    except ValueError:
        if lines is not None:
            threading.Thread(target=read_stdin, args=(lines, False), name="vitbench-commands",
                             daemon=True).start()
        return
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the pipe below still ends the worker
    if os.getppid() != parent:
        os._exit(ORPHANED)
    threading.Thread(target=read_stdin, args=(lines, True), name="vitbench-parent-pipe",
                     daemon=True).start()


def read_stdin(lines: Optional[queue.Queue[bytes]], exit_at_end: bool) -> None:
    """Block on stdin, handing each line to ``lines`` (if given). End-of-file means the
    parent (the only writer) is gone: exit with :data:`ORPHANED` when ``exit_at_end``, else
    put ``b""`` on ``lines``."""
    buffer = b""
    try:
        while chunk := os.read(0, 65536):
            if lines is not None:
                *whole, buffer = (buffer + chunk).split(b"\n")
                for line in whole:
                    lines.put(line)
    except OSError:
        pass
    if exit_at_end:
        os._exit(ORPHANED)
    if lines is not None:
        lines.put(b"")


#: the fallback deadline's timer (no ``alarm``), cancelled when the deadline is re-armed
_deadline_timer: Optional[threading.Timer] = None


def arm_deadline(seconds: float) -> None:
    """Die ``seconds`` from now whatever the process is doing: SIGALRM with its default
    action (the kernel ends the process, even inside C code holding the GIL); where there is
    no ``alarm`` (Windows), a daemon thread that calls ``os._exit``. Calling it again
    replaces the deadline (the lockstep worker's watchdog)."""
    global _deadline_timer
    if not math.isfinite(seconds) or seconds <= 0:
        return
    if hasattr(signal, "alarm"):
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(min(math.ceil(seconds), 2**31 - 1))
        return
    if _deadline_timer is not None:
        _deadline_timer.cancel()
    _deadline_timer = threading.Timer(seconds, os._exit, args=(128 + 14,))
    _deadline_timer.daemon = True
    _deadline_timer.start()


def main(argv: list[str]) -> int:
    die_with_parent()
    job_path, row_path = Path(argv[0]), Path(argv[1])
    from vitbench.measure.job import measure_job
    from vitbench.config.spec import Job

    job = Job.model_validate_json(job_path.read_text(encoding="utf-8"))
    arm_deadline(job.timeout_s + DEADLINE_GRACE_S)

    def on_stage(stage: str) -> None:
        print(f"stage {stage}", flush=True)

    if job.model.startswith("python:"):
        # The suite's own code runs here first: if it ends the process, the parent's last
        # word from this worker is "import" and the row says so.
        from vitbench.build.zoo import import_zoo

        on_stage("import")
        import_zoo(job.model)  # an exception is kept for the build stage to report
    row = measure_job(job, on_stage, fresh_process=True)
    from vitbench.files import write_atomic

    write_atomic(row_path, row.model_dump_json())  # whole or absent: the parent reads it
    print("stage done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
