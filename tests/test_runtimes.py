"""Deployment runtimes (vitbench.measure.runtimes): a tiny model exported to ONNX and timed
under each installed CPU runtime, its output checked against eager's; an export that fails
is a failed row and the suite goes on; a runtime that cannot run here stops the run first.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vitbench.config.spec import Settings
from vitbench.config.suite import parse_suite, resolve_jobs

from jobs import REPO, small_job

TINY = "python:tests.fixtures_models:tiny"
RUNTIMES = "python:tests.fixtures_runtimes"
CPU_RUNTIMES = [pytest.param(name, marks=pytest.mark.skipif(
    __import__("importlib.util").util.find_spec(module) is None, reason=f"{module} not installed"))
    for name, module in (("onnxruntime", "onnxruntime"), ("openvino", "openvino"))]


def test_a_runtime_list_runs_each_row_on_each_runtime_and_compile_means_torch_compile():
    suite = parse_suite("name: t\ndefaults: {runtime: [eager, compile, openvino], "
                        "batch_size: [1, 2]}\nmodels:\n  - {name: A, model: timm:resnet18}\n")
    jobs = resolve_jobs(suite, suite.models[0])
    assert [(j.batch_size, j.runtime) for j in jobs] == [
        (b, r) for b in (1, 2) for r in ("eager", "compile", "openvino")]
    assert {j.runtime: j.compile for j in jobs} == {
        "eager": None, "compile": "default", "openvino": None}
    assert resolve_jobs(suite, suite.models[0], static_only=True)[0].runtime == "eager"
    with pytest.raises(ValueError, match="runtimes repeat"):
        Settings(runtime=["eager", "eager"])


@pytest.mark.parametrize("runtime", CPU_RUNTIMES)
def test_tiny_model_through_a_cpu_runtime_matches_eager_and_is_timed(runtime):
    from vitbench.measure.job import measure_job

    row = measure_job(small_job(TINY, runtime=runtime, repeat=5, count=False))
    assert row.status == "ok", row.error
    assert row.runtime == runtime and len(row.latency.samples_ms) >= 5
    deployment = row.deployment
    assert deployment.outputs_match is True and deployment.max_abs_error < 1e-4
    assert deployment.exporter.startswith("torch.onnx.export") and deployment.opset >= 17
    assert deployment.graph_nodes > 0 and deployment.graph_bytes > 0
    assert deployment.session  # the threads and hints it was built with
    assert row.counts.params == sum(p.numel() for p in __import__(
        "tests.fixtures_models", fromlist=["tiny"]).tiny().parameters()), "PyTorch's count"


@pytest.mark.skipif(__import__("importlib.util").util.find_spec("openvino") is None,
                    reason="openvino not installed")
def test_an_output_that_differs_from_eager_flags_the_row_not_comparable():
    from vitbench.measure.job import measure_job

    row = measure_job(small_job(f"{RUNTIMES}:lies", runtime="openvino", count=False))
    assert row.status == "ok" and row.deployment.outputs_match is False
    assert not row.deployment.comparable and row.deployment.max_rel_error > 0.1
    assert any(w.startswith("output mismatch:") and "not comparable" in w for w in row.warnings)


def test_a_runtime_that_is_not_installed_names_its_extra(monkeypatch):
    from vitbench.errors import ExitCode, VitbenchError
    from vitbench.measure import runtimes

    monkeypatch.setitem(runtimes.EXTRAS, "openvino", ("openvino", ("vitbench_no_such_module",)))
    job = small_job(TINY, runtime="openvino")
    with pytest.raises(VitbenchError) as caught:
        runtimes.check_runtimes([("Tiny", job)])
    message = str(caught.value)
    assert "'Tiny'" in message and "pip install -e '.[openvino]'" in message
    assert "\n" not in message and caught.value.exit_code == ExitCode.BAD_INPUT


def test_tensorrt_on_cpu_stops_the_run_before_measuring(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "vitbench", "run", "--model", "timm:resnet18", "--runtime",
         "tensorrt", "--device", "cpu", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "runtime tensorrt needs device: cuda" in proc.stderr
    assert not (tmp_path / "out").exists(), "nothing measured, no result folder"


@pytest.mark.skipif(__import__("importlib.util").util.find_spec("onnxruntime") is None,
                    reason="onnxruntime not installed")
def test_an_export_failure_is_a_failed_row_and_the_suite_completes(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: rt\npython_path: [" + json.dumps(REPO) + "]\n"
        "defaults: {image_size: 32, threads: 1, warmup: 1, repeat: 3, min_time_s: 0, "
        "processes: 1, runtime: [eager, onnxruntime]}\n"
        f"models:\n  - {{name: Opaque, model: '{RUNTIMES}:unexportable'}}\n"
        f"  - {{name: Tiny, model: '{TINY}'}}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "vitbench", "run", str(suite), "--out", str(tmp_path / "out"),
         "--no-plots", "--quiet"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 1, proc.stderr  # a failed row
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["results"]
    status = {(r["name"], r.get("runtime") or "eager"): r for r in rows}
    assert [k for k in status] == [("Opaque", "eager"), ("Opaque", "onnxruntime"),
                                   ("Tiny", "eager"), ("Tiny", "onnxruntime")]
    failed = status[("Opaque", "onnxruntime")]
    assert failed["status"] == "failed" and "vitbench_test.opaque" in failed["error"]
    assert "export" in failed["error"]
    assert status[("Opaque", "eager")]["status"] == "ok"
    assert status[("Tiny", "onnxruntime")]["status"] == "ok"
    assert status[("Tiny", "onnxruntime")]["deployment"]["outputs_match"] is True
    # the merged table: a latency column per runtime, the output error beside it
    from vitbench.report.merge import load_runs, merge_runs
    from vitbench.report.plots.runtimes import speedups

    report = merge_runs(*load_runs([tmp_path / "out"]))
    assert [c.label for c in report.columns] == ["CPU eager", "CPU onnxruntime"]
    assert set(speedups(report)["CPU onnxruntime"]) == {"Tiny"}
    markdown = (tmp_path / "out" / "results.md").read_text()
    assert "CPU onnxruntime latency (ms)" in markdown and "CPU onnxruntime max abs err" in markdown
    import csv

    lines = list(csv.DictReader((tmp_path / "out" / "results.csv").open()))
    assert [(r["name"], r["runtime"]) for r in lines][-1] == ("Tiny", "onnxruntime")
    assert lines[-1]["onnx_opset"] and lines[-1]["runtime_outputs_match"] == "True"


@pytest.mark.gpu
@pytest.mark.parametrize("runtime", ["onnxruntime", "tensorrt"])
def test_gpu_runtime_matches_eager_and_is_timed(runtime):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA")
    pytest.importorskip("onnxruntime")
    from vitbench.measure.job import measure_job

    row = measure_job(small_job(TINY, runtime=runtime, device="cuda", repeat=5, count=False))
    assert row.status == "ok", row.error
    assert row.deployment.session["providers"][0] == (
        "TensorrtExecutionProvider" if runtime == "tensorrt" else "CUDAExecutionProvider")
    assert row.deployment.outputs_match is True and len(row.latency.samples_ms) >= 5


@pytest.mark.skipif(__import__("importlib.util").util.find_spec("openvino") is None,
                    reason="openvino not installed")
def test_runtime_check_times_the_same_graph_with_benchmark_app():
    from vitbench.tools.runtimecheck import runtime_agreement

    result = runtime_agreement(small_job(TINY, runtime="openvino", min_time_s=0.2, count=False),
                               rounds=1, seconds=1)
    assert len(result.vitbench_ms) == len(result.tool_ms) == 1
    assert result.vitbench_ms[0] > 0 and result.tool_ms[0] > 0 and result.ratio > 0
    assert "median ratio" in result.lines()[-1]


@pytest.mark.parametrize("runtime", CPU_RUNTIMES[:1])
def test_an_ab_lockstep_side_on_a_runtime_keeps_its_output_check(runtime):
    from vitbench.gate.ab import output_checks
    from vitbench.gate.lockstep import measure_pair
    from vitbench.records import RunResult

    jobs = {"A": small_job(TINY, count=False, max_time_s=1.0),
            "B": small_job(TINY, runtime=runtime, count=False, max_time_s=1.0)}
    outcome = measure_pair(jobs)
    a, b = outcome.rows["A"], outcome.rows["B"]
    assert a.status == b.status == "ok" and outcome.log_ratios
    assert a.deployment is None  # eager: nothing exported
    assert b.deployment.runtime == runtime and b.deployment.outputs_match is True
    assert b.deployment.max_abs_error < 1e-4 and b.deployment.graph_nodes > 0
    run = RunResult(suite={"name": "t"}, created_utc="2026-12-02T00:00:00Z", results=[b])
    [note] = output_checks({"A": [], "B": [run]})
    assert note.startswith(f"output check, side B: {TINY} · {runtime}")
    assert "output matches eager's" in note


def test_ab_sides_put_their_rows_on_one_runtime_and_keep_the_calibration_probe_eager():
    from vitbench.config.plan import plan, with_runtime
    from vitbench.gate.ab import with_calibration

    suite = parse_suite("name: t\ndefaults: {runtime: [eager, onnxruntime]}\nmodels:\n"
                        "  - {name: A, model: timm:resnet18}\n"
                        "  - {name: B, model: timm:resnet18, runtime: compile}\n")
    side = with_calibration(with_runtime(suite, "openvino"))
    runtimes = {p.row.name: p.job.runtime for p in plan(side)}
    assert runtimes == {"A": "openvino", "B": "openvino", "gate-calibration": "eager"}
