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
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from vitbench.config.plan import PlannedRow, plan
from vitbench.config.spec import Suite
from vitbench.config.yamlfile import read_suite_text
from vitbench.conventions import FLOP_CONVENTIONS, UNITS
from vitbench.errors import DiskError, RunStoppedError, VitbenchError, signal_name_of
from vitbench.files import RESULTS_FILE, new_folder, utc_now, utc_stamp
from vitbench.records import SCHEMA, ModelResult, RunResult
from vitbench.run.resume import is_final, resumed_run, run_options
from vitbench.run.saving import RunSaver
from vitbench.run.passes import LaterPasses, mark_first_process, note_unfinished
from vitbench.run.reference import reference_job, reference_model_of
from vitbench.run.workers import run_worker


#: ``on_event(kind, index, row, detail)``; kinds: "start", "stage", "done" (pass 1), and
#: "process" (a later pass timed one more process of the row; detail ``ok (2/3)``).
EventCallback = Callable[[str, int, ModelResult, str], None]
#: the reason a ``pending`` row carries in every saved state: read from a ``results.json``
#: whose run was killed (SIGKILL, power loss), it says why the row has no numbers
NOT_YET = "not measured yet: the run was still going when this was saved, or was killed"

#: ``sink(run, final)``: called after every save of ``results.json``; ``final`` once at the
#: end of a complete run (where plots and HTML belong); :func:`vitbench.report.report_sink`
#: renders the usual views.
Sink = Callable[[RunResult, bool], None]
#: ``executor(rows, notify)``: measures ``rows`` (``(index, PlannedRow)`` with a job) somewhere
#: else, e.g. on a Ray cluster (:mod:`vitbench.run.ray_executor`), and yields ``(index,
#: measured row)`` as each finishes; None: one row after another in local workers
Executor = Callable[[list, EventCallback], Iterable[tuple[int, ModelResult]]]


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


def reference_for(suite: Suite, planned: list[PlannedRow], overrides: Optional[dict[str, Any]],
                  name: Optional[str] = None):
    """The reference job of a run whose rows time more than one process (None: no row does,
    or the suite or ``name`` says ``none``); its model is checked like the rows'."""
    from vitbench.build.zoo import check_model
    from vitbench.errors import UnknownModelError

    model = reference_model_of(suite, name)
    if model is None or not any(p.job is not None and p.job.processes > 1 for p in planned):
        return None
    try:
        check_model(model, next(p.job.python_path for p in planned if p.job is not None))
    except UnknownModelError as exc:
        where = f"{suite.path}: " if suite.path else ""
        raise UnknownModelError(f"{where}reference_model: {exc}") from None
    return reference_job(suite, model, overrides)


def time_breakdown(run: RunResult, seconds: dict[str, float]) -> dict[str, float]:
    """Where the run's time went, seconds: each pass and the reports (wall), and summed over
    the rows' workers, their stages (start-up, build, warm-up, timing, counting)."""
    stages: dict[str, float] = {}
    for row in run.results:
        for stage, value in row.stage_seconds.items():
            stages[stage] = stages.get(stage, 0.0) + value
    if "time" in stages and "warm-up" in stages:  # the time stage includes its warm-up
        stages["time"] -= stages["warm-up"]
    names = {"start": "start-up (process start to build)", "time": "timed loop"}
    return {**seconds, **{f"workers: {names.get(k, k)}": round(v, 3) for k, v in stages.items()}}


