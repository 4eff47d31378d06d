"""Rows fanned out over a Ray cluster (``vitbench run --executor ray``).

Each row becomes one Ray task, and the task measures it as the local runner does: every
process of the row (the counting worker, then ``processes − 1`` more timed ones) is a fresh
worker process started by :func:`vitbench.run.workers.run_worker` on the task's node. The
task is only a launcher; the model never runs inside Ray's own worker.

Resources keep timings honest: a timed CPU row asks for *all* the CPUs of one node and is
pinned to it, so nothing else runs there while it is timed; a CUDA row asks for one GPU;
a static-only CPU row asks for one CPU, so counting rows pack. Results stream back to the
driver (``ray.wait``), which hands each finished row to the runner as soon as it lands, and
the runner writes ``results.json`` atomically as for a local run. Every row records the
node it ran on in ``environment["node"]`` (host, IP, Ray node id, CPU model and count, GPU).

A node or worker lost mid-run: an unpinned task (static-only or CUDA) is re-run by Ray up
to ``max_retries`` times; a pinned timed task (its node is gone), or one out of retries,
becomes a failed row that says what was lost. Rows already finished are in the driver and
on disk: nothing finished is lost. There is no pass order and no reference worker here:
all processes of a row run inside its task, whatever order the cluster picks.
"""

from __future__ import annotations

import os
import platform
import socket
from collections import deque
from typing import Any, Callable, Iterable, Iterator, Optional

from vitbench.errors import VitbenchError
from vitbench.records import ModelResult

#: what to run when the ray package is missing
INSTALL_HINT = "pip install -e '.[ray]' (or pip install ray)"
#: where ``--address auto`` looks: a cluster started on this machine by ``ray start --head``
DEFAULT_ADDRESS = "auto"

#: ``execute(rows, notify)``: the runner's hook; ``rows`` are ``(index, PlannedRow)`` with a
#: job; yields ``(index, measured row)`` in the order the rows finish
Executor = Callable[[list, Callable[..., None]], Iterable[tuple[int, ModelResult]]]


class RayError(VitbenchError):
    """Ray missing, or the cluster cannot be reached: one line, what to do."""


def import_ray():
    try:
        import ray
    except ImportError:
        raise RayError(f"--executor ray needs the ray package, which is not installed: "
                       f"{INSTALL_HINT}") from None
    return ray


def connect(address: str = DEFAULT_ADDRESS):
    """Connect this process to the cluster at ``address`` (``auto``, ``HOST:PORT`` or
    ``ray://HOST:PORT``) unless it already is; returns the ``ray`` module."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    check_reachable(address)  # ray.init retries an address nobody answers for minutes
    try:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR",
                 configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RayError(f"--address {address}: cannot reach a Ray cluster ({first}); start "
                       f"one with `ray start --head` or give --address HOST:PORT") from None
    return ray


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on a ``HOST:PORT`` or ``ray://HOST:PORT`` nothing listens on (``auto`` is
    looked up by ``ray.init`` itself, which says at once when there is no cluster)."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not port.isdigit():
        raise RayError(f"--address {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise RayError(f"--address {address}: no Ray cluster answers there "
                       f"({exc.strerror or exc}); start one with `ray start --head` or check "
                       f"the address") from None


# --- on the node ----------------------------------------------------------------------------


def this_node() -> dict[str, Any]:
    """The node a task runs on: host, IP, Ray node id, CPU model and CPUs, GPU (or None),
    and the niceness its measuring processes inherit (Ray's workers run at +15 unless the
    node was started with ``RAY_worker_niceness=0``: docs/ray.md)."""
    from vitbench.env import cpu_model, usable_cpus

    info: dict[str, Any] = {"host": platform.node(), "cpu": cpu_model(), "cpus": usable_cpus(),
                            "gpu": None, "niceness": os.getpriority(os.PRIO_PROCESS, 0)}
    try:
        import ray

        info["ip"] = ray.util.get_node_ip_address()
        info["node_id"] = ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - outside a Ray worker: the rest still says where
        pass
    info["gpu"] = gpu_name()
    return info


def gpu_name() -> Optional[str]:
    """The node's first GPU by NVML (no torch, no CUDA context), or None on a CPU node."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no nvidia-ml-py or no driver: a CPU node
        return None
    try:
        if pynvml.nvmlDeviceGetCount() < 1:
            return None
        name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(0))
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # noqa: BLE001
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


def measure_row(job_json: str) -> str:
    """Ray task body: measure one job in fresh worker processes on this node, as the local
    runner does; the row (JSON) records this node."""
    from vitbench.config.spec import Job
    from vitbench.run.workers import more_processes, run_worker

    job = Job.model_validate_json(job_json)
    row = more_processes(job, run_worker(job), lambda stage: None)
    row.environment["node"] = this_node()
    return row.model_dump_json()


def probe_node() -> dict[str, Any]:
    """Ray task body: what :func:`this_node` says about the node it lands on."""
    return this_node()


# --- on the driver --------------------------------------------------------------------------


