"""The parent's end of a lockstep worker (:mod:`vitbench.measure.lockstep_worker`): start it,
send it commands, read its events with a deadline, and kill it.

Both lockstep users sit on it: ``vitbench ab`` (:mod:`vitbench.gate.lockstep`, two sides in
alternating blocks) and the runner's reference-relative latency
(:mod:`vitbench.run.reference`, every row against one reference model).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
from pathlib import Path

from vitbench.config.spec import Job
from vitbench.files import write_atomic


class WorkerGone(Exception):
    """The worker died, said it failed, or missed the deadline."""


class LockstepWorker:
    """One live lockstep worker process: JSON commands in on its stdin, JSON events out on
    its stdout, stderr kept in a file for the failure message; dies with this process."""

    def __init__(self, job: Job, tmp: Path, label: str):
        from vitbench.build.pythonpath import worker_command
        from vitbench.measure.worker import PARENT_PID_ENV
        from vitbench.run.workers import worker_env

        self.job, self.label = job, label
        self.stage = ""  # the last stage the worker named: "import" while it imports the model
        job_path = tmp / f"job-{label}.json"
        write_atomic(job_path, job.model_dump_json())
        self.stderr = open(tmp / f"err-{label}.txt", "w+", encoding="utf-8", errors="replace")
        self.proc = subprocess.Popen(
            worker_command("vitbench.measure.lockstep_worker", str(job_path)),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
            env={**worker_env(job), PARENT_PID_ENV: str(os.getpid())}, start_new_session=True)
        self.buffer = b""

    def send(self, obj: dict) -> None:
        try:
            self.proc.stdin.write((json.dumps(obj) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise WorkerGone(self._why("worker exited")) from None

    def receive(self, deadline: float) -> dict:
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise WorkerGone(f"timed out after {self.job.timeout_s:g} s (timeout_s); "
                                 "worker killed")
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.proc.wait()
                    raise WorkerGone(self._why("worker exited"))
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        message = json.loads(line)
        if message.get("event") == "stage":
            self.stage = message.get("stage", "")
            return self.receive(deadline)
        if message.get("event") == "error":
            raise WorkerGone(message.get("error", "failed"))
        return message

    def _why(self, what: str) -> str:
        from vitbench.run.workers import describe_exit, is_warning_noise

        code = self.proc.poll()
        self.stderr.seek(0)
        tail = [x for x in self.stderr.read().splitlines()
                if x.strip() and not is_warning_noise(x)][-3:]
        reason = describe_exit(code) if code is not None else what
        if self.stage == "import":  # see vitbench.measure.lockstep_worker
            reason += f" while importing {self.job.model.split(':')[1]}"
        return f"worker {reason}" + (f": {' | '.join(tail)}" if tail else "")

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()

    def close(self) -> None:
        self.kill()
        self.stderr.close()
