"""The self-test's analysis: resampled trials on measured-like values, and re-analysing a
saved ``ab`` folder (the measuring itself is ``vitbench gate-selftest``, minutes long)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers_gate import row, run
from vitbench.gate import GateError
from vitbench.gate.ab import PAIRED_FILE, run_folder
from vitbench.gate.verdict import LOCKSTEP
from vitbench.gate.selftest import (SELFTEST_FILE, resampled_trials, run_selftest,
                                    selftest_suites, summary_lines)


def test_resampled_trials_on_measured_like_values():
    values = list(5.0 * np.exp(np.random.default_rng(0).normal(0, 0.015, 30)))
    out = resampled_trials(values, n=12, trials=40, shifts=(0.0, 0.2, -0.1), family=10)
    assert out["shifts"]["+0%"]["fail_rate"] == 0
    assert out["shifts"]["+20%"]["fail_rate"] == 1
    assert out["shifts"]["-10%"]["fail_rate"] == 0
    assert out["shifts"]["+20%"]["median_abs_ratio_error_pp"] < 2
    with pytest.raises(ValueError):
        resampled_trials(values[:10], n=12)


def test_paired_resampled_trials():
    pool = list(np.random.default_rng(11).normal(0, 0.03, 48))
    out = resampled_trials(pool, n=12, trials=200, shifts=(0.0, 0.20), paired=True)
    assert out["design"] == "lockstep"
    assert out["shifts"]["+0%"]["fail_rate"] == 0.0
    assert out["shifts"]["+20%"]["fail_rate"] == 1.0


def test_an_unknown_injection_is_bad_input():
    with pytest.raises(GateError, match="unknown injection 'lat7'"):
        selftest_suites(["aa", "lat7"])


def test_a_saved_lockstep_folder_is_reanalysed_without_measuring(tmp_path):
    """12 rounds of an unchanged row and a +20 % row, their per-round ratios saved."""
    rng = np.random.default_rng(3)
    aa, lat20 = rng.normal(0, 0.02, 12), np.log(1.2) + rng.normal(0, 0.02, 12)
    for index in range(12):
        for label in "AB":
            slower = 1.2 if label == "B" else 1.0
            run(row("aa", latency=10.0), row("lat20", latency=10.0 * slower)).save(
                run_folder(tmp_path / "ab", "1", index, label, LOCKSTEP) / "results.json")
    (tmp_path / "ab" / PAIRED_FILE).write_text(json.dumps({"aa": list(aa), "lat20": list(lat20)}))
    result = run_selftest([], tmp_path / "out", from_dir=tmp_path / "ab", trials=20, n=12)
    assert result.real["aa"]["false_alarm"] == [] and result.real["lat20"]["detected"]
    assert result.resampled["pool"] == 12 and result.trial_size == 12
    saved = json.loads((tmp_path / "out" / SELFTEST_FILE).read_text())
    assert saved["schema"] == "vitbench.gate-selftest/1" and saved["runs_per_side"] == 12
    assert (tmp_path / "out" / "verdict.md").is_file()
    lines = summary_lines(result)
    assert "  lat20: detected; " in "\n".join(lines) and lines[-1].endswith(SELFTEST_FILE)
