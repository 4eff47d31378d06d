"""The GitHub workflows (this repository's CI and the example for users) are valid workflows by
GitHub's own schema (vendored by check-jsonschema, so offline), and every vitbench command
they run exists with the options they pass."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from vitbench.cli import app

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = [ROOT / ".github/workflows/ci.yml", ROOT / "examples/github/vitbench-gate.yml"]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_matches_githubs_schema(workflow):
    done = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                           "vendor.github-workflows", str(workflow)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def vitbench_commands(workflow: Path) -> list[list[str]]:
    """Every ``vitbench ...`` command line in the workflow's ``run:`` scripts, tokenised."""
    doc = yaml.safe_load(workflow.read_text(encoding="utf-8"))
    commands = []
    for job in doc["jobs"].values():
        for step in job["steps"]:
            script = step.get("run", "").replace("\\\n", " ")
            for line in script.splitlines():
                words = shlex.split(line.strip(), comments=True) if line.strip() else []
                if words and words[0] == "vitbench":
                    commands.append(words)
    return commands


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_every_vitbench_command_and_option_in_the_workflows_exists(workflow):
    runner = CliRunner()
    commands = vitbench_commands(workflow)
    for words in commands:
        help_text = runner.invoke(app, [words[1], "--help"], env={"COLUMNS": "200"}).output
        assert help_text.startswith("Usage:"), (words, help_text[:200])
        for option in (w.split("=")[0] for w in words[2:] if w.startswith("--")):
            assert option in help_text, (words[1], option)
    assert any(w[1] == "ab" for w in commands) or workflow.name == "ci.yml"


def test_the_example_comments_once_and_survives_a_failed_step():
    doc = yaml.safe_load(WORKFLOWS[1].read_text(encoding="utf-8"))
    assert doc["permissions"] == {"contents": "read", "pull-requests": "write"}
    steps = {s.get("name", ""): s for s in doc["jobs"]["gate"]["steps"]}
    comment = steps["(c) Sticky PR comment"]
    assert comment["if"].startswith("always()")
    assert "updateComment" in comment["with"]["script"]  # edited in place, not one per push
    assert all(steps[name].get("continue-on-error") for name in steps if name.startswith(("(a)", "(b)")))
