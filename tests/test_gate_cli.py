"""`vitbench compare` / `baseline` / `gate-selftest --from`: exit codes, files, the Markdown
verdict (golden), the CI baseline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from helpers_gate import BASE12, row, run
from helpers_golden import assert_matches_golden
from vitbench.cli import app
from vitbench.errors import ExitCode
from vitbench.gate import BASELINE_SCHEMA, GateConfig, compare_sides, side_from_results, to_markdown

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent
runner = CliRunner()


def write_runs(folder: Path, runs) -> list[str]:
    paths = []
    for i, result in enumerate(runs):
        path = folder / f"run{i:02d}" / "results.json"
        result.save(path)
        paths.append(str(path))
    return paths


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture()
def base_runs():
    return [run(row("vit", latency=v, params=1000), row("cnn", latency=2 * v, params=50))
            for v in BASE12]


def test_baseline_then_compare_exit_codes(tmp_path, base_runs):
    base_paths = write_runs(tmp_path / "base", base_runs)
    result = invoke("baseline", *base_paths, "--out", tmp_path / "baseline.json")
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "baseline.json").read_text())
    assert doc["schema"] == BASELINE_SCHEMA and doc["runs"] == 12

    same = write_runs(tmp_path / "same", base_runs)
    result = invoke("compare", tmp_path / "baseline.json", *same, "--out", tmp_path / "v")
    assert result.exit_code == 0, result.output
    verdict = json.loads((tmp_path / "v" / "verdict.json").read_text())
    assert verdict["overall"] == "PASS" and verdict["exit_code"] == 0
    assert "Stored-baseline mode (weaker)" in (tmp_path / "v" / "verdict.md").read_text()

    grown = [run(row("vit", latency=v, params=1001), row("cnn", latency=2 * v, params=50))
             for v in BASE12]
    result = invoke("compare", tmp_path / "baseline.json", *write_runs(tmp_path / "grown", grown))
    assert result.exit_code == 1

    slower = [run(row("vit", latency=v * 1.5, params=1000), row("cnn", latency=2 * v, params=50))
              for v in BASE12]
    result = invoke("compare", tmp_path / "baseline.json", *write_runs(tmp_path / "slow", slower),
                    "--json", tmp_path / "slow.json")
    assert result.exit_code == 1
    verdicts = json.loads((tmp_path / "slow.json").read_text())["verdicts"]
    assert [v["verdict"] for v in verdicts if v["model"] == "vit" and v["metric"] == "latency_ms"] == ["FAIL"]


def test_inconclusive_and_not_comparable_exit_3_unless_mapped(tmp_path, base_runs):
    base = write_runs(tmp_path / "base", base_runs[:1])
    new = [run(row("vit", latency=1.0), row("brand-new", latency=1.0))]
    cand = write_runs(tmp_path / "cand", new)
    assert invoke("compare", base[0], *cand).exit_code == 3 == ExitCode.INCONCLUSIVE
    result = invoke("compare", base[0], *cand, "--on-inconclusive", "pass")
    assert result.exit_code == 0
    assert "NOT_COMPARABLE" in result.output  # listed even when mapped to pass
    assert invoke("compare", base[0], *cand, "--on-inconclusive", "regression").exit_code == 1
    # static-only comparison: latency of one run each would be INCONCLUSIVE (too few runs)
    same = write_runs(tmp_path / "same", base_runs[:1])
    assert invoke("compare", base[0], *same).exit_code == 3
    assert invoke("compare", base[0], *same, "--metrics", "params,gflops").exit_code == 0
    # the verdict file records the code it implies
    invoke("compare", base[0], *same, "--json", tmp_path / "v.json")
    assert json.loads((tmp_path / "v.json").read_text())["exit_code"] == 3


def test_a_mistyped_option_is_a_usage_error_never_an_inconclusive_verdict(tmp_path, base_runs):
    base = write_runs(tmp_path / "base", base_runs[:1])[0]
    usage = invoke("compare", "--no-such-option", base, base)
    assert usage.exit_code == 2 == ExitCode.BAD_INPUT
    inconclusive = invoke("compare", base, base)  # one run a side: latency INCONCLUSIVE
    assert inconclusive.exit_code == 3 == ExitCode.INCONCLUSIVE
    assert usage.exit_code != inconclusive.exit_code


def test_bad_input_exits_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = invoke("compare", bad, bad)
    assert result.exit_code == 2 and "not JSON" in result.output
    missing = tmp_path / "missing.json"
    result = invoke("compare", missing, missing)
    assert result.exit_code == 2 and "no such file" in result.output
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"schema": "something/9"}))
    assert invoke("compare", other, other).exit_code == 2
    good = write_runs(tmp_path / "g", [run(row("vit", latency=1.0))])[0]
    assert invoke("compare", good, bad).exit_code == 2  # a corrupt candidate too
    assert invoke("compare", good, good, "--on-inconclusive", "maybe").exit_code == 2
    assert invoke("compare", good, good, "--metrics", "speed").exit_code == 2
    assert invoke("compare", good, good, "--alpha", "2").exit_code == 2
    assert invoke("baseline", bad, "--out", tmp_path / "b.json").exit_code == 2
    assert invoke("baseline", missing, "--out", tmp_path / "b.json").exit_code == 2
    assert not (tmp_path / "b.json").exists()


def test_metrics_take_the_verdict_names_and_the_short_ones(tmp_path, base_runs):
    paths = write_runs(tmp_path / "runs", base_runs)
    for metrics in ("latency_ms,peak_memory_mb", "latency,memory"):
        invoke("compare", paths[0], *paths[1:], "--metrics", metrics, "--json", tmp_path / "v.json")
        verdict = json.loads((tmp_path / "v.json").read_text())
        assert verdict["config"]["metrics"] == ["latency_ms", "peak_memory_mb"]
        assert {v["metric"] for v in verdict["verdicts"]} == {"latency_ms"}


def golden_report():
    """A fixed comparison exercising every verdict."""
    rng = np.random.default_rng(11)
    a_vals = list(8.0 * np.exp(rng.normal(0, 0.01, 12)))
    noisy = list(8.0 * np.exp(rng.normal(0, 0.10, 24)))
    runs_a, runs_b = [], []
    for i in range(12):
        runs_a.append(run(row("ViT-T", latency=a_vals[i], params=5_700_000, gflops=1.26),
                          row("ResNet-18", latency=a_vals[i] * 2, params=11_689_512, gflops=1.82),
                          row("MobileNet", latency=a_vals[i] / 2, params=2_500_000),
                          row("Noisy", latency=noisy[i], params=10),
                          row("Dropped", latency=1.0)))
        runs_b.append(run(row("ViT-T", latency=a_vals[11 - i] * 1.2, params=5_700_000, gflops=1.26),
                          row("ResNet-18", latency=a_vals[11 - i] * 2 * 0.85, params=11_689_000,
                              gflops=1.80),
                          row("MobileNet", latency=a_vals[11 - i] / 2, params=2_500_000,
                              counter="torch.utils.flop_counter"),
                          row("Noisy", latency=noisy[12 + i], params=10),
                          row("Added", latency=1.0)))
    return compare_sides(side_from_results(runs_a, "main"), side_from_results(runs_b, "PR"),
                         GateConfig(), mode="ab")


def test_markdown_matches_golden():
    assert_matches_golden(DATA / "gate_golden.md", to_markdown(golden_report()))


def test_verdict_json_keeps_its_keys(tmp_path, base_runs):
    """``vitbench.verdict/1`` is parsed by CI jobs: the keys stay, whatever the code calls them."""
    paths = write_runs(tmp_path / "runs", base_runs)
    invoke("compare", paths[0], *paths[1:], "--json", tmp_path / "v.json")
    doc = json.loads((tmp_path / "v.json").read_text())
    assert list(doc) == ["schema", "mode", "overall", "counts", "noisy_tests", "config",
                         "baseline", "candidate", "notes", "verdicts", "exit_code"]
    assert list(doc["config"]) == [
        "alpha", "delta_latency_cpu", "delta_latency_cuda", "delta_memory_cpu",
        "memory_floor_mb", "cuda_memory_tol_mb", "quantile", "noise_factor", "ci_level",
        "warn_q", "calibration_tolerance", "calibration_min_shift", "metrics"]
    assert doc["config"]["delta_latency_cpu"] == 0.05 and doc["config"]["memory_floor_mb"] == 4.0
    assert list(doc["verdicts"][0]) == [
        "model", "metric", "kind", "verdict", "reason", "unit", "baseline", "candidate", "ratio",
        "ci_low", "ci_high", "p", "p_holm", "delta", "n_a", "n_b", "noise_sd", "statistic",
        "design", "confirmation"]


def test_gate_selftest_reanalyses_an_ab_folder(tmp_path):
    from vitbench.gate.ab import run_folder
    from vitbench.gate.verdict import LOCKSTEP

    for index in range(12):
        for label in "AB":
            run(row("aa", latency=10.0)).save(
                run_folder(tmp_path / "ab", "1", index, label, LOCKSTEP) / "results.json")
    (tmp_path / "ab" / "paired.json").write_text(json.dumps({"aa": [0.01, -0.01] * 6}))
    result = invoke("gate-selftest", "--from", tmp_path / "ab", "--out", tmp_path / "out",
                    "--trials", 10)
    assert result.exit_code == 0, result.output
    assert "aa: no false alarm" in result.output and (tmp_path / "out" / "selftest.json").is_file()
    assert invoke("gate-selftest", "--from", tmp_path / "empty").exit_code == 2


def test_ci_smoke_baseline_matches_suite():
    from vitbench.config.suite import load_suite

    doc = json.loads((ROOT / "results" / "baselines" / "ci-smoke.json").read_text())
    suite = load_suite(ROOT / "suites" / "ci-smoke.yaml")
    assert doc["schema"] == BASELINE_SCHEMA
    assert sorted(doc["models"]) == sorted(m.name for m in suite.models)
    assert all(m["params"] and m["gflops"] for m in doc["models"].values())
