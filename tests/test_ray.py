"""``vitbench run --executor ray`` on a real local Ray cluster: a ``ray start --head`` on
loopback with 2 CPUs (two Ray worker processes at once), started once for this file and
killed after it. No mocks: rows are Ray tasks that start vitbench's own worker processes.

- the same suite gives identical static counts through Ray and locally, and every Ray row
  records the node it ran on;
- a Ray worker SIGKILLed mid-row (its row pinned to the node for timing): the finished rows
  are all in ``results.json``, the lost row is failed with the reason, its measuring process
  dies with it;
- an unpinned (static) row whose worker is killed is run again by Ray and lands ok.

Skipped when ray is not installed (``pip install -e '.[ray]'``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from helpers_faults import assert_clean_failure, vitbench_cli

ray = pytest.importorskip("ray")

MODELS = '''
import os, pathlib, time


def tiny(width=4):
    from torch import nn
    return nn.Sequential(nn.Conv2d(3, width, 3, stride=2), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(width, 10))


def victim():
    """First build: writes this process's pid, then sleeps until it is killed; later: tiny."""
    marker = pathlib.Path(__file__).with_name("victim.pid")
    if not marker.exists():
        partial = marker.with_suffix(".tmp")
        partial.write_text(str(os.getpid()))
        partial.rename(marker)
        time.sleep(3600)
    return tiny()