def alive_nodes(ray) -> list[dict[str, Any]]:
    """Alive nodes with CPUs: ``node_id``, ``cpus``, ``gpus``, ``ip`` (from ``ray.nodes()``)."""
    nodes = []
    for node in ray.nodes():
        resources = node.get("Resources") or {}
        if node.get("Alive") and resources.get("CPU", 0) >= 1:
            nodes.append({"node_id": node["NodeID"], "cpus": int(resources["CPU"]),
                          "gpus": int(resources.get("GPU", 0)),
                          "ip": node.get("NodeManagerAddress")})
    return nodes


def pinned(node_id: str):
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)


def node_types(address: str = DEFAULT_ADDRESS) -> dict[str, list[str]]:
    """The cluster's machine types: ``"CPU model"`` or ``"CPU model + GPU"`` → node ids,
    found by one probe task pinned to each alive node."""
    ray = connect(address)
    probe = ray.remote(probe_node)
    nodes = alive_nodes(ray)
    infos = ray.get([probe.options(num_cpus=1, scheduling_strategy=pinned(n["node_id"]))
                     .remote() for n in nodes])
    types: dict[str, list[str]] = {}
    for node, info in zip(nodes, infos):
        label = info["cpu"] + (f" + {info['gpu']}" if info.get("gpu") else "")
        types.setdefault(label, []).append(node["node_id"])
    return types


def exclusive(job) -> bool:
    """A timed CPU row: it must have its node's CPUs to itself."""
    return job.device == "cpu" and not job.static_only


def lost_reason(exc: BaseException) -> str:
    """One line for a task Ray could not finish (worker or node died, unschedulable)."""
    text = " ".join(str(exc).split())
    return f"lost on the Ray cluster ({type(exc).__name__}): {text}"[:600]


def ray_executor(address: str = DEFAULT_ADDRESS, *, max_retries: int = 1,
                 node_ids: Optional[list[str]] = None) -> Executor:
    """The runner's executor for a Ray cluster; ``node_ids`` restricts it to those nodes
    (``--each-node-type`` runs the suite once per machine type)."""

    def execute(rows: list, notify: Callable[..., None]) -> Iterator[tuple[int, ModelResult]]:
        ray = connect(address)
        yield from fan_out(ray, rows, notify, max_retries=max_retries, node_ids=node_ids)

    return execute


def fan_out(ray, rows: list, notify: Callable[..., None], *, max_retries: int,
            node_ids: Optional[list[str]]) -> Iterator[tuple[int, ModelResult]]:
    """Submit every row, yield each as it finishes; cancel what is left on the way out
    (an interrupt, or the runner stopping on a full disk)."""
    from vitbench.run.workers import failed_row

    task = ray.remote(measure_row)
    nodes = [n for n in alive_nodes(ray) if node_ids is None or n["node_id"] in node_ids]
    if not nodes:
        raise RayError("the Ray cluster has no alive node with a CPU to run rows on")
    timed = deque((i, p) for i, p in rows if exclusive(p.job))
    pending: dict[Any, tuple[int, Any, Optional[str]]] = {}  # ref -> (index, planned, node)

    def submit(index: int, planned, node: Optional[dict]) -> None:
        job = planned.job
        if node is not None:  # a timed CPU row: all of one node's CPUs, on that node only
            options = dict(num_cpus=node["cpus"], max_retries=0,
                           scheduling_strategy=pinned(node["node_id"]))
        elif job.device == "cuda":
            options = dict(num_cpus=1, num_gpus=1, max_retries=max_retries)
        else:
            options = dict(num_cpus=1, max_retries=max_retries)
            if node_ids is not None:  # packs on the chosen nodes: spread over them
                options["scheduling_strategy"] = pinned(nodes[index % len(nodes)]["node_id"])
        ref = task.options(name=f"vitbench:{job.name}"[:120], **options).remote(
            job.model_dump_json())
        pending[ref] = (index, planned, node and node["node_id"])
        notify("start", index, planned.row, "")

    for index, planned in rows:
        if not exclusive(planned.job):
            submit(index, planned, None)
    free = list(nodes)  # nodes with no timed row on them
    try:
        while timed or pending:
            while timed and free:
                submit(*timed.popleft(), free.pop(0))
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                index, planned, node_id = pending.pop(ref)
                try:
                    row = ModelResult.model_validate_json(ray.get(ref))
                except Exception as exc:  # noqa: BLE001 - Ray's errors: the row says which
                    row = failed_row(planned.job, "failed", lost_reason(exc))
                if node_id is not None:
                    alive = {n["node_id"] for n in alive_nodes(ray)}
                    free.extend(n for n in nodes if n["node_id"] == node_id
                                and node_id in alive)
                yield index, row
            if timed and not free and not any(p[2] for p in pending.values()):
                for index, planned in timed:  # every pinned node is gone
                    yield index, failed_row(planned.job, "failed",
                                            "no Ray node left to time this row on")
                timed.clear()
    finally:
        for ref in pending:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - finished or gone already
                pass
