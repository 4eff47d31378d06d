"""``vitbench run --executor ray``: the options' checks, and ``--each-node-type`` (the suite
once on every machine type of the cluster, merged into one table with a column per type).
The executor itself is :mod:`vitbench.run.ray_executor`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

from vitbench.cli.app import fail
from vitbench.errors import VitbenchError

EXECUTOR_HELP = ("where rows run: local (one after another here) or ray (Ray tasks on the "
                 "cluster at --address, each row still in fresh worker processes on its node; "
                 "needs pip install -e '.[ray]')")
ADDRESS_HELP = ("the Ray cluster for --executor ray: auto (one started here by `ray start "
                "--head`), HOST:PORT, or ray://HOST:PORT")
EACH_NODE_TYPE_HELP = ("with --executor ray: run the suite once on every machine type of the "
                       "cluster (same CPU model and GPU), one run folder per type under --out "
                       "and a merged table with a column per type")


def executor_for(executor: str, address: Optional[str], each_node_type: bool,
                 in_process: bool):
    """The runner's executor for the options (None: local), or exit 2 saying which option
    does not fit."""
    if executor == "local":
        if address is not None or each_node_type:
            raise fail(f"{'--address' if address is not None else '--each-node-type'} needs "
                       f"--executor ray")
        return None
    if in_process:
        raise fail("--in-process measures here, in vitbench's own process: leave it out with "
                   "--executor ray")
    from vitbench.run.ray_executor import connect, ray_executor

    try:
        connect(address or "auto")  # before the result folder exists or any row is planned
    except VitbenchError as exc:
        raise fail(str(exc), exc.exit_code) from None
    return ray_executor(address or "auto")


def slug(text: str) -> str:
    """A folder name for a machine type."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-")[:80] or "node"


def each_type_runner(address: Optional[str], final: tuple):
    """A stand-in for :func:`~vitbench.run.runner.run_suite` that runs the suite once per
    machine type (:func:`run_each_node_type`)."""
    def runner(suite, *, out_dir: Path, sink=None, executor=None, **run_args: Any):
        return run_each_node_type(suite, out_dir=Path(out_dir), address=address, final=final,
                                  **run_args)

    return runner


def run_each_node_type(suite, *, out_dir: Path, address: Optional[str], final: tuple,
                       **run_args: Any):
    """Run ``suite`` once per machine type into ``out_dir/TYPE/``, then write the merged
    table (``results.md``, ``results.csv``, ``report.html``: a column per type) to
    ``out_dir``. Each run records its type in ``environment["node_type"]``, which names its
    column in merged reports. Returns every type's rows in one run (names suffixed with the
    type) for the summary table and the exit code."""
    from vitbench.cli.console import err
    from vitbench.files import new_folder
    from vitbench.report import report_sink, write_reports
    from vitbench.report.merge import merge_runs
    from vitbench.run.ray_executor import node_types, ray_executor
    from vitbench.run.runner import run_suite

    types = node_types(address or "auto")
    runs, folders = [], []
    for label, node_ids in types.items():
        folder = new_folder(out_dir / slug(label))
        err.print(f"{suite.name} on {label} ({len(node_ids)} node"
                  f"{'s' if len(node_ids) > 1 else ''}) → {folder}", markup=False,
                  highlight=False)
        run = run_suite(suite, out_dir=folder, sink=report_sink(folder, final),
                        executor=ray_executor(address or "auto", node_ids=node_ids), **run_args)
        run.environment["node_type"] = label
        run.save(folder / "results.json")
        runs.append(run)
        folders.append(folder)
    try:
        write_reports(merge_runs(runs, folders), out_dir,
                      [f for f in final if f in ("md", "csv", "html")])
    except VitbenchError as exc:
        raise fail(str(exc), exc.exit_code) from None
    rows = [row.model_copy(update={"name": f"{row.name} [{run.environment['node_type']}]"})
            for run in runs for row in run.results]
    return runs[0].model_copy(update={"results": rows})
