"""Fault corpus, imports in vitbench's own process: ``run --in-process``, ``profile`` and
``sweep`` find ``python:`` modules where workers do (the suite's folder, its
``python_path:``, ``--python-path`` for a model named on the command line, ``PYTHONPATH``),
after the installed packages, and never in the working directory.

The suite lives in ``tmp/suites/``, its modules beside it or in ``tmp/lib/``; every command
runs from ``tmp/``, which holds no module, so a module found proves the documented folders
were searched. Runs are ``--static-only`` (counts only) to stay cheap.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers_faults import assert_clean_failure, vitbench_cli

TINY = "import torch\n\n\ndef tiny(**kwargs):\n    return torch.nn.Conv2d(3, 4, 3)\n"

SUITE = """name: inprocess
python_path: [../lib]
defaults: {image_size: 32, threads: 1, timeout_s: 300}
models:
  - {name: beside, model: "python:vb_beside:tiny"}
  - {name: listed, model: "python:vb_listed:tiny"}
"""


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    (tmp_path / "suites").mkdir()
    (tmp_path / "lib").mkdir()
    (tmp_path / "suites" / "suite.yaml").write_text(SUITE)
    (tmp_path / "suites" / "vb_beside.py").write_text(TINY)
    (tmp_path / "lib" / "vb_listed.py").write_text(TINY)
    return tmp_path


def test_run_in_process_finds_modules_beside_the_suite_and_on_python_path(layout):
    outcome = vitbench_cli("run", "suites/suite.yaml", "--in-process", "--static-only",
                           "--out", "out", "--no-plots", cwd=layout)
    assert outcome.code == 0, outcome.stderr[-3000:]
    run = json.loads((layout / "out" / "results.json").read_text(encoding="utf-8"))
    assert {r["name"]: r["status"] for r in run["results"]} == {"beside": "ok", "listed": "ok"}
    assert all(r["counts"]["params"] == 112 for r in run["results"])


def test_profile_of_a_suite_row_finds_its_module(layout):
    outcome = vitbench_cli("profile", "suites/suite.yaml:listed", "--format", "json", cwd=layout)
    assert outcome.code == 0, outcome.stderr[-3000:]
    assert json.loads(outcome.stdout)["params"] == 112


@pytest.mark.parametrize("command", ["profile", "sweep"])
def test_a_model_named_on_the_command_line_is_found_on_python_path(layout, command):
    args = {"profile": ["profile", "python:vb_listed:tiny", "--image-size", "32",
                        "--format", "json"],
            "sweep": ["sweep", "python:vb_listed:tiny", "--image-size", "32,64",
                      "--out", "out"]}[command]
    outcome = vitbench_cli(*args, "--python-path", "lib", cwd=layout)
    assert outcome.code == 0, outcome.stderr[-3000:]
    if command == "sweep":
        sweep = json.loads((layout / "out" / "sweep.json").read_text(encoding="utf-8"))
        assert [p["params_m"] for p in sweep["results"][0]["points"]] == [112e-6, 112e-6]


@pytest.mark.parametrize("command", ["profile", "sweep"])
def test_the_working_directory_is_not_searched(layout, command):
    """A module in the directory vitbench runs from is not imported by a model named on the
    command line: exit 2, one line that says where to put it; the module never ran."""
    marker = layout / "imported.txt"
    (layout / "vb_here.py").write_text(f"open({str(marker)!r}, 'w').close()\n" + TINY)
    args = {"profile": ["profile", "python:vb_here:tiny", "--image-size", "32"],
            "sweep": ["sweep", "python:vb_here:tiny", "--image-size", "32,64", "--out", "out"]}
    outcome = vitbench_cli(*args[command], cwd=layout)
    assert_clean_failure(outcome, 2, "vb_here", "--python-path")
    assert not marker.exists()
