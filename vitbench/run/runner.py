"""Run a suite: each row measured in worker processes (:mod:`vitbench.run.workers`),
``results.json`` rewritten atomically after every row.

A model that fails to build, crashes its process, runs out of memory or outlives its
``timeout_s`` becomes a failed row; the rest of the suite runs. Ctrl-C (or SIGTERM/SIGHUP,
which the CLI turns into an :class:`~vitbench.errors.Interrupted`) or a crash keeps
everything measured so far; rows not yet measured say why in every saved state. Views
derived from ``results.json`` (CSV, Markdown, HTML, plots) are the caller's: a *sink*
given to :func:`run_suite` is called after every save, so the runner never depends on the
report layer above it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable, Optional

from vitbench.config.plan import PlannedRow, plan
from vitbench.config.spec import Suite
from vitbench.config.yamlfile import read_suite_text
from vitbench.conventions import FLOP_CONVENTIONS, UNITS
from vitbench.errors import DiskError, RunStoppedError, VitbenchError, signal_name_of
from vitbench.files import RESULTS_FILE, new_folder, utc_now, utc_stamp
from vitbench.records import SCHEMA, ModelResult, RunResult
from vitbench.run.saving import RunSaver
from vitbench.run.workers import more_processes, run_worker


#: ``on_event(kind, index, row, detail)``; kinds: "start", "stage", "done".
EventCallback = Callable[[str, int, ModelResult, str], None]
#: the reason a ``pending`` row carries in every saved state: read from a ``results.json``
#: whose run was killed (SIGKILL, power loss), it says why the row has no numbers
NOT_YET = "not measured yet: the run was still going when this was saved, or was killed"

#: ``sink(run, final)``: called after every save of ``results.json``; ``final`` once at the
#: end of a complete run (where plots and HTML belong); :func:`vitbench.report.report_sink`
#: renders the usual views.
Sink = Callable[[RunResult, bool], None]


def new_run_id() -> str:
    """A run's id: its UTC stamp (sorts by time) and 6 random hex digits (unique)."""
    import secrets

    return f"{utc_stamp()}-{secrets.token_hex(3)}"


def default_out_dir(suite: Suite, root: str | Path = "results") -> Path:
    """A new folder ``root/SUITE/UTC-STAMP``, created here; a run started in the same second
    gets ``UTC-STAMP-2`` (:func:`vitbench.files.new_folder`): two runs never share one."""
    return new_folder(Path(root) / suite.name / utc_stamp())


def check_models(planned: list[PlannedRow], suite_path: Optional[str] = None) -> None:
    """Fail fast (before any measuring) on a model name that does not exist, or a
    ``python_path:`` folder that does not; the error names the suite file and the row.

    Executes no ``python:`` module: they are located on the python path, imported only in
    workers (:func:`vitbench.build.zoo.check_model`).
    """
    import os

    from vitbench.build.zoo import check_model
    from vitbench.errors import SuiteError, UnknownModelError

    where = f"{suite_path}: " if suite_path else ""
    for item in planned:
        if item.job is None:
            continue
        for folder in item.job.python_path:
            if not os.path.isdir(folder):
                raise SuiteError(suite_path or "suite", "python_path",
                                 f"{folder} is not a folder")
        try:
            check_model(item.job.model, item.job.python_path)
        except UnknownModelError as exc:
            raise UnknownModelError(f"{where}{item.entry.name}: {exc}") from None


def check_devices(planned: list[PlannedRow]) -> None:
    """Fail fast (before any model is built) when rows ask for CUDA and torch sees none."""
    wanting = [p.row.name for p in planned if p.job is not None and p.job.device == "cuda"]
    if not wanting:
        return
    import torch

    if torch.cuda.is_available():
        return
    why = ("this torch build has no CUDA" if torch.version.cuda is None
           else f"torch {torch.__version__} sees no CUDA device (no GPU or driver here)")
    rows = ", ".join(wanting[:3]) + (f" and {len(wanting) - 3} more" if len(wanting) > 3 else "")
    raise VitbenchError(f"device cuda asked for ({rows}) but {why}; use --device cpu or "
                        f"--device auto")


def suite_fingerprint(suite: Suite) -> dict[str, Any]:
    # The text as the loader decoded it (a UTF-16 suite too), newlines as read_text gives them.
    text = suite.model_dump_json()  # a suite from --model or code: no file to hash
    if suite.path:
        try:
            text = read_suite_text(Path(suite.path)).replace("\r\n", "\n").replace("\r", "\n")
        except VitbenchError:
            pass
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


