"""The everyday command-line surface: version, machine-readable output, one model without a
suite file, and the impossible settings refused before any model is built."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from vitbench import __version__
from vitbench.cli import app


def test_version_prints_one_line_and_exits_0():
    done = CliRunner().invoke(app, ["--version"])
    assert done.exit_code == 0
    assert re.fullmatch(rf"vitbench {re.escape(__version__)} \(Python 3\.\d+\.\d+\)\n", done.output)


def test_close_names_put_the_meant_variant_first():
    from vitbench.build.zoo import ZOO_TABLE, suggest

    timm_names = ZOO_TABLE["timm"].names()
    assert suggest("pvt_v2_bzero", timm_names)[0] == "pvt_v2_b0"  # spelled number, not b5
    assert suggest("deit_tiny", timm_names)[0] == "deit_tiny_patch16_224"  # typed a prefix
    assert suggest("vit_smal_patch16_224", timm_names)[0] == "vit_small_patch16_224"
    assert suggest("MobileViT-XXS", timm_names)[0] == "mobilevit_xxs"


def test_a_run_piped_to_a_log_prints_one_plain_line_per_stage_and_row(repo_root, tmp_path):
    """CI sets FORCE_COLOR; the log must still get lines as rows finish, not redraw frames."""
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "vitbench", "run", str(repo_root / "tests/data/tiny.yaml"),
         "--static-only", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "FORCE_COLOR": "1", "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    log = done.stderr.splitlines()
    assert "[1/2] TestViT: start (timm:test_vit)" in log
    assert any(re.fullmatch(r"\[1/2\] TestViT: ok( \(\d+ s\))?", line) for line in log), log
    assert "[2/2] Later: unavailable, not built in tests" in log
    assert "\r" not in done.stderr and "\x1b[2K" not in done.stderr  # no progress redraws


def test_cuda_on_a_machine_without_it_is_one_line_before_anything_is_built(repo_root, tmp_path):
    import pytest
    import torch

    from helpers_faults import assert_clean_failure, vitbench_cli

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    outcome = vitbench_cli("run", str(repo_root / "tests/data/tiny.yaml"), "--device", "cuda",
                           "--out", str(tmp_path / "run"))
    assert_clean_failure(outcome, 2, "device cuda asked for (TestViT)", "--device cpu")
    assert not (tmp_path / "run").exists()


def test_an_unknown_model_names_the_file_the_row_and_the_meant_variant_first(tmp_path):
    from helpers_faults import assert_clean_failure, vitbench_cli

    suite = tmp_path / "typo.yaml"
    suite.write_text("name: typo\nmodels:\n  - {name: PVTv2-B0, model: timm:pvt_v2_bzero}\n")
    for command in ("run", "validate"):
        line = assert_clean_failure(vitbench_cli(command, str(suite)), 2,
                                    f"{suite}: ", "PVTv2-B0", "unknown model 'timm:pvt_v2_bzero'")
        assert line.index("timm:pvt_v2_b0") < line.index("timm:pvt_v2_b1"), line


def test_one_model_without_a_suite_file_prints_one_json_document_and_saves_its_suite(tmp_path):
    import json

    from helpers_faults import vitbench_cli
    from vitbench.config.suite import load_suite

    saved = tmp_path / "ran.yaml"
    outcome = vitbench_cli("run", "--model", "test_vit", "--model", "timm:test_vit",
                           "--static-only", "--json", "--out", str(tmp_path / "run"),
                           "--save-suite", str(saved), "--batch-size", "2", cwd=tmp_path)
    assert outcome.code == 0, outcome.stderr
    run = json.loads(outcome.stdout)  # the whole of stdout is the document
    assert run["schema"] == "vitbench.result/2" and run["suite"]["name"] == "models"
    [row] = run["results"]  # a model named twice (bare and qualified) runs once
    assert (row["name"], row["model"], row["status"]) == ("test_vit", "timm:test_vit", "ok")
    assert row["image_size"] == [160, 160]  # timm's default input size for the model
    suite = load_suite(saved)  # what ran, as a suite file: the --batch-size folded in
    assert suite.models[0].model == "timm:test_vit" and suite.defaults.batch_size == 2


def test_run_needs_a_suite_or_a_model_but_not_both(repo_root):
    from helpers_faults import assert_clean_failure, vitbench_cli

    assert_clean_failure(vitbench_cli("run"), 2, "missing SUITE")
    assert_clean_failure(vitbench_cli("run", str(repo_root / "tests/data/tiny.yaml"), "--model",
                                      "resnet18"), 2, "not both")
    assert_clean_failure(vitbench_cli("run", "--model", "nozoo:thing"), 2, "unknown zoo 'nozoo'")


def test_the_command_line_starts_without_torch_scipy_or_pandas():
    """Every `vitbench` process (and the fault corpus's hundreds) pays its imports: a bad
    suite should be answered in a fraction of a second, not after loading scipy (~2 s)."""
    import subprocess
    import sys

    code = ("import sys, vitbench.cli, vitbench.cli.console; "
            "print(sorted(m for m in ('torch', 'scipy', 'pandas', 'matplotlib', 'timm') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_table_commands_speak_json_and_can_be_quiet(repo_root, tmp_path):
    import json
    import shutil

    from typer.testing import CliRunner

    runner = CliRunner()
    data = repo_root / "tests" / "data"

    def stdout_of(*args, code=0):
        done = runner.invoke(app, list(map(str, args)))
        assert done.exit_code == code, done.output
        return done.stdout

    assert json.loads(stdout_of("models", "pvt_v2_b0", "--json")) == {"timm": ["pvt_v2_b0"]}
    assert "timm:pvt_v2_b0" in stdout_of("models", "pvt_v2_b", "--quiet").splitlines()
    checked = json.loads(stdout_of("validate", data / "tiny.yaml", tmp_path / "missing.yaml",
                                   "--json", code=2))
    assert [c["ok"] for c in checked] == [True, False] and checked[0]["buildable"] == 1
    agreement = json.loads(stdout_of("agreement", data / "report_cpu_b1.json", "--json"))
    assert agreement["total"]["rows"] > 0 and "share_within" in agreement["total"]
    assert stdout_of("agreement", data / "report_cpu_b1.json", "--quiet") == ""
    # a suite's folder of runs: `show` picks the newest
    for stamp in ("20261201T000000Z", "20261202T000000Z"):
        (tmp_path / "suite" / stamp).mkdir(parents=True)
        shutil.copy(data / "report_cpu_b1.json", tmp_path / "suite" / stamp / "results.json")
    shown = json.loads(stdout_of("show", tmp_path / "suite", "--json"))
    assert shown["schema"] == "vitbench.result/2"
    assert stdout_of("show", tmp_path / "suite", "--quiet") == ""
    assert "latest run" in runner.invoke(app, ["show", str(tmp_path / "suite")]).stderr


def test_every_help_page_reads_at_80_columns():
    """Examples keep their lines (click's no-rewrap marker) and nothing runs past 80."""
    from typer.testing import CliRunner

    runner = CliRunner()
    commands = ["run", "validate", "models", "show", "report", "agreement", "compare",
                "baseline", "ab", "gate-selftest", "profile", "sweep", "selfcheck", "schema"]
    for command in [None, *commands]:
        args = [command, "--help"] if command else ["--help"]
        text = runner.invoke(app, args, env={"COLUMNS": "80"}, terminal_width=80).stdout
        assert text.startswith("Usage:"), (command, text[:300])
        long_lines = [line for line in text.splitlines() if len(line) > 80]
        assert long_lines == [], (command, long_lines)
    run_help = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "80"}).stdout
    assert "\n    vitbench run suites/lightweight.yaml\n" in run_help  # an example, unwrapped
