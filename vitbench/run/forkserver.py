"""Worker processes without the import bill: a fork server per worker environment.

A fresh worker spends seconds importing torch, torchvision, timm and fvcore before it
measures anything. A fork server is one process per distinct worker environment (threads,
glibc ``MALLOC_*`` thresholds, python path: :func:`vitbench.run.workers.worker_env`),
started once per run by the first worker that needs it, with that environment, through
:func:`~vitbench.build.pythonpath.worker_command`. It imports those libraries and vitbench's
measure modules, runs no torch operation (fork is unsafe once OpenMP threads or CUDA have
started: the server refuses to serve if it has more than one thread), then forks one child
per worker. Each child is still one process per measurement: a new session of its own
(``os.setsid``: the parent's ``os.killpg`` reaches it), the parent's pipes as its stdin,
stdout and stderr (passed over a unix socket), default signal handlers, fresh seeds, and
the worker module's ``main(argv)``; it then ``os._exit``\\s. The allocator settings were
read by glibc when the server started, so every child inherits them.

The guarantees of a fresh worker hold: the child's ``VITBENCH_PARENT_PID`` is the server
(its parent), so its parent-death signal and ``getppid`` check watch the server, and its
stdin is the run's pipe (end-of-file when the run dies); the server exits when the run's end
of its control socket closes (the run died or finished), killing its children's process
groups first. The server reaps each child and reports its exit status, so a child killed by
a signal is described like a fresh one ("died with SIGKILL").

Peak memory means the same in a child: the worker trims the heap and resets the peak-RSS
counter before its first inference call (:mod:`vitbench.measure.memory`), so pages inherited
from the server are part of the resident set it subtracts, as a fresh worker's imports are.

``worker_start`` chooses (:func:`resolved_start`): ``fork`` by default on Linux for CPU rows;
``fresh`` elsewhere and for CUDA rows. If a server cannot start or dies, the worker starts
fresh and the row says so in a warning; no row is lost. The server's own process is
:mod:`vitbench.run.forkserve`.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO, Optional

from vitbench.run.forkserve import MESSAGE_BYTES

#: how long a run waits for a server to import everything before starting workers fresh
SERVER_START_S = 300.0


class ServerUnavailable(Exception):
    """The fork server could not start, refused, or died: start this worker fresh."""


def resolved_start(setting: str, device: str) -> str:
    """``fork`` or ``fresh`` for a ``worker_start`` setting: ``auto`` forks on Linux for CPU
    rows (a server never touches CUDA, but a fork before CUDA starts is not verified here)."""
    usable = sys.platform.startswith("linux") and hasattr(socket, "send_fds")
    if setting == "fresh" or not usable:
        return "fresh"
    if setting == "auto" and device != "cpu":
        return "fresh"
    return "fork"


class Worker:
    """A started worker: the subset of :class:`subprocess.Popen` the two callers use
    (``pid``, ``stdin``, ``stdout``, ``poll``, ``wait``, ``returncode``), plus how it
    started (``start``: fork | fresh) and why it started fresh when fork was asked (``note``)."""

    def __init__(self, pid: int, stdin: IO, stdout: IO, channel: Optional[socket.socket] = None,
                 popen: Optional[subprocess.Popen] = None, start: str = "fresh",
                 note: str = "", ready_s: Optional[float] = None):
        self.pid, self.stdin, self.stdout = pid, stdin, stdout
        self.returncode: Optional[int] = None
        self._channel, self._popen = channel, popen
        self.start, self.note, self.ready_s = start, note, ready_s

    def poll(self) -> Optional[int]:
        if self._popen is not None:
            self.returncode = self._popen.poll()
        elif self.returncode is None:
            self._receive(0.0)
        return self.returncode

    def wait(self, timeout: Optional[float] = None) -> int:
        if self._popen is not None:
            self.returncode = self._popen.wait(timeout)
            return self.returncode
        if self.returncode is None and not self._receive(timeout):
            raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout)
        return self.returncode

    def _receive(self, timeout: Optional[float]) -> bool:
        """Read the server's exit report; True once the return code is known."""
        try:
            ready, _, _ = select.select([self._channel], [], [], timeout)
            if not ready:
                return False
            data = self._channel.recv(MESSAGE_BYTES)
        except OSError:
            data = b""
        if data:
            self.returncode = int(json.loads(data)["exit"])
        else:  # the server died: its children get SIGKILL from their parent-death signal
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.returncode = -int(signal.SIGKILL)
        self._channel.close()
        return True