def run_suite(suite: Suite, *, out_dir: str | Path, overrides: Optional[dict[str, Any]] = None,
              only=None, static_only: bool = False, in_process: bool = False,
              on_event: Optional[EventCallback] = None, command: Optional[list[str]] = None,
              executor: Optional[Executor] = None,
              sink: Optional[Sink] = None, resume: Optional[RunResult] = None,
              should_stop: Optional[Callable[[], Optional[str]]] = None,
              reference_model: Optional[str] = None) -> RunResult:
    """Measure every selected row of ``suite``; write ``results.json`` to ``out_dir`` as it
    goes, and hand every saved state to ``sink`` (e.g. to render CSV/Markdown after each row
    and plots at the end). A sink that fails never costs the measured run: at the end its
    failure becomes a ``reports:`` warning in ``results.json``. A ``results.json`` the disk
    refuses stops the run with :class:`~vitbench.errors.RunStoppedError`, no measured row
    lost (:mod:`vitbench.run.saving`). ``resume``: a run read from ``out_dir`` whose final rows
    are kept (:mod:`vitbench.run.resume`; the caller checked its settings match).
    ``should_stop``: asked before each row starts; a reason (``--max-run-time`` passed) makes
    that row and every pending one after it ``interrupted`` with it, and the run ends there
    (reports written, ``complete`` false). ``reference_model`` overrides the suite's (``none``:
    no reference): rows with ``processes`` > 1 are timed again in later passes over the suite,
    against it in lockstep (:mod:`vitbench.run.passes`, :mod:`vitbench.run.reference`)."""
    from vitbench.env import environment, load_average, oversubscription_warning

    planned = plan(suite, overrides, only, static_only=static_only)
    check_models(planned, suite.path)
    check_devices(planned)
    reference = None if static_only or in_process else reference_for(suite, planned, overrides,
                                                                      reference_model)
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
    run.environment["run_options"] = run_options(static_only=static_only, in_process=in_process)
    if resume is not None:
        run = resumed_run(run, resume)
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
    seconds: dict[str, float] = {}
    started, stop = time.monotonic(), None
    try:
        elsewhere = set()  # rows the executor measured
        kept = frozenset(i for i, row in enumerate(run.results) if is_final(row))  # resumed
        if executor is not None:
            todo = [(i, p) for i, p in enumerate(planned) if p.job is not None
                    and run.results[i].status in ("pending", "interrupted")]
            for index, measured in executor(todo, notify):
                run.results[index] = merge_planned(planned[index].row, measured)
                elsewhere.add(index)
                save()
                notify("done", index, run.results[index], run.results[index].status)
                if should_stop is not None and should_stop():
                    break  # its tasks left are cancelled; the loop below marks their rows
        for index, item in enumerate(planned):
            if index in elsewhere:
                continue
            if item.job is None:
                notify("done", index, run.results[index], "unavailable")
                continue
            if index in kept:  # final in the run resumed: no pass measures it again
                notify("done", index, run.results[index], run.results[index].status)
                continue
            stop = should_stop() if should_stop is not None else None
            if stop:  # the run's time is up: rows not started say why; reports still written
                for row in run.results[index:]:
                    if row.status == "pending":
                        row.status, row.error = "interrupted", stop
                break
            notify("start", index, item.row, "")
            stage_cb = (lambda stage, i=index, r=item.row: notify("stage", i, r, stage))
            if in_process:
                from vitbench.build.pythonpath import use_python_path
                from vitbench.measure.job import measure_job

                use_python_path(item.job.python_path)  # where a worker finds python: modules
                measured = measure_job(item.job, stage_cb)
            else:
                measured = run_worker(item.job, stage_cb)  # its other processes: later passes
                mark_first_process(measured, item.job)
            run.results[index] = merge_planned(item.row, measured)
            save()
            notify("done", index, run.results[index], run.results[index].status)
        seconds["pass 1"] = round(time.monotonic() - started, 3)
        if not in_process and not stop:
            later = LaterPasses(planned, run, reference=reference, save=save, notify=notify,
                                merge=merge_planned, should_stop=should_stop or (lambda: None),
                                skip=frozenset(elsewhere) | kept)
            try:
                stop = later.run_all()
            finally:
                seconds.update(later.seconds)
            if stop:
                note_unfinished(run, stop)
    except RunStoppedError:
        raise
    except DiskError as exc:  # another file the run needs (a worker's job file) cannot be written
        raise saver.stop(exc) from None
    except KeyboardInterrupt as exc:
        reason = f"run interrupted by {signal_name_of(exc)} before this row finished"
        note_unfinished(run, f"the run was interrupted by {signal_name_of(exc)}")
        for row in run.results:
            if row.status == "pending":
                row.status, row.error = "interrupted", reason
        run.finished_utc = utc_now()
        save()
        raise
    run.environment["load_average_1m_after"] = load_average()
    run.finished_utc = utc_now()
    run.complete = not any(r.status == "interrupted" for r in run.results)
    started = time.monotonic()
    save(final=True)
    seconds["reports"] = round(time.monotonic() - started, 3)
    run.environment["time_breakdown_s"] = time_breakdown(run, seconds)
    try:  # the breakdown, measured once the reports were written
        saver.save()
    except RunStoppedError:
        pass  # the complete run is on disk already, without the breakdown
    return run
