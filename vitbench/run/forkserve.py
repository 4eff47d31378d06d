"""The fork server's own process (:mod:`vitbench.run.forkserver` is the run's end and says
why): import the libraries once, then fork one worker per request and report how it ended.

Usage (by the run, not by people): ``python -m vitbench.run.forkserve CONTROL_FD``, started
through :func:`~vitbench.build.pythonpath.worker_command` with the worker environment and one
end of a ``SOCK_SEQPACKET`` socket pair as ``CONTROL_FD``. Protocol, one JSON object per packet:
the server says ``{"pid", "import_s"}`` (or ``{"error"}``) once it has imported everything; each
request is ``{"module", "args", "cwd"}`` with four file descriptors (the child's stdin, stdout,
stderr, and a channel socket), answered on the channel by ``{"pid"}`` then ``{"exit"}`` (the
exit code, −N for a signal) when the child ends.
"""

from __future__ import annotations

import importlib
import json
import os
import select
import signal
import socket
import sys
import time

#: what a server imports before it forks (missing ones are skipped: the child reports them)
PRELOAD = ("torch", "torchvision", "timm", "fvcore.nn", "vitbench.build.zoo",
           "vitbench.measure.job", "vitbench.measure.worker", "vitbench.measure.lockstep_worker")
#: the only modules a server runs in its children
WORKER_MODULES = ("vitbench.measure.worker", "vitbench.measure.lockstep_worker")
#: the largest packet either side sends
MESSAGE_BYTES = 1 << 16

def _preload() -> None:
    """Import :data:`PRELOAD`. numpy's OpenBLAS starts ``OPENBLAS_NUM_THREADS − 1`` threads
    when it loads, and a fork must not copy a process with threads: numpy is imported with
    one BLAS thread (torch's own BLAS is MKL on OpenMP, whose threads start at the first
    parallel op, in the child; numpy's BLAS is not what a model's forward pass runs)."""
    asked = os.environ.get("OPENBLAS_NUM_THREADS")
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        import numpy  # noqa: F401
    except ImportError:
        pass
    finally:
        if asked is None:
            del os.environ["OPENBLAS_NUM_THREADS"]
        else:
            os.environ["OPENBLAS_NUM_THREADS"] = asked
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a child that needs it reports the failure
            pass


#: madvise(2) advice that maps a range's pages into the page table (Linux 5.14)
MADV_POPULATE_READ = 22


def resident_file_pages() -> list[tuple[int, int]]:
    """(address, length) of the file-backed pages this process has mapped (``/proc/self/
    pagemap``'s present bit). A fork does not copy those page-table entries, so a child would
    fault the libraries' pages in again during its first inference and count them as the
    model's peak memory; mapping these again makes its resident set a fresh worker's."""
    import numpy as np

    page, found = os.sysconf("SC_PAGE_SIZE"), []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps, \
                open("/proc/self/pagemap", "rb") as pagemap:
            for line in maps:
                fields = line.split(maxsplit=5)
                if len(fields) < 6 or not fields[5].startswith("/") or \
                        fields[5].startswith("/dev/") or fields[1][0] != "r":
                    continue
                start, end = (int(x, 16) for x in fields[0].split("-"))
                pagemap.seek(start // page * 8)
                present = np.frombuffer(pagemap.read((end - start) // page * 8),
                                        dtype=np.uint64) >> np.uint64(63)
                edges = np.flatnonzero(np.diff(np.concatenate(([0], present, [0])).astype(np.int8)))
                found += [(start + int(a) * page, int(b - a) * page)
                          for a, b in zip(edges[::2], edges[1::2])]
    except (OSError, ValueError):
        return []
    return found


def map_again(ranges: list[tuple[int, int]]) -> None:
    """Map ``ranges`` (from :func:`resident_file_pages` in the server) into this child."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    for address, length in ranges:
        libc.madvise(address, length, MADV_POPULATE_READ)  # best effort: an error leaves it lazy


def _child(request: dict, stdio: list[int], server_fds: list[int],
           sockets: list[socket.socket], resident: list[tuple[int, int]]) -> None:
    """In the forked child: become a fresh worker, run the module's ``main``, exit."""
    code = 1
    try:
        os.setsid()
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)
        # the server's sockets are detached first, so no object closes a reused number later
        for fd in {*stdio, *server_fds, *(s.detach() for s in sockets)}:
            if fd > 2:
                os.close(fd)
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from vitbench.measure.worker import PARENT_PID_ENV

        os.environ[PARENT_PID_ENV] = str(os.getppid())
        map_again(resident)
        os.chdir(request["cwd"])
        import random

        random.seed()
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed()
        module = importlib.import_module(request["module"])
        sys.argv = [module.__file__, *request["args"]]  # as ``python -m`` (runpy) sets it
        code = module.main(list(request["args"]))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - reported on stderr, like an uncaught exception
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code if isinstance(code, int) else 0)


def serve(control_fd: int) -> None:
    """The server's loop: fork a child per request, report each child's exit status on its
    channel, and exit (killing the children's groups) when the run's end of ``control`` closes."""
    from vitbench.measure.worker import ORPHANED, PARENT_PID_ENV

    if os.environ.get(PARENT_PID_ENV) != str(os.getppid()):
        os._exit(ORPHANED)
    control = socket.socket(fileno=control_fd)
    began = time.monotonic()
    _preload()
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1:
        control.send(json.dumps({"error": f"{threads} threads after importing torch "
                                          "(forking would be unsafe)"}).encode())
        return
    resident = resident_file_pages()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    control.send(json.dumps({"pid": os.getpid(),
                             "import_s": round(time.monotonic() - began, 3)}).encode())
    children: dict[int, socket.socket] = {}
    while True:
        ready, _, _ = select.select([control, wake_r], [], [])
        if wake_r in ready:
            os.read(wake_r, 4096)
            _reap(children)
        if control in ready:
            try:
                data, fds, _, _ = socket.recv_fds(control, MESSAGE_BYTES, 4)
            except OSError:
                data, fds = b"", []
            if not data:
                break
            request, channel = json.loads(data), socket.socket(fileno=fds[3])
            if request.get("module") not in WORKER_MODULES:
                for fd in fds[:3]:
                    os.close(fd)
                channel.close()
                continue
            pid = os.fork()
            if pid == 0:
                _child(request, fds[:3], [wake_r, wake_w],
                       [control, channel, *children.values()], resident)
            for fd in fds[:3]:
                os.close(fd)
            children[pid] = channel
            try:
                channel.send(json.dumps({"pid": pid}).encode())
            except OSError:
                pass
            _reap(children)
    for pid in children:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _reap(children: dict[int, socket.socket]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        channel = children.pop(pid, None)
        if channel is not None:
            try:
                channel.send(json.dumps({"exit": os.waitstatus_to_exitcode(status)}).encode())
            except OSError:
                pass
            channel.close()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
    os._exit(0)