class ForkServer:
    """The run's end of one server: its process, its control socket, what it said on start."""

    def __init__(self, env: dict[str, str]):
        from vitbench.build.pythonpath import worker_command
        from vitbench.measure.worker import PARENT_PID_ENV

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.log = tempfile.TemporaryFile(prefix="vitbench-forkserver-")
        started = time.monotonic()
        try:
            self.proc = subprocess.Popen(
                worker_command("vitbench.run.forkserve", str(theirs.fileno())),
                env={**env, PARENT_PID_ENV: str(os.getpid())}, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=self.log, pass_fds=[theirs.fileno()],
                start_new_session=True)
        finally:
            theirs.close()
        self.control, self.lock = ours, threading.Lock()
        ready, _, _ = select.select([ours], [], [], SERVER_START_S)
        hello = json.loads(ours.recv(MESSAGE_BYTES) or b"{}") if ready else {}
        if "error" in hello or "pid" not in hello:
            reason = hello.get("error") or self._why(
                f"not ready after {SERVER_START_S:g} s" if not ready else "exited")
            self.close()
            raise ServerUnavailable(reason)
        self.import_s, self.start_s = hello.get("import_s"), time.monotonic() - started

    def _why(self, what: str) -> str:
        code = self.proc.poll()
        self.log.seek(0)
        tail = [x for x in self.log.read().decode(errors="replace").splitlines() if x.strip()][-2:]
        reason = what if code is None else f"exited with status {code}"
        return reason + (f": {' | '.join(tail)}" if tail else "")

    def start(self, module: str, args: list[str],
              stdio: tuple[int, int, int]) -> tuple[int, socket.socket]:
        """Ask for a child running ``module``'s ``main(args)`` on ``stdio``; (pid, channel)."""
        mine, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        request = json.dumps({"module": module, "args": args, "cwd": os.getcwd()}).encode()
        try:
            with self.lock:
                socket.send_fds(self.control, [request], [*stdio, child.fileno()])
            ready, _, _ = select.select([mine], [], [], 60)
            data = mine.recv(MESSAGE_BYTES) if ready else b""
        except OSError as exc:
            mine.close()
            raise ServerUnavailable(self._why(f"unreachable ({exc})")) from None
        finally:
            child.close()
        if not data:
            mine.close()
            raise ServerUnavailable(self._why("did not answer"))
        return int(json.loads(data)["pid"]), mine

    def close(self) -> None:
        self.control.close()  # the server kills its children and exits
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()


_servers: dict[frozenset, ForkServer] = {}
_broken: dict[frozenset, str] = {}
_servers_lock = threading.Lock()


def _server_for(env: dict[str, str]) -> ForkServer:
    from vitbench.measure.worker import PARENT_PID_ENV

    key = frozenset((k, v) for k, v in env.items() if k != PARENT_PID_ENV)
    with _servers_lock:
        if key in _broken:
            raise ServerUnavailable(_broken[key])
        server = _servers.get(key)
        if server is not None and server.proc.poll() is not None:
            reason = server._why("exited")
            server.close()
            del _servers[key]
            _broken[key] = f"the fork server {reason}"
            raise ServerUnavailable(_broken[key])
        if server is None:
            try:
                server = _servers[key] = ForkServer(env)
            except (ServerUnavailable, OSError) as exc:
                _broken[key] = f"the fork server did not start: {exc}"
                raise ServerUnavailable(_broken[key]) from None
        return server


def running_servers() -> dict[str, int]:
    """The live servers of this process: their pid by the ``OMP_NUM_THREADS`` they serve."""
    with _servers_lock:
        return {dict(key).get("OMP_NUM_THREADS", "?"): server.proc.pid
                for key, server in _servers.items() if server.proc.poll() is None}


def stop_servers() -> None:
    """Close every server of this process (also at exit): they kill their children and exit."""
    with _servers_lock:
        while _servers:
            _servers.popitem()[1].close()
        _broken.clear()


atexit.register(stop_servers)


def start_worker(module: str, args: list[str], env: dict[str, str], *, stderr: IO,
                 start: str = "fresh", text: bool = False) -> Worker:
    """Start ``python -m module args…`` in ``env``: forked by the environment's server when
    ``start`` is ``fork`` (falling back to a fresh process with ``note`` saying why), else a
    fresh process. Either way a new session with stdin and stdout pipes to this process."""
    note = ""
    if start == "fork":
        began = time.monotonic()
        stdin_r = stdin_w = stdout_r = stdout_w = -1
        try:
            server = _server_for(env)
            stdin_r, stdin_w = os.pipe()
            stdout_r, stdout_w = os.pipe()
            pid, channel = server.start(module, list(args), (stdin_r, stdout_w, stderr.fileno()))
        except ServerUnavailable as exc:
            for fd in (stdin_r, stdin_w, stdout_r, stdout_w):
                if fd >= 0:
                    os.close(fd)
            note = f"{exc}; this worker started as a fresh process"
        else:
            os.close(stdin_r)
            os.close(stdout_w)
            mode = "w" if text else "wb"
            stdin = os.fdopen(stdin_w, mode, **({"encoding": "utf-8"} if text else {}))
            stdout = (os.fdopen(stdout_r, "r", encoding="utf-8", errors="replace") if text
                      else os.fdopen(stdout_r, "rb"))
            return Worker(pid, stdin, stdout, channel=channel, start="fork",
                          ready_s=time.monotonic() - began)
    from vitbench.build.pythonpath import worker_command

    proc = subprocess.Popen(worker_command(module, *args), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=stderr, env=env, text=text,
                            start_new_session=True)
    return Worker(proc.pid, proc.stdin, proc.stdout, popen=proc, start="fresh", note=note)
