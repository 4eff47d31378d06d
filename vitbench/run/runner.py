"""Run a suite: each model in its own worker process, results on disk after every row.

A model that fails to build, crashes its process, runs out of memory or outlives its
``timeout_s`` becomes a failed row; the rest of the suite runs. ``results.json`` (and the
CSV/Markdown derived from it) is rewritten atomically after each row, so Ctrl-C or a crash
keeps everything measured so far. The parent blocks on the worker (no busy-wait), so it
does not steal a core from the measurement.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from vitbench.files import utc_now, utc_stamp
from vitbench.conventions import FLOP_CONVENTIONS, UNITS
from vitbench.records import SCHEMA, ModelResult, RunResult
from vitbench.config.spec import Job, ModelEntry, Suite
from vitbench.config.suite import resolve_jobs, select_entries

#: ``on_event(kind, index, row, detail)``; kinds: "start", "stage", "done".
EventCallback = Callable[[str, int, ModelResult, str], None]


@dataclass
class PlannedRow:
    entry: ModelEntry
    job: Optional[Job]  # None: the row is unavailable and will not run
    row: ModelResult


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


def default_out_dir(suite: Suite, root: str | Path = "results") -> Path:
    stamp = utc_stamp()
    return Path(root) / suite.name / stamp


def plan(suite: Suite, overrides: Optional[dict[str, Any]] = None, only=None, *,
         static_only: bool = False) -> list[PlannedRow]:
    """Resolve every selected entry into jobs and empty (pending/unavailable) rows.

    An entry with a batch-size sweep (``batch_size: [1, 8, 64]``) gives one row per batch
    size, in the listed order; rows are then keyed by ``(name, batch_size)``. With
    ``--static-only`` a sweep collapses to its first batch size (counts are per image).
    ``batch_size: max`` gives one row whose ``batch_size`` is 0 until the search finds it.
    """
    planned = []
    for entry in select_entries(suite, only):
        jobs = resolve_jobs(suite, entry, overrides, static_only=static_only)
        if static_only:
            jobs = jobs[:1]
        for job in jobs:
            ref = entry.reference
            row = ModelResult.for_job(
                job, model=entry.model or "", note=entry.note, source=entry.source,
                reference=ref.values(), printed_decimals=dict(ref.printed_decimals))
            if job.max_batch:
                row.batch_size_search = {"requested": "max"}
            if entry.unavailable:
                row.status, row.error = "unavailable", entry.unavailable
                planned.append(PlannedRow(entry, None, row))
                break  # one row says it; a sweep of unavailable rows says nothing more
            planned.append(PlannedRow(entry, job, row))
    return planned


def check_models(planned: list[PlannedRow]) -> None:
    """Fail fast (before any measuring) on a model name that does not exist."""
    from vitbench.build.zoo import check_model

    for item in planned:
        if item.job is not None:
            check_model(item.job.model)


def suite_fingerprint(suite: Suite) -> dict[str, Any]:
    text = Path(suite.path).read_text(encoding="utf-8") if suite.path and Path(
        suite.path).is_file() else suite.model_dump_json()
    return {
        "name": suite.name, "title": suite.title, "source": suite.source, "path": suite.path,
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
        "as_run": suite.model_dump(mode="json"),
    }


def merge_planned(planned_row: ModelResult, measured: ModelResult) -> ModelResult:
    """Keep the suite's view of the row (reference, note, source) on the worker's result."""
    keep = planned_row.model_dump(include={"note", "source", "reference", "printed_decimals"})
    merged = measured.model_copy(update=keep)
    merged.compare_to_reference()
    return merged


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
            reader = threading.Thread(target=_relay_stages, args=(proc, on_stage), daemon=True)
            reader.start()
            try:
                returncode = proc.wait(timeout=job.timeout_s)
            except subprocess.TimeoutExpired:
                _kill(proc)
                return _failed_row(job, "timeout",
                                   f"timed out after {job.timeout_s:g} s (timeout_s); worker killed")
            finally:
                if proc.poll() is None:
                    _kill(proc)
                reader.join(timeout=5)
            if row_path.is_file():
                return ModelResult.model_validate_json(row_path.read_text(encoding="utf-8"))
            stderr.seek(0)
            tail = [line for line in stderr.read().splitlines()
                    if line.strip() and not is_warning_noise(line)][-3:]
        reason = describe_exit(returncode)
        detail = f": {' | '.join(tail)}" if tail else ""
        return _failed_row(job, "failed", f"worker {reason}{detail}"[:800])


def _more_processes(job: Job, first: ModelResult, on_stage: Callable[[str], None]) -> ModelResult:
    """Time an ok row in ``job.processes − 1`` more fresh workers and pool their samples."""
    from vitbench.measure.job import pool_processes

    if job.processes <= 1 or first.status != "ok" or not first.latency_samples_ms:
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


def _relay_stages(proc: subprocess.Popen, on_stage: Callable[[str], None]) -> None:
    for line in proc.stdout:  # blocks on the pipe; ends when the worker exits
        if line.startswith("stage "):
            on_stage(line.split(" ", 1)[1].strip())


def _kill(proc: subprocess.Popen) -> None:
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


def _failed_row(job: Job, status: str, error: str) -> ModelResult:
    return ModelResult.for_job(job, status=status, error=error)


def run_suite(suite: Suite, *, out_dir: str | Path, overrides: Optional[dict[str, Any]] = None,
              only=None, static_only: bool = False, in_process: bool = False,
              on_event: Optional[EventCallback] = None,
              command: Optional[list[str]] = None, write_derived: bool = True,
              final_formats: tuple[str, ...] = ("csv", "md", "html", "png", "svg")) -> RunResult:
    """Measure every selected row of ``suite``; write results to ``out_dir`` as it goes."""
    from vitbench.env import environment
    from vitbench.report import write_reports

    planned = plan(suite, overrides, only, static_only=static_only)
    check_models(planned)
    notify = on_event or (lambda kind, index, row, detail: None)
    out_dir = Path(out_dir)
    run = RunResult(
        schema=SCHEMA, suite=suite_fingerprint(suite), created_utc=utc_now(),
        command=command or [], overrides=dict(overrides or {}),
        conventions={"flops": {c: FLOP_CONVENTIONS[c] for c in sorted(
            {p.row.flops_convention for p in planned})}, "units": UNITS},
        environment=environment(with_gpu=any(p.job and p.job.device == "cuda" for p in planned)),
        results=[p.row for p in planned],
    )
    run.environment["load_average_1m_before"] = run.environment.pop("load_average_1m", None)
    cpu_jobs = [p.job for p in planned if p.job is not None and p.job.device == "cpu"]
    if cpu_jobs and not static_only:
        from vitbench.env import oversubscription_warning

        warning = oversubscription_warning(max(j.threads for j in cpu_jobs))
        run.environment["warnings"] = [warning] if warning else []

    def save() -> None:
        run.save(out_dir / "results.json")
        if write_derived:
            write_reports(run, out_dir)

    save()
    try:
        for index, item in enumerate(planned):
            if item.job is None:
                notify("done", index, run.results[index], "unavailable")
                continue
            notify("start", index, item.row, "")
            stage_cb = (lambda stage, i=index, r=item.row: notify("stage", i, r, stage))
            if in_process:
                from vitbench.measure.job import measure_job

                measured = measure_job(item.job, stage_cb)
            else:
                measured = run_worker(item.job, stage_cb)
                measured = _more_processes(item.job, measured, stage_cb)
            run.results[index] = merge_planned(item.row, measured)
            save()
            notify("done", index, run.results[index], run.results[index].status)
    except KeyboardInterrupt:
        for row in run.results:
            if row.status == "pending":
                row.status, row.error = "interrupted", "run interrupted before this row finished"
        run.finished_utc = utc_now()
        save()
        raise
    from vitbench.env import load_average

    run.environment["load_average_1m_after"] = load_average()
    run.finished_utc = utc_now()
    run.complete = True
    save()
    if write_derived and set(final_formats) - {"csv", "md"}:
        notify("stage", len(planned) - 1, run.results[-1], "writing plots and report.html")
        try:
            write_reports(run, out_dir, formats=final_formats)
        except Exception as exc:  # noqa: BLE001 - a plot must never cost the measured run
            run.environment.setdefault("warnings", []).append(f"reports: {exc}")
            run.save(out_dir / "results.json")
    return run
