"""Process isolation: every measurement in a fresh worker process, with a timeout.

A model that fails to build, crashes its process, runs out of memory or outlives its
``timeout_s`` becomes a failed row. The parent blocks on the worker (no busy-wait), so it
does not steal a core from the measurement.

A worker never outlives the run: it dies with its parent (see :mod:`vitbench.measure.worker`:
parent-death signal, a stdin pipe, its own deadline), an interrupt in the parent (Ctrl-C,
or SIGTERM/SIGHUP turned into one by the CLI) kills its process group on the way out, and
its ``vitbench-*`` temp folder is removed on every path; the folder of a parent killed by
SIGKILL is removed by the next run (:func:`sweep_temp_dirs`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

from vitbench.build.pythonpath import PYTHON_PATH_ENV, isolated_env, worker_python_path
from vitbench.config.spec import Job
from vitbench.files import write_atomic
from vitbench.measure.worker import DEADLINE_GRACE_S, PARENT_PID_ENV
from vitbench.records import ModelResult
from vitbench.run.forkserver import Worker, resolved_start, start_worker

try:
    import fcntl
except ImportError:  # Windows: no flock; folders of killed runs are not swept
    fcntl = None  # type: ignore[assignment]

#: every worker's temp folder is ``<tempdir>/vitbench-XXXXXXXX``
TEMP_PREFIX = "vitbench-"
#: locked by the run that owns the folder for as long as it lives
OWNER_LOCK = "owner.lock"


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
    """The worker's environment: threads fixed before torch loads; no ``PYTHONPATH`` (Python
    would search it before the installed packages): its folders follow the job's
    ``python_path`` on the python path, searched after them (:mod:`vitbench.build.pythonpath`)."""
    env = isolated_env(os.environ)
    threads = str(job.threads)
    env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads,
               PYTHONUNBUFFERED="1", TIMM_FUSED_ATTN=env.get("TIMM_FUSED_ATTN", "1"))
    env.update({k: v for k, v in MALLOC_ENV.items() if k not in os.environ})
    env[PYTHON_PATH_ENV] = worker_python_path(job.python_path)
    return env


def run_worker(job: Job, on_stage: Callable[[str], None] = lambda s: None) -> ModelResult:
    """Measure ``job`` in a fresh Python process, with a timeout. Never raises for the model.

    The worker's stdin is a pipe this process holds open until the worker ends: its closing
    is the worker's sign that the parent is gone. Call from the thread that outlives the
    worker (Linux sends the parent-death signal when the *thread* that started it ends).
    """
    sweep_temp_dirs()
    env = worker_env(job)
    env[PARENT_PID_ENV] = str(os.getpid())
    with owned_temp_dir() as tmp:
        job_path, row_path, err_path = (Path(tmp) / n for n in ("job.json", "row.json", "err.txt"))
        write_atomic(job_path, job.model_dump_json())
        with open(err_path, "w+", encoding="utf-8", errors="replace") as stderr:
            proc = start_worker("vitbench.measure.worker", [str(job_path), str(row_path)], env,
                                stderr=stderr, text=True,
                                start=resolved_start(job.worker_start, job.device))
            stages: list[str] = []  # the last one says what a worker that died was doing
            reader = threading.Thread(target=relay_stages, daemon=True, args=(
                proc, lambda stage: (stages.append(stage), on_stage(stage))))
            reader.start()
            try:
                returncode = proc.wait(timeout=job.timeout_s)
            except subprocess.TimeoutExpired:
                kill(proc)
                return started_as(proc, failed_row(
                    job, "timeout", f"timed out after {job.timeout_s:g} s (timeout_s); worker killed"))
            finally:
                if proc.poll() is None:
                    kill(proc)
                proc.stdin.close()
                reader.join(timeout=5)
            if row_path.is_file():
                try:
                    return started_as(proc, ModelResult.model_validate_json(
                        row_path.read_text(encoding="utf-8")))
                except ValueError as exc:  # e.g. the package changed under a long run
                    why = (f"the worker's row could not be read ({str(exc).splitlines()[0]}); "
                           "was vitbench updated while it ran?")
                    return failed_row(job, "failed", why[:800])
            stderr.seek(0)
            tail = [line for line in stderr.read().splitlines()
                    if line.strip() and not is_warning_noise(line)][-3:]
        reason = describe_exit(returncode)
        if stages[-1:] == ["import"]:  # see vitbench.measure.worker
            reason += f" while importing {job.model.split(':')[1]}"
        detail = f": {' | '.join(tail)}" if tail else ""
        return started_as(proc, failed_row(job, "failed", f"worker {reason}{detail}"[:800]))


def started_as(proc: Worker, row: ModelResult) -> ModelResult:
    """Record how the row's worker started (fork | fresh), and why a fork fell back."""
    row.environment["worker_start"] = proc.start
    if proc.note:
        row.warnings.append(f"worker start: {proc.note}")
    return row


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


def relay_stages(proc: Worker, on_stage: Callable[[str], None]) -> None:
    for line in proc.stdout:  # blocks on the pipe; ends when the worker exits
        if line.startswith("stage "):
            on_stage(line.split(" ", 1)[1].strip())


def kill(proc: Worker) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        name = signal.Signals(-returncode).name
        hint = {-signal.SIGKILL: " (killed: most likely out of memory)",
                -getattr(signal, "SIGALRM", 14): f" (its own deadline, timeout_s + "
                                                 f"{DEADLINE_GRACE_S:g} s, passed)"}
        return f"died with {name}{hint.get(returncode, '')}"
    return f"exited with status {returncode}"


@contextmanager
def owned_temp_dir() -> Iterator[Path]:
    """A fresh ``vitbench-*`` folder under the system temp folder, removed on the way out
    (an interrupt included). Its ``owner.lock`` stays locked while this process lives, so a
    later run can tell the folder of a killed run from that of a live one."""
    path = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
    lock = hold_owner_lock(path / OWNER_LOCK)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        if lock is not None:
            os.close(lock)


def hold_owner_lock(path: Path) -> Optional[int]:
    """Lock ``path`` for this process's life, then write the pid (a written, unlocked file
    is a dead owner's; an empty one may be a live owner's between creating and locking)."""
    if fcntl is None:
        return None
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited by workers
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, str(os.getpid()).encode())
    return fd


def sweep_temp_dirs(root: Optional[Path] = None) -> list[Path]:
    """Remove this user's ``vitbench-*`` folders whose owner died without cleaning up (a
    SIGKILL leaves no chance to): written ``owner.lock``, no longer locked. Returns them."""
    if fcntl is None:
        return []
    removed = []
    try:
        candidates = sorted(Path(root or tempfile.gettempdir()).glob(TEMP_PREFIX + "*"))
    except OSError:
        return []
    for folder in candidates:
        try:
            if folder.is_symlink() or folder.stat().st_uid != os.getuid():
                continue
            fd = os.open(folder / OWNER_LOCK, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.read(fd, 32):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        except OSError:
            pass  # locked: its owner is alive
        finally:
            os.close(fd)
    return removed


def failed_row(job: Job, status: str, error: str) -> ModelResult:
    return ModelResult.for_job(job, status=status, error=error)
