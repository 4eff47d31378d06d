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
import time
from pathlib import Path
from typing import Optional

from vitbench.config.spec import Job
from vitbench.files import write_atomic
from vitbench.records import (Deployment, Latency, LatencySummary, ModelResult, PeakMemory,
                              StaticCost)


#: target length of one side's timed block, seconds; at most this many calls per block
BLOCK_S = 0.1
BLOCK_MAX_CALLS = 100
#: a freshly started side warms up at least this long, whatever the suite says (a block
#: must be steady)
MIN_WARMUP_S = 0.5
MIN_WARMUP_CALLS = 10


def block_calls(median_ms: float) -> int:
    """Calls per block for a side whose call takes ``median_ms``: about :data:`BLOCK_S`."""
    return max(1, min(BLOCK_MAX_CALLS, int(round(BLOCK_S * 1000 / max(median_ms, 1e-6)))))


class WorkerGone(Exception):
    """The worker died, said it failed, or missed the deadline."""


class LockstepWorker:
    """One live lockstep worker process: JSON commands in on its stdin, JSON events out on
    its stdout, stderr kept in a file for the failure message; dies with this process.

    Its life is bounded by :attr:`deadline` (``timeout_s`` from its start; a caller that
    keeps it for several jobs moves it). The commands (:meth:`wait_ready`, :meth:`warm`,
    :meth:`block`, :meth:`finish`) raise :class:`WorkerGone`; every timed sample is kept in
    :attr:`samples_ms`.
    """

    def __init__(self, job: Job, tmp: Path, label: str):
        from vitbench.measure.worker import PARENT_PID_ENV
        from vitbench.run.forkserver import resolved_start, start_worker
        from vitbench.run.workers import worker_env

        self.job, self.label = job, label
        self.stage = ""  # the last stage the worker named: "import" while it imports the model
        job_path = tmp / f"job-{label}.json"
        write_atomic(job_path, job.model_dump_json())
        self.stderr = open(tmp / f"err-{label}.txt", "w+", encoding="utf-8", errors="replace")
        # a Popen-like handle; .start says fork | fresh, .note why a fork fell back
        self.proc = start_worker(
            "vitbench.measure.lockstep_worker", [str(job_path)],
            {**worker_env(job), PARENT_PID_ENV: str(os.getpid())}, stderr=self.stderr,
            start=resolved_start(job.worker_start, job.device))
        self.buffer = b""
        self.deadline = time.monotonic() + job.timeout_s
        self.ready: dict = {}
        self.calls = 1  # per timed block
        self.samples_ms: list[float] = []

    def wait_ready(self) -> dict:
        """The worker's ``ready`` event: model built, first call made (params, threads, ...)."""
        self.ready = self.receive(self.deadline)
        return self.ready

    def warm(self, calls: Optional[int] = None, seconds: Optional[float] = None
             ) -> tuple[float, int]:
        """Untimed calls, at least ``calls`` and ``seconds`` (default: the job's warm-up, at
        least :data:`MIN_WARMUP_CALLS` and :data:`MIN_WARMUP_S`); their median ms and count."""
        if calls is None:
            calls = max(self.job.warmup, MIN_WARMUP_CALLS)
        if seconds is None:
            seconds = max(self.job.warmup_s, MIN_WARMUP_S)
        self.send({"cmd": "warm", "calls": calls, "seconds": seconds})
        reply = self.receive(self.deadline)
        return reply["median_ms"], reply["calls"]

    def block(self) -> list[float]:
        """One timed block of :attr:`calls` calls: a sample (ms) per call, also kept."""
        self.send({"cmd": "time", "calls": self.calls})
        samples = self.receive(self.deadline)["samples_ms"]
        self.samples_ms.extend(samples)
        return samples

    def finish(self) -> dict:
        """End the timing: the worker's peak memory and page faults per call."""
        self.send({"cmd": "finish"})
        return self.receive(self.deadline)

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
        if message.get("event") == "ready":  # how it started: fork | fresh (side_row keeps it)
            message["worker_start"] = self.proc.start
            if self.proc.note:
                message["worker_start_note"] = self.proc.note
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


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def side_row(job: Job, ready: dict, finish: dict, samples: list[float], *,
             warmup_calls: Optional[int], lockstep: dict) -> ModelResult:
    """The row one lockstep worker's blocks make: its samples pooled in order, first call,
    params, peak memory and faults from the worker; ``lockstep`` describes the blocks."""
    from vitbench.stats import DRIFT_RATIO, summarize, window_spread

    row = ModelResult.for_job(job)
    row.status = "ok"
    row.counts = StaticCost(params=ready["params"])
    summary = summarize(samples)
    spread = window_spread(samples)
    row.latency = Latency(
        samples_ms=[round(s, 6) for s in samples],
        summary=LatencySummary.of(summary,
                                  window_spread=None if spread is None else round(spread, 4)),
        first_call_ms=ready["first_call_ms"], warmup_calls=warmup_calls, stopped_by="lockstep",
        timer="cuda events" if job.device == "cuda" else "host perf_counter",
        calls_per_sample=1, throughput_img_s=job.batch_size / (summary.median / 1000),
        minor_faults_per_call=finish.get("minor_faults_per_call"))
    memory = finish.get("memory")
    row.memory = None if memory is None else PeakMemory.model_validate(memory)
    row.environment = {"torch_num_threads": ready["torch_num_threads"], "lockstep": lockstep,
                       "worker_start": ready.get("worker_start", "fresh")}
    if ready.get("deployment"):  # a runtime's export and output check, as a measure row's
        from vitbench.measure.runtimes import apply_deployment

        apply_deployment(row, Deployment.model_validate(ready["deployment"]))
    if ready.get("worker_start_note"):
        row.warnings.append(f"worker start: {ready['worker_start_note']}")
    if spread is not None and spread > DRIFT_RATIO:
        row.warnings.append(f"drift: the medians of the four quarters of the timed blocks "
                            f"differ by {spread:.2f}x (the lockstep ratio is robust to it)")
    return row
