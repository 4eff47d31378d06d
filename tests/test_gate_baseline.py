"""The baseline file (``vitbench.baseline/1``): the committed one still loads, byte for byte."""

from __future__ import annotations

import json

import pytest

from helpers_gate import row, run
from vitbench.gate import BASELINE_SCHEMA, Baseline, GateError, build_baseline, load_side


def test_committed_ci_smoke_baseline_loads_and_writes_back_unchanged(repo_root):
    path = repo_root / "results" / "baselines" / "ci-smoke.json"
    baseline = Baseline.load(path)
    assert baseline.to_json() == path.read_text(encoding="utf-8")
    side = load_side([path], "baseline")
    assert side.kind == "baseline" and side.sources == [str(path)]
    assert side.models["test_vit"].params == [371240]
    assert side.models["test_vit"].settings["image_size"] == [160, 160]


def test_optional_entries_are_written_only_when_measured(tmp_path):
    with_memory = build_baseline([run(row(latency=2.0, memory=30.0))], ["r"])
    entry = json.loads(with_memory.to_json())["models"]["m"]
    assert entry["latency_ms"] == {"q0.2": [2.0], "q0.5": [2.0]}
    assert entry["peak_memory_mb"] == [30.0] and "memory_method" in entry
    static = json.loads(build_baseline([run(row())], ["r"]).to_json())["models"]["m"]
    assert {"latency_ms", "peak_memory_mb", "memory_method", "warning", "errors"}.isdisjoint(static)
    assert static["params"] == 1000 and static["gflops"] == 1.5
    path = with_memory.save(tmp_path / "b.json")
    assert Baseline.load(path) == with_memory


def test_a_malformed_baseline_names_the_field(tmp_path):
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"schema": BASELINE_SCHEMA, "models": {"m": {"params": "many"}}}))
    with pytest.raises(GateError, match=r"b\.json: models\.m\.params: Input should be a valid "
                                        r"integer"):
        load_side([path], "baseline")
    path.write_text(json.dumps({"schema": "vitbench.baseline/9"}))
    with pytest.raises(GateError, match=r"b\.json: schema vitbench\.baseline/9 is newer than "
                                        r"this vitbench \(reads /1\)"):
        load_side([path], "baseline")
    path.write_text(json.dumps({"schema": "other/1"}))
    with pytest.raises(GateError, match=r"not a vitbench results or baseline file"):
        load_side([path], "baseline")