'''

SUITE = """
name: raytest
defaults: {threads: 1, image_size: 32, warmup: 1, repeat: 3, min_time_s: 0, processes: 1,
           timeout_s: 600}
models:
  - {name: first, model: "python:vb_ray_models:tiny"}
  - {name: victim, model: "python:vb_ray_models:victim"}
  - {name: last, model: "python:vb_ray_models:tiny", kwargs: {width: 8}}
"""

#: how long a row may take to reach the victim's sleep on a busy 2-core machine
START_S = 240


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """A Ray head on 127.0.0.1 with 2 CPUs; its address. Its whole process group is killed
    at the end (Ray's own shutdown takes tens of seconds on a busy machine)."""
    temp = Path(tempfile.mkdtemp(prefix="vbray-", dir="/tmp"))  # short: Ray's socket paths
    port = free_port()
    log = open(temp / "start.log", "w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block",
         "--port", str(port), "--node-ip-address", "127.0.0.1", "--num-cpus", "2",
         "--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", str(temp)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "RAY_worker_niceness": "0"})
    try:
        deadline = time.monotonic() + 180
        while "Ray runtime started" not in (temp / "start.log").read_text(errors="replace"):
            assert proc.poll() is None, (temp / "start.log").read_text(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "ray start did not finish in 180 s"
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        log.close()
        kill_processes_of(temp)
        shutil.rmtree(temp, ignore_errors=True)


def kill_processes_of(temp: Path) -> None:
    """Ray's workers are in process groups of their own: find them by the cluster's folder
    on their command line (they would exit on their own once the raylet is gone, later)."""
    import psutil

    for proc in psutil.process_iter(["cmdline"]):
        if any(str(temp) in part for part in proc.info["cmdline"] or ()):
            try:
                proc.kill()
            except psutil.Error:
                pass


@pytest.fixture
def layout(tmp_path):
    (tmp_path / "vb_ray_models.py").write_text(MODELS)
    (tmp_path / "suite.yaml").write_text(SUITE)
    return tmp_path


def rows_of(folder: Path) -> dict[str, dict]:
    return {r["name"]: r for r in json.loads((folder / "results.json").read_text())["results"]}


def counts(row: dict) -> tuple:
    return tuple(row["counts"][k] for k in ("params", "gmacs", "counter")) if row.get(
        "counts") else None


def ray_worker_of(pid: int) -> int:
    """The Ray worker (process title ``ray::…``) above the measuring process ``pid``."""
    import psutil

    for parent in psutil.Process(pid).parents():
        if parent.cmdline()[:1] and parent.cmdline()[0].startswith("ray::"):
            return parent.pid
    raise AssertionError(f"no ray:: process above {pid}")


def wait_for(path: Path) -> int:
    deadline = time.monotonic() + START_S
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} not written in {START_S} s"
        time.sleep(0.2)
    return int(path.read_text())


def test_same_static_counts_through_ray_and_locally(cluster, layout):
    """Through Ray once per machine type (one here: a folder for it, and the merged table
    with a column named after it), timed; locally, counted only: the same counts."""
    rows = ("--only", "first", "--only", "last")
    through_ray = vitbench_cli("run", "suite.yaml", *rows, "--executor", "ray", "--address",
                               cluster, "--each-node-type", "--out", "ray", "--no-plots",
                               "--quiet", cwd=layout, timeout=600)
    assert through_ray.code == 0, through_ray.stderr[-3000:]
    local = vitbench_cli("run", "suite.yaml", *rows, "--static-only", "--out", "local",
                         "--no-plots", "--quiet", cwd=layout, timeout=600)
    assert local.code == 0, local.stderr[-3000:]
    [type_folder] = [p.parent for p in (layout / "ray").glob("*/results.json")]
    ray_rows, local_rows = rows_of(type_folder), rows_of(layout / "local")
    assert {n: counts(r) for n, r in ray_rows.items()} == {
        n: counts(r) for n, r in local_rows.items()}
    assert all(counts(r) for r in ray_rows.values())
    assert all(r["latency"] for r in ray_rows.values())
    for row in ray_rows.values():
        node = row["environment"]["node"]
        assert node["host"] and node["cpu"] and node["cpus"] >= 1 and node["node_id"]
        assert node["niceness"] == os.getpriority(os.PRIO_PROCESS, 0)  # RAY_worker_niceness=0
    assert all("node" not in r["environment"] for r in local_rows.values())
    cpu = ray_rows["first"]["environment"]["node"]["cpu"]
    assert f"CPU · {cpu}" in (layout / "ray" / "results.md").read_text()


def test_a_worker_killed_mid_run_loses_no_finished_row(cluster, layout):
    """Timed rows hold the node's 2 CPUs, so they run one by one, pinned: the killed row is
    failed with the reason (a pinned row is not re-run), the others are ok and saved."""
    run = subprocess.Popen(
        [sys.executable, "-m", "vitbench", "run", "suite.yaml", "--executor", "ray",
         "--address", cluster, "--out", "out", "--no-plots", "--quiet"],
        cwd=layout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        measuring = wait_for(layout / "victim.pid")
        saved = rows_of(layout / "out")
        assert saved["first"]["status"] == "ok"  # finished before the victim started
        os.kill(ray_worker_of(measuring), signal.SIGKILL)
        _, stderr = run.communicate(timeout=600)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 1, stderr[-3000:]
    rows = rows_of(layout / "out")
    assert rows["first"]["status"] == rows["last"]["status"] == "ok"
    assert counts(rows["first"]) == counts(saved["first"])
    assert rows["victim"]["status"] == "failed"
    assert "lost on the Ray cluster" in rows["victim"]["error"], rows["victim"]["error"]
    deadline = time.monotonic() + 10  # the measuring process dies with its Ray worker
    while Path(f"/proc/{measuring}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not Path(f"/proc/{measuring}").exists() or "Z" in Path(
        f"/proc/{measuring}/stat").read_text().split()[2]


def test_a_static_row_whose_worker_dies_is_run_again(cluster, layout):
    """An unpinned row (static-only) is re-run by Ray (max_retries=1) and lands ok."""
    from vitbench.config.suite import load_suite
    from vitbench.run.ray_executor import ray_executor
    from vitbench.run.runner import run_suite

    killed = []

    def kill_victim():  # beside the driver, which waits on Ray
        measuring = wait_for(layout / "victim.pid")
        os.kill(ray_worker_of(measuring), signal.SIGKILL)
        killed.append(measuring)

    killer = threading.Thread(target=kill_victim, daemon=True)
    killer.start()
    try:
        run = run_suite(load_suite(layout / "suite.yaml"), out_dir=layout / "out",
                        static_only=True,
                        executor=ray_executor(cluster, max_retries=1))
    finally:
        ray.shutdown()
    killer.join(timeout=5)
    assert killed, "the victim was never killed"
    rows = {r.name: r for r in run.results}
    assert [rows[n].status for n in ("first", "victim", "last")] == ["ok"] * 3, [
        (r.name, r.status, r.error) for r in run.results]
    assert rows_of(layout / "out")["victim"]["status"] == "ok"


def test_ray_options_need_the_ray_executor(tmp_path):
    (tmp_path / "suite.yaml").write_text(SUITE)
    outcome = vitbench_cli("run", "suite.yaml", "--address", "auto", cwd=tmp_path)
    assert_clean_failure(outcome, 2, "--address", "--executor ray")


def test_an_address_nobody_answers_on_is_one_line(tmp_path):
    (tmp_path / "suite.yaml").write_text(SUITE)
    address = f"127.0.0.1:{free_port()}"
    outcome = vitbench_cli("run", "suite.yaml", "--executor", "ray", "--address", address,
                           cwd=tmp_path, timeout=120)
    assert_clean_failure(outcome, 2, address, "ray start --head")
    assert not (tmp_path / "results").exists()


def test_a_run_out_of_time_cancels_the_rows_left(cluster, layout):
    """``--max-run-time`` (the runner's ``should_stop``) is asked as each row lands: the rows
    still queued or running on the cluster are cancelled and say why."""
    from vitbench.config.suite import load_suite
    from vitbench.run.ray_executor import ray_executor
    from vitbench.run.runner import run_suite

    try:
        run = run_suite(load_suite(layout / "suite.yaml"), out_dir=layout / "out",
                        only=["first", "last"], executor=ray_executor(cluster),
                        should_stop=lambda: "time is up (test)")
    finally:
        ray.shutdown()
    statuses = {r.name: (r.status, r.error) for r in run.results}
    assert [s for s, _ in statuses.values()].count("ok") == 1, statuses
    assert ("interrupted", "time is up (test)") in statuses.values(), statuses
