"""Fault corpus, imports: the code a suite names runs only in workers, and nothing it did not
name is imported (issue 13, Deliver 4 and 8).

* A ``fvcore.py``, ``timm.py`` or ``torch.py`` in the directory ``vitbench run`` starts from
  (which is also the suite's folder here) is never imported: installed packages win.
* A ``python:`` module that calls ``os._exit(7)``, has a syntax error, raises at import or
  lacks the named callable costs its own row (failed, with the reason); the other rows run,
  exit 1, and ``results.json`` holds them all.
* A module that is nowhere on the documented path (the suite's folder, ``python_path:``,
  ``PYTHONPATH``) is refused before anything runs: exit 2, one line naming file and row.
* ``vitbench validate`` locates ``python:`` modules without executing them.

Every run is ``--static-only`` (one worker per row, no timing) to stay cheap.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers_faults import assert_clean_failure, vitbench_cli

#: A module beside the suite that builds a tiny model (the honest row of every run).
HONEST = "import torch\n\n\ndef tiny():\n    return torch.nn.Conv2d(3, 4, 3)\n"


def marker_module(marker: Path, then: str = "") -> str:
    """Module text that records every import of itself in ``marker``, then runs ``then``."""
    return (f"import os, sys\nwith open({str(marker)!r}, 'a') as f:\n"
            f"    f.write(' '.join(sys.argv) + '\\n')\n{then}")


def suite_text(*rows: tuple[str, str], extra: str = "") -> str:
    body = "".join(f"  - {{name: {name}, model: \"{model}\"}}\n" for name, model in rows)
    return (f"name: imports\n{extra}defaults: {{image_size: 32, threads: 1, timeout_s: 300}}\n"
            f"models:\n{body}")


def write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def rows_on_disk(out: Path) -> dict[str, dict]:
    run = json.loads((out / "results.json").read_text(encoding="utf-8"))
    return {row["name"]: row for row in run["results"]}


def assert_no_traceback(outcome) -> None:
    everything = outcome.stdout + outcome.stderr
    assert "Traceback" not in everything, everything[-3000:]


# --- a shadowing module in the working directory -----------------------------------------

@pytest.mark.parametrize("shadow", ["fvcore", "timm", "torch"])
def test_a_same_named_module_in_the_working_directory_is_never_imported(tmp_path, shadow):
    marker = tmp_path / "imported.txt"
    write(tmp_path, {f"{shadow}.py": marker_module(marker, "os._exit(9)\n"),
                     "suite.yaml": suite_text(("ViT", "timm:test_vit"))})
    outcome = vitbench_cli("run", "suite.yaml", "--static-only", "--no-plots", "--out", "out",
                           cwd=tmp_path)
    assert not marker.exists(), f"{shadow}.py was imported by: {marker.read_text()}"
    assert_no_traceback(outcome)
    assert outcome.code == 0, outcome.stdout[-2000:] + outcome.stderr[-2000:]
    assert rows_on_disk(tmp_path / "out")["ViT"]["status"] == "ok"


# --- python: modules that fail at import: one failed row each, the rest runs --------------

BROKEN = {
    "exits7.py": "import os\nos._exit(7)\n",
    "broken_syntax.py": "import os\n\ndef build(:\n    pass\n",
    "raises_at_import.py": "raise RuntimeError('refusing to be imported')\n",
    "noattr.py": "def other():\n    pass\n",
    "honest.py": HONEST,
}
BROKEN_ROWS = [("Exits", "python:exits7:build"), ("Syntax", "python:broken_syntax:build"),
               ("Raises", "python:raises_at_import:build"), ("NoAttr", "python:noattr:build"),
               ("Honest", "python:honest:tiny")]


@pytest.fixture(scope="module")
def broken_run(tmp_path_factory):
    """One run of all the broken modules, started from another folder than the suite's."""
    root = tmp_path_factory.mktemp("broken")
    write(root / "suite", {**BROKEN, "suite.yaml": suite_text(*BROKEN_ROWS)})
    (root / "elsewhere").mkdir()
    outcome = vitbench_cli("run", str(root / "suite" / "suite.yaml"), "--static-only",
                           "--no-plots", "--out", str(root / "out"), cwd=root / "elsewhere")
    return outcome, root / "out"


def test_import_failures_cost_their_rows_and_the_run_exits_1(broken_run):
    outcome, out = broken_run
    assert_no_traceback(outcome)
    assert outcome.code == 1, outcome.stdout[-2000:] + outcome.stderr[-2000:]
    assert not [line for line in outcome.error_lines if line.startswith("error:")]
    assert set(rows_on_disk(out)) == {name for name, _ in BROKEN_ROWS}


