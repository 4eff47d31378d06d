"""The result records as a specification: measured vs printed (the tolerance widens to the
printed precision), and the schema — ``vitbench.result/2`` written, ``/1`` still read through
one upgrader, unknown keys refused with the file, the row and the field."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vitbench.cli import app
from vitbench.errors import ResultsError
from vitbench.records import (READABLE_SCHEMAS, SCHEMA, SCHEMA_V1, ModelResult, RunResult,
                              compare, upgrade_v1)
from vitbench.records.v1 import UPGRADED_SCHEMA


def test_printed_precision_widens_the_tolerance():
    # 0.4 printed with one decimal stands for 0.35-0.45: 0.44 is 10% off but consistent.
    c = compare(0.44, 0.4, 1, 5.0)
    assert c.within_tolerance and c.matches_printed
    assert c.tolerance_pct == pytest.approx(12.5)
    assert not compare(0.46, 0.4, 1, 5.0).within_tolerance


def test_default_tolerance_is_five_percent_for_precise_values():
    assert compare(104.9, 100.0, 1, 5.0).within_tolerance
    c = compare(105.2, 100.0, 1, 5.0)
    assert not c.within_tolerance and c.delta_pct == pytest.approx(5.2)
    assert compare(8.769, 8.7, 1, 5.0).matches_printed is False
    assert compare(8.741, 8.7, 1, 5.0).matches_printed is True


def test_missing_measurement_has_no_verdict():
    c = compare(None, 3.7, 1, 5.0)
    assert c.within_tolerance is None and c.delta_pct is None


def test_results_file_errors(tmp_path):
    with pytest.raises(ResultsError, match="no such file"):
        RunResult.load(tmp_path / "x.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ResultsError, match="not JSON"):
        RunResult.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"schema": "other/9"}')
    with pytest.raises(ResultsError, match="schema"):
        RunResult.load(tmp_path / "other.json")


# --- the schema: vitbench.result/2, and every /1 file still read ---------------------------

DATA = Path(__file__).parent / "data"
#: Committed vitbench.result/1 files: golden inputs, never rewritten.
V1_GOLDENS = ["report_cpu_b1.json", "report_cpu_b4.json", "report_synthetic_cuda.json"]


def _part(row: ModelResult, part: str, field: str):
    value = getattr(row, part)
    return None if value is None else getattr(value, field)


def _summary(row: ModelResult):
    summary = row.latency_summary
    return None if summary is None else {k: v for k, v in summary.model_dump().items()
                                         if v is not None}


#: Where each flat /1 row field is read in /2: the mapping the upgrader is held to.
V1_PLACES = {
    "params": lambda r: _part(r, "counts", "params"),
    "params_m": lambda r: r.params_m,
    "gflops": lambda r: r.gmacs,
    "gflops_counter": lambda r: _part(r, "counts", "counter"),
    "gflops_crosscheck": lambda r: _part(r, "counts", "crosscheck_gmacs"),
    "gflops_crosscheck_counter": lambda r: _part(r, "counts", "crosscheck_counter"),
    "counters_agree": lambda r: _part(r, "counts", "counters_agree"),
    "uncounted_ops": lambda r: _part(r, "counts", "uncounted_ops"),
    "crosscheck_uncounted_ops": lambda r: _part(r, "counts", "crosscheck_uncounted_ops"),
    "gap_ops": lambda r: _part(r, "counts", "gap_ops"),
    "flops_error": lambda r: _part(r, "counts", "error"),
    "latency_ms": _summary,
    "latency_samples_ms": lambda r: _part(r, "latency", "samples_ms"),
    "first_call_ms": lambda r: _part(r, "latency", "first_call_ms"),
    "warmup_calls": lambda r: _part(r, "latency", "warmup_calls"),
    "stopped_by": lambda r: _part(r, "latency", "stopped_by"),
    "timer": lambda r: _part(r, "latency", "timer"),
    "calls_per_sample": lambda r: _part(r, "latency", "calls_per_sample"),
    "throughput_img_s": lambda r: r.throughput_img_s,
    "minor_faults_per_call": lambda r: _part(r, "latency", "minor_faults_per_call"),
    "peak_memory_mb": lambda r: r.peak_memory_mib,
    "peak_memory_reserved_mb": lambda r: _part(r, "memory", "reserved_mib"),
    "memory_method": lambda r: _part(r, "memory", "method"),
    "foreign_cpu_pct": lambda r: _part(r, "telemetry", "foreign_cpu_pct"),
    "contended": lambda r: _part(r, "telemetry", "contended"),
    "gpu_power_w": lambda r: _part(r, "telemetry", "gpu_power_w"),
    "energy_j_per_img": lambda r: _part(r, "telemetry", "energy_j_per_img"),
    "gpu_util_pct": lambda r: _part(r, "telemetry", "gpu_util_pct"),
    "gpu_temp_c": lambda r: _part(r, "telemetry", "gpu_temp_c"),
    "gpu_telemetry": lambda r: _part(r, "telemetry", "nvml"),
}


def _empty_as_none(value):
    if isinstance(value, dict):
        value = {k: v for k, v in value.items() if v is not None}
    return None if value in ({}, []) else value


def test_the_schema_is_result_2_and_result_1_is_still_read():
    assert SCHEMA == UPGRADED_SCHEMA == "vitbench.result/2"
    assert READABLE_SCHEMAS == (SCHEMA_V1, SCHEMA) and SCHEMA_V1 == "vitbench.result/1"


@pytest.mark.parametrize("name", V1_GOLDENS)
def test_each_v1_golden_is_v1_and_upgrades_every_value_to_its_new_place(name):
    raw = json.loads((DATA / name).read_text(encoding="utf-8"))
    assert raw["schema"] == SCHEMA_V1, "the committed goldens stay /1 inputs"
    run = RunResult.load(DATA / name)
    assert run.schema_ == SCHEMA and run.file_schema == SCHEMA_V1
    assert len(run.results) == len(raw["results"])
    for flat, row in zip(raw["results"], run.results):
        assert set(flat) - set(ModelResult.model_fields) <= set(V1_PLACES), row.name
        for key, place in V1_PLACES.items():
            assert _empty_as_none(place(row)) == _empty_as_none(flat.get(key)), (row.name, key)
        for key in set(flat) & set(ModelResult.model_fields):
            value = getattr(row, key)
            dumped = ([*value] if isinstance(value, tuple) else
                      {k: v.model_dump() for k, v in value.items()} if key == "comparisons"
                      else value)
            assert dumped == flat[key], (row.name, key)


def test_the_first_row_of_the_cpu_golden_reads_the_same_in_both_schemas():
    flat = json.loads((DATA / "report_cpu_b1.json").read_text(encoding="utf-8"))["results"][0]
    row = RunResult.load(DATA / "report_cpu_b1.json").results[0]
    assert (row.counts.params, row.params_m, row.gmacs) == (
        flat["params"], flat["params_m"], flat["gflops"]) == (1272024, 1.272024, 0.407364096)
    assert row.latency_median_ms == row.latency.summary.median == flat["latency_ms"]["median"]
    assert row.peak_memory_mib == row.memory.peak_mib == flat["peak_memory_mb"] == 84.72265625
    assert row.latency.samples_ms == flat["latency_samples_ms"]
    assert row.telemetry is None, "rows measured before telemetry existed have none"


def test_upgrade_v1_moves_memory_parts_and_leaves_its_input_alone():
    row = {"name": "m", "params": 10, "params_m": 1e-5, "peak_memory_mb": 3.5,
           "memory_method": "cpu: ...", "environment": {
               "torch_num_threads": 1, "memory": {"weights_and_buffers_mb": 1.5,
                                                  "rss_before_build_mb": 880.0}}}
    document = {"schema": SCHEMA_V1, "results": [row]}
    before = json.dumps(document, sort_keys=True)
    upgraded = upgrade_v1(document)
    assert json.dumps(document, sort_keys=True) == before
    assert upgraded["schema"] == SCHEMA
    assert upgraded["results"] == [{
        "name": "m", "counts": {"params": 10},
        "memory": {"peak_mib": 3.5, "method": "cpu: ...",
                   "parts": {"weights_and_buffers_mib": 1.5, "rss_before_build_mib": 880.0}},
        "environment": {"torch_num_threads": 1}}]


@pytest.mark.parametrize("name", V1_GOLDENS)
def test_a_v1_file_saves_as_v2_and_reads_back_the_same(tmp_path, name):
    run = RunResult.load(DATA / name)
    saved = run.save(tmp_path / "results.json")
    document = json.loads(saved.read_text(encoding="utf-8"))
    assert document["schema"] == SCHEMA
    assert {"counts", "latency", "memory", "telemetry"} <= set(document["results"][0])
    assert "gflops" not in document["results"][0] and "latency_ms" not in document["results"][0]
    again = RunResult.load(saved)
    assert again.file_schema == SCHEMA
    assert again.model_dump() == run.model_dump()
    assert again.to_json() == saved.read_text(encoding="utf-8"), "a second save is the same bytes"


def _v2_document(tmp_path) -> dict:
    RunResult.load(DATA / "report_cpu_b1.json").save(tmp_path / "v2.json")
    return json.loads((tmp_path / "v2.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("where, change, message", [
    ("the run", lambda d: d.update(extra=1), r"bad\.json: extra: unknown field"),
    ("a row", lambda d: d["results"][0].update(gflops=0.4),
     r"bad\.json: results\[0\] \(MobileViTv1-XXS\): gflops: unknown field"),
    ("a part", lambda d: d["results"][1]["latency"]["summary"].update(p50=1.0),
     r"bad\.json: results\[1\] \(MobileViTv2-0\.5\): latency\.summary\.p50: unknown field"),
    ("a /1 row", lambda d: d["results"][0].update(mystery=1),
     r"bad\.json: results\[0\] \(MobileViTv1-XXS\): mystery: unknown field"),
])
def test_unknown_keys_are_refused_with_the_file_row_and_field(tmp_path, where, change, message):
    document = (json.loads((DATA / "report_cpu_b1.json").read_text(encoding="utf-8"))
                if "/1" in where else _v2_document(tmp_path))
    change(document)
    (tmp_path / "bad.json").write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ResultsError, match=message):
        RunResult.load(tmp_path / "bad.json")


@pytest.mark.parametrize("schema, message", [
    ("vitbench.result/3", r"schema vitbench\.result/3 is newer than this vitbench \(reads /1, /2\)"),
    ("vitbench.result/0", r"schema 'vitbench\.result/0' is not one this vitbench reads \(/1, /2\)"),
    (None, r"not a vitbench results file \(schema None\)"),
    ("vitbench.baseline/1", r"a vitbench baseline file, not a results file"),
])
def test_an_unknown_schema_is_a_results_error_naming_the_file_and_the_schemas(
        tmp_path, schema, message):
    document = _v2_document(tmp_path)
    document["schema"] = schema
    (tmp_path / "x.json").write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ResultsError, match=rf"x\.json: {message}"):
        RunResult.load(tmp_path / "x.json")


def test_a_wrong_value_type_names_its_place(tmp_path):
    document = _v2_document(tmp_path)
    document["results"][0]["memory"]["peak_mib"] = "a lot"
    (tmp_path / "x.json").write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ResultsError, match=r"results\[0\] \(MobileViTv1-XXS\): memory\.peak_mib"):
        RunResult.load(tmp_path / "x.json")


def test_records_import_without_torch_numpy_or_scipy():
    code = ("import sys, vitbench.records; "
            "print(sorted(m for m in ('torch', 'numpy', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", V1_GOLDENS)
def test_each_v1_golden_renders_and_gates_against_its_v2_resave(tmp_path, name):
    """The gate reads a /1 file on one side and its /2 re-save on the other: every params and
    GFLOPs verdict of a row that was measured is PASS. (The synthetic CUDA golden has one
    hand-made failed row: NOT_COMPARABLE on both sides, so that file exits INCONCLUSIVE.)"""
    run = RunResult.load(DATA / name)
    v2 = run.save(tmp_path / "v2" / "results.json")
    failed = {r.name for r in run.results if r.status not in ("ok", "unavailable")}
    measured = {r.name for r in run.results if r.status == "ok"}
    runner = CliRunner()
    rendered = runner.invoke(app, ["report", str(DATA / name), "--format", "md,csv",
                                   "--out", str(tmp_path / "report")])
    assert rendered.exit_code == 0, rendered.output
    markdown = (tmp_path / "report" / "results.md").read_text(encoding="utf-8")
    assert f"schema {SCHEMA_V1}" in markdown, "the report names the file's own schema"
    gated = runner.invoke(app, ["compare", str(DATA / name), str(v2), "--metrics",
                                "params,gflops", "--json", str(tmp_path / "verdict.json")])
    assert gated.exit_code == (3 if failed else 0), gated.output
    verdicts = json.loads((tmp_path / "verdict.json").read_text(encoding="utf-8"))["verdicts"]
    passed = {(v["model"], v["metric"]) for v in verdicts if v["verdict"] == "PASS"}
    assert passed == {(name, metric) for name in measured for metric in ("params", "gflops")}
    assert {v["model"] for v in verdicts if v["verdict"] != "PASS"} == failed
