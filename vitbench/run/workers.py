"""Process isolation: every measurement in a fresh worker process, with a timeout.

A model that fails to build, crashes its process, runs out of memory or outlives its
``timeout_s`` becomes a failed row. The parent blocks on the worker (no busy-wait), so it
does not steal a core from the measurement.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Callable

from vitbench.config.spec import Job
from vitbench.records import ModelResult


#: glibc malloc settings for workers (a user's own MALLOC_* variables win). By default glibc
#: hands freed activation memory back to the OS and page-faults it in again on the next
#: call, and when it does depends on what the process did before: measured on pvt_v2_b0,
#: ~8,000 minor faults per forward and 1.4x the latency in a fresh process, none after a
#: FLOP count had run. Fixed thresholds make the steady state the same whatever ran first,
#: and free of that churn (as with jemalloc/tcmalloc); faults per call are recorded.
MALLOC_ENV: dict[str, str] = {
    "MALLOC_TRIM_THRESHOLD_": str(2**32),  # never trim the heap top between calls
    "MALLOC_MMAP_THRESHOLD_": str(32 * 2**20),  # glibc's maximum: blocks < 32 MiB reuse the heap
}


def worker_env(job: Job) -> dict[str, str]:
    """The worker's environment: threads fixed before torch loads, the parent's import path."""
    env = dict(os.environ)
    threads = str(job.threads)
    env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads,
               PYTHONUNBUFFERED="1", TIMM_FUSED_ATTN=env.get("TIMM_FUSED_ATTN", "1"))
    env.update({k: v for k, v in MALLOC_ENV.items() if k not in os.environ})
    # `python:pkg.mod:fn` models resolve in the worker as they did here: the parent's working
    # directory and import path go first on the worker's PYTHONPATH.
    prefixes = tuple({sys.prefix, sys.base_prefix, sys.exec_prefix})
    paths = [os.getcwd(), *(p for p in sys.path
                            if p and os.path.isdir(p) and not p.startswith(prefixes))]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def run_worker(job: Job, on_stage: Callable[[str], None] = lambda s: None) -> ModelResult:
    """Measure ``job`` in a fresh Python process, with a timeout. Never raises for the model."""
    env = worker_env(job)
    with tempfile.TemporaryDirectory(prefix="vitbench-") as tmp:
        job_path, row_path, err_path = (Path(tmp) / n for n in ("job.json", "row.json", "err.txt"))
        job_path.write_text(job.model_dump_json(), encoding="utf-8")
        with open(err_path, "w+", encoding="utf-8", errors="replace") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "vitbench.measure.worker", str(job_path), str(row_path)],
                stdout=subprocess.PIPE, stderr=stderr, env=env, text=True,
                start_new_session=True)
            reader = threading.Thread(target=relay_stages, args=(proc, on_stage), daemon=True)
            reader.start()
            try:
                returncode = proc.wait(timeout=job.timeout_s)
            except subprocess.TimeoutExpired:
                kill(proc)
                return failed_row(job, "timeout",
                                   f"timed out after {job.timeout_s:g} s (timeout_s); worker killed")
            finally:
                if proc.poll() is None:
                    kill(proc)
                reader.join(timeout=5)
            if row_path.is_file():
                return ModelResult.model_validate_json(row_path.read_text(encoding="utf-8"))
            stderr.seek(0)
            tail = [line for line in stderr.read().splitlines()
                    if line.strip() and not is_warning_noise(line)][-3:]
        reason = describe_exit(returncode)
        detail = f": {' | '.join(tail)}" if tail else ""
        return failed_row(job, "failed", f"worker {reason}{detail}"[:800])


def more_processes(job: Job, first: ModelResult, on_stage: Callable[[str], None]) -> ModelResult:
    """Time an ok row in ``job.processes − 1`` more fresh workers and pool their samples."""
    from vitbench.measure.job import pool_processes

    timed = first.latency is not None and bool(first.latency.samples_ms)
    if job.processes <= 1 or first.status != "ok" or not timed:
        return first
    timing_only = job.model_copy(update={"count": False, "processes": 1})
    others = []
    for index in range(2, job.processes + 1):
        on_stage(f"time (process {index}/{job.processes})")
        others.append(run_worker(timing_only))
    return pool_processes(first, others)


def is_warning_noise(line: str) -> bool:
    """Library warnings on stderr say nothing about why a worker died."""
    text = line.strip()
    return "Warning:" in text or text.startswith("warnings.warn(")


def relay_stages(proc: subprocess.Popen, on_stage: Callable[[str], None]) -> None:
    for line in proc.stdout:  # blocks on the pipe; ends when the worker exits
        if line.startswith("stage "):
            on_stage(line.split(" ", 1)[1].strip())


def kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        name = signal.Signals(-returncode).name
        hint = " (killed: most likely out of memory)" if returncode == -signal.SIGKILL else ""
        return f"died with {name}{hint}"
    return f"exited with status {returncode}"


def failed_row(job: Job, status: str, error: str) -> ModelResult:
    return ModelResult.for_job(job, status=status, error=error)