@pytest.mark.parametrize("name, fragments", [
    ("Exits", ["worker exited with status 7 while importing exits7"]),
    ("Syntax", ["python:broken_syntax:build: importing broken_syntax raised SyntaxError",
                "line 3"]),
    ("Raises", ["importing raises_at_import raised RuntimeError: refusing to be imported"]),
    ("NoAttr", ["python:noattr:build", "module 'noattr' has no attribute 'build'"]),
])
def test_an_import_failure_is_a_failed_row_with_the_reason(broken_run, name, fragments):
    _, out = broken_run
    row = rows_on_disk(out)[name]
    assert row["status"] == "failed"
    for fragment in fragments:
        assert fragment in row["error"], row["error"]


def test_the_rows_beside_the_failures_still_run(broken_run):
    outcome, out = broken_run
    row = rows_on_disk(out)["Honest"]
    assert row["status"] == "ok", row.get("error")
    assert row["counts"]["params"] == 3 * 4 * 9 + 4


# --- modules that are nowhere on the documented path: refused before anything runs -------

@pytest.mark.parametrize("command", ["run", "validate"])
@pytest.mark.parametrize("model, missing", [
    ("python:nosuchmod:build", "nosuchmod"),
    ("python:honest.sub:build", "honest.sub"),
])
def test_a_module_that_is_not_found_is_bad_input_naming_file_and_row(tmp_path, command, model,
                                                                     missing):
    write(tmp_path, {"honest.py": HONEST,
                     "suite.yaml": suite_text(("Honest", "python:honest:tiny"),
                                              ("Missing", model))})
    args = ["--static-only", "--no-plots", "--out", str(tmp_path / "out")] if command == "run" else []
    outcome = vitbench_cli(command, str(tmp_path / "suite.yaml"), *args, cwd=tmp_path)
    assert_clean_failure(outcome, 2, "suite.yaml", "Missing", missing)
    assert not (tmp_path / "out" / "results.json").exists()


def test_a_python_path_folder_that_does_not_exist_is_bad_input(tmp_path):
    write(tmp_path, {"honest.py": HONEST,
                     "suite.yaml": suite_text(("Honest", "python:honest:tiny"),
                                              extra="python_path: [no_such_folder]\n")})
    outcome = vitbench_cli("validate", str(tmp_path / "suite.yaml"), cwd=tmp_path)
    assert_clean_failure(outcome, 2, "suite.yaml", "python_path", "no_such_folder")


# --- validation executes nothing ---------------------------------------------------------

def test_validate_locates_python_modules_without_importing_them(tmp_path):
    marker = tmp_path / "imported.txt"
    write(tmp_path, {"pkg/__init__.py": marker_module(marker),
                     "pkg/model.py": marker_module(marker, HONEST),
                     "top.py": marker_module(marker, HONEST),
                     "suite.yaml": suite_text(("Top", "python:top:tiny"),
                                              ("Nested", "python:pkg.model:tiny"))})
    outcome = vitbench_cli("validate", "suite.yaml", cwd=tmp_path)
    assert outcome.code == 0, outcome.stdout + outcome.stderr
    assert_no_traceback(outcome)
    assert not marker.exists(), f"imported by: {marker.read_text()}"


# --- the documented path: the suite's folder, python_path:, PYTHONPATH --------------------

def test_python_path_and_pythonpath_folders_are_searched_after_installed_packages(tmp_path):
    marker = tmp_path / "imported.txt"
    shadow = marker_module(marker, "os._exit(9)\n")
    write(tmp_path, {"suite/lib/libmod.py": HONEST, "suite/lib/torch.py": shadow,
                     "env/envmod.py": HONEST, "env/fvcore.py": shadow,
                     "suite/suite.yaml": suite_text(
                         ("FromPythonPath", "python:libmod:tiny"),
                         ("FromEnv", "python:envmod:tiny"), extra="python_path: [lib]\n")})
    outcome = vitbench_cli("run", "suite/suite.yaml", "--static-only", "--no-plots",
                           "--out", "out", cwd=tmp_path, env={"PYTHONPATH": str(tmp_path / "env")})
    assert_no_traceback(outcome)
    assert outcome.code == 0, outcome.stdout[-2000:] + outcome.stderr[-2000:]
    assert not marker.exists(), f"imported by: {marker.read_text()}"
    rows = rows_on_disk(tmp_path / "out")
    assert rows["FromPythonPath"]["status"] == rows["FromEnv"]["status"] == "ok"
