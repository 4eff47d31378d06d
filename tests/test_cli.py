"""The command line, through Typer's runner and one real subprocess."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from vitbench.cli import app
from vitbench.records import RunResult
from vitbench.run.runner import run_suite
from vitbench.config.suite import load_suite

runner = CliRunner()


def command_names():
    return sorted(info.name or info.callback.__name__.replace("_", "-")
                  for info in app.registered_commands)


def test_the_help_lists_every_command():
    listed = runner.invoke(app, ["--help"]).output
    assert len(command_names()) >= 13
    assert all(name in listed for name in command_names())


@pytest.mark.parametrize("command", command_names())
def test_every_command_teaches_in_its_help(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output


def test_every_setting_has_its_run_option_with_help_and_default():
    from vitbench.config.spec import Settings

    help_text = " ".join(runner.invoke(app, ["run", "--help"], terminal_width=200).output.split())
    for name, field in Settings.model_fields.items():
        flag = field.json_schema_extra["flag"]
        assert flag in help_text, name
        assert " ".join(field.description.split()) in help_text, name
    assert "[default: 50]" in help_text and "[default: usable CPUs − 1, at least 1]" in help_text


@pytest.mark.parametrize("args, code", [
    (["run", "--no-such-option", "x.yaml"], 2),      # click's usage error
    (["compare", "--no-such-option", "a", "b"], 2),  # never the gate's INCONCLUSIVE (3)
    (["run", "tests/data/tiny.yaml", "--device", "tpu"], 2),
    (["show", "no/such/results.json"], 2),
])
def test_usage_and_input_errors_exit_2_on_every_command(args, code, repo_root, monkeypatch):
    from vitbench.errors import ExitCode

    monkeypatch.chdir(repo_root)
    result = runner.invoke(app, args)
    assert result.exit_code == code == ExitCode.BAD_INPUT != ExitCode.INCONCLUSIVE
    assert "Traceback" not in result.output


def test_an_internal_error_is_one_line_and_exit_4(tmp_path):
    """A crash is neither a failed row (1) nor bad input (2): the entry point says so."""
    script = ("import vitbench.cli.results as r, sys\n"
              "def boom(*a, **k): raise RuntimeError('boom\\nsecond line')\n"
              "import vitbench.records; vitbench.records.RunResult.load = boom\n"
              "sys.argv = ['vitbench', 'show', 'x.json']\n"
              "from vitbench.cli import main; main()\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)
    assert result.returncode == 4
    assert "internal error: RuntimeError: boom" in result.stderr
    assert "Traceback" not in result.stderr and "second line" not in result.stderr


def test_validate_ok_and_broken(tmp_path, repo_root):
    path = repo_root / "suites/lightweight.yaml"
    entries = load_suite(path).models
    unavailable = sum(bool(e.unavailable) for e in entries)
    ok = runner.invoke(app, ["validate", str(path)])
    assert ok.exit_code == 0
    assert (f"{len(entries)} rows, {len(entries) - unavailable} buildable, "
            f"{unavailable} unavailable") in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nmodels:\n  - {name: A, model: timm:resnet18, warmpu: 3}\n")
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2
    assert "bad.yaml: models[0] (A): warmpu: unknown key; did you mean 'warmup'?" in result.output
    assert "Traceback" not in result.output


def test_unknown_model_suggests_close_names(tmp_path):
    suite = tmp_path / "typo.yaml"
    suite.write_text("name: typo\nmodels:\n  - {name: A, model: timm:pvtv2_b0}\n")
    result = runner.invoke(app, ["run", str(suite), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "unknown model 'timm:pvtv2_b0'" in result.output
    assert "timm:pvt_v2_b0" in result.output


def test_models_searches_the_zoos():
    result = runner.invoke(app, ["models", "pvt_v1"])
    assert result.exit_code == 0 and "vitbench:pvt_v1_tiny" in result.output
    assert runner.invoke(app, ["models", "no_such_model_xyz"]).exit_code == 1


def test_bad_option_is_a_one_line_error(repo_root, tmp_path):
    result = runner.invoke(app, ["run", str(repo_root / "tests/data/tiny.yaml"), "--device", "tpu",
                                 "--out", str(tmp_path)])
    assert result.exit_code == 2 and "device" in result.output


def test_run_in_process_writes_every_file(repo_root, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(repo_root / "tests/data/tiny.yaml"), "--in-process",
                                 "--no-plots", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert {"results.json", "results.csv", "results.md"} <= {p.name for p in out.iterdir()}
    run = RunResult.load(out / "results.json")
    vit, later = run.results
    assert vit.status == "ok" and later.status == "unavailable" and later.error == "not built in tests"
    assert vit.latency.summary.n == len(vit.latency.samples_ms) >= 3
    assert vit.gmacs and vit.counts.params and "params_m" in vit.comparisons
    assert run.environment["torch"] and run.environment["cpu"]
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    for column in ("name", "model", "image_size", "batch_size", "device", "dtype", "status",
                   "error", "params_m", "gflops", "latency_ms_median", "latency_ms_p90",
                   "throughput_img_s", "peak_memory_mb", "paper_params_m", "paper_gflops",
                   "delta_params_pct", "delta_gflops_pct"):
        assert column in header


def test_interrupted_run_keeps_finished_rows(repo_root, tmp_path):
    suite = load_suite(repo_root / "tests/data/tiny.yaml")
    suite = suite.model_copy(update={"models": [suite.models[0], suite.models[0].model_copy(
        update={"name": "Again"})]})

    def stop_after_first(kind, index, row, detail):
        if kind == "done" and index == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, out_dir=tmp_path, in_process=True, on_event=stop_after_first)
    run = RunResult.load(tmp_path / "results.json")
    assert [r.status for r in run.results] == ["ok", "interrupted"]
    assert not run.complete


def test_real_subprocess_run(repo_root, tmp_path):
    """The installed entry point, with worker processes, exactly as a user runs it."""
    out = tmp_path / "sub"
    proc = subprocess.run(
        [sys.executable, "-m", "vitbench", "run", "tests/data/tiny.yaml", "--out", str(out)],
        cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "TestViT" in proc.stdout and "unavailable" in proc.stdout
    assert (out / "report.html").is_file() and list((out / "plots").glob("*.png"))
    data = json.loads((out / "results.json").read_text())
    assert data["schema"] == "vitbench.result/2" and data["complete"]
    row = data["results"][0]
    assert row["status"] == "ok" and row["threads"] == 1 and row["memory"]["peak_mib"] is not None
    # timed by the default 3 fresh processes, samples pooled, each process's median kept
    summary = row["latency"]["summary"]
    assert summary["processes"] == 3 and len(summary["process_medians_ms"]) == 3
    assert len(row["latency"]["samples_ms"]) >= 9 and summary["process_spread"] >= 1.0


def test_out_that_is_a_file_is_a_one_line_error(repo_root, tmp_path):
    target = tmp_path / "a-file"
    target.write_text("x")
    result = runner.invoke(app, ["run", str(repo_root / "tests/data/tiny.yaml"), "--out", str(target)])
    assert result.exit_code == 2 and "cannot create the folder (it is a file)" in result.output