def run_suite(suite: Suite, *, out_dir: str | Path, overrides: Optional[dict[str, Any]] = None,
              only=None, static_only: bool = False, in_process: bool = False,
              on_event: Optional[EventCallback] = None, command: Optional[list[str]] = None,
              sink: Optional[Sink] = None) -> RunResult:
    """Measure every selected row of ``suite``; write ``results.json`` to ``out_dir`` as it
    goes, and hand every saved state to ``sink`` (e.g. to render CSV/Markdown after each row
    and plots at the end). A sink that fails never costs the measured run: at the end its
    failure becomes a ``reports:`` warning in ``results.json``. A ``results.json`` the disk
    refuses stops the run with :class:`~vitbench.errors.RunStoppedError`, no measured row
    lost (:mod:`vitbench.run.saving`)."""
    from vitbench.env import environment, load_average, oversubscription_warning

    planned = plan(suite, overrides, only, static_only=static_only)
    check_models(planned, suite.path)
    check_devices(planned)
    notify = on_event or (lambda kind, index, row, detail: None)
    out_dir = Path(out_dir)
    run = RunResult(
        schema=SCHEMA, suite=suite_fingerprint(suite), created_utc=utc_now(), run_id=new_run_id(),
        command=command or [], overrides=dict(overrides or {}),
        conventions={"flops": {c: FLOP_CONVENTIONS[c] for c in sorted(
            {p.row.flops_convention for p in planned})}, "units": UNITS},
        environment=environment(with_gpu=any(p.job and p.job.device == "cuda" for p in planned)),
        results=[p.row for p in planned],
    )
    run.environment["load_average_1m_before"] = run.environment.pop("load_average_1m", None)
    for row in run.results:
        if row.status == "pending" and not row.error:
            row.error = NOT_YET
    cpu_jobs = [p.job for p in planned if p.job is not None and p.job.device == "cpu"]
    if cpu_jobs and not static_only:
        warning = oversubscription_warning(max(j.threads for j in cpu_jobs))
        run.environment["warnings"] = [warning] if warning else []

    saver = RunSaver(run, out_dir / RESULTS_FILE, sum(p.job is not None for p in planned))

    def save(final: bool = False) -> None:
        saver.save()  # retried; a disk that refuses it stops the run (RunStoppedError)
        if sink is None:
            return
        if not final:
            try:
                sink(run, False)
            except Exception:  # noqa: BLE001 - derived views; the final sink redoes them all
                pass
            return
        notify("stage", len(planned) - 1, run.results[-1], "writing the reports")
        try:
            sink(run, True)
        except Exception as exc:  # noqa: BLE001 - a plot must never cost the measured run
            run.environment.setdefault("warnings", []).append(f"reports: {exc}")
            try:  # the complete results.json is on disk already; this only adds the warning
                run.save(out_dir / RESULTS_FILE)
            except DiskError:
                pass

    save()
    try:
        for index, item in enumerate(planned):
            if item.job is None:
                notify("done", index, run.results[index], "unavailable")
                continue
            notify("start", index, item.row, "")
            stage_cb = (lambda stage, i=index, r=item.row: notify("stage", i, r, stage))
            if in_process:
                from vitbench.build.pythonpath import use_python_path
                from vitbench.measure.job import measure_job

                use_python_path(item.job.python_path)  # where a worker finds python: modules
                measured = measure_job(item.job, stage_cb)
            else:
                measured = more_processes(item.job, run_worker(item.job, stage_cb), stage_cb)
            run.results[index] = merge_planned(item.row, measured)
            save()
            notify("done", index, run.results[index], run.results[index].status)
    except RunStoppedError:
        raise
    except DiskError as exc:  # another file the run needs (a worker's job file) cannot be written
        raise saver.stop(exc) from None
    except KeyboardInterrupt as exc:
        reason = f"run interrupted by {signal_name_of(exc)} before this row finished"
        for row in run.results:
            if row.status == "pending":
                row.status, row.error = "interrupted", reason
        run.finished_utc = utc_now()
        save()
        raise
    run.environment["load_average_1m_after"] = load_average()
    run.finished_utc = utc_now()
    run.complete = True
    save(final=True)
    return run
