"""The JSON Schemas vitbench ships: equal to the ones its models generate, and they accept
every real file of their kind (the committed suites, results and baseline) and reject a
malformed one."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from helpers_golden import UPDATE_GOLDEN
from vitbench.cli import app
from vitbench.cli.schema import json_schema, schema_text, shipped_schema
from vitbench.records import RunResult

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("results", "suite", "baseline")


@pytest.mark.parametrize("kind", KINDS)
def test_shipped_schema_is_the_generated_one(kind):
    path = ROOT / "vitbench" / "schemas" / f"{kind}.schema.json"
    if UPDATE_GOLDEN:
        path.write_text(schema_text(kind), encoding="utf-8")
    assert shipped_schema(kind) == json_schema(kind), (
        f"{path.name} is stale: VITBENCH_UPDATE_GOLDEN=1 pytest tests/test_schema.py")
    jsonschema.Draft202012Validator.check_schema(shipped_schema(kind))


def validator(kind):
    return jsonschema.Draft202012Validator(shipped_schema(kind))


@pytest.mark.parametrize("suite", sorted((ROOT / "suites").glob("*.yaml")), ids=lambda p: p.name)
def test_every_committed_suite_matches_the_suite_schema(suite):
    errors = list(validator("suite").iter_errors(yaml.safe_load(suite.read_text("utf-8"))))
    assert errors == [], [e.message for e in errors[:3]]


@pytest.mark.parametrize("name", ["report_cpu_b1.json", "report_synthetic_cuda.json"])
def test_result_files_match_the_results_schema(name):
    """Real runs (CPU, and CUDA with memory and telemetry), as this vitbench writes them."""
    doc = json.loads(RunResult.load(ROOT / "tests" / "data" / name).to_json())
    assert list(validator("results").iter_errors(doc)) == []
    doc["results"][0]["status"] = "great"  # not one of the documented statuses
    assert list(validator("results").iter_errors(doc))


def test_the_committed_baseline_matches_the_baseline_schema():
    doc = json.loads((ROOT / "results" / "baselines" / "ci-smoke.json").read_text("utf-8"))
    assert list(validator("baseline").iter_errors(doc)) == []


def test_a_malformed_suite_is_rejected_naming_the_field():
    bad = {"name": "x", "models": [{"name": "A", "model": "timm:resnet18", "bacth_size": 4}]}
    errors = list(validator("suite").iter_errors(bad))
    assert len(errors) == 1 and list(errors[0].absolute_path) == ["models", 0]
    assert "bacth_size" in errors[0].message


def test_schema_command_prints_the_schema():
    done = CliRunner().invoke(app, ["schema", "results"])
    assert done.exit_code == 0
    assert json.loads(done.output)["$id"].endswith("/results.schema.json")
    assert CliRunner().invoke(app, ["schema", "nope"]).exit_code == 2
