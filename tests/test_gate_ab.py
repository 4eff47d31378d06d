"""``vitbench ab``'s bookkeeping: run order, the folder layout (written and read back), the
up-front warning. (Real lockstep workers: tests/test_lockstep.py.)"""

from __future__ import annotations

import json

import pytest

from helpers_gate import row, run
from vitbench.config.spec import ModelEntry, Suite
from vitbench.gate import GateError
from vitbench.gate.ab import (LOCKSTEP, PAIRED_FILE, RUNS, interleaved_order,
                              load_ab_dir, run_folder, too_few_runs_warning)


def test_interleaved_order():
    assert "".join(interleaved_order(4)) == "ABBAABBA"


def test_an_ab_folder_reads_back_its_stage_1_runs_and_ratios(tmp_path):
    for index in range(3):
        for label, latency in (("A", 10.0), ("B", 11.0 + index)):
            run(row(latency=latency)).save(
                run_folder(tmp_path, "1", index, label, LOCKSTEP) / "results.json")
    # a confirmation stage is not part of the measurement as first decided
    run(row(latency=99.0)).save(run_folder(tmp_path, "2", 0, "B", LOCKSTEP) / "results.json")
    (tmp_path / PAIRED_FILE).write_text(json.dumps({"m": [0.1, 0.2, 0.3]}))
    measured = load_ab_dir(tmp_path)
    assert [r.results[0].latency.samples_ms[0] for r in measured.runs_b] == [11.0, 12.0, 13.0]
    assert len(measured.runs_a) == 3 and measured.paired == {"m": [0.1, 0.2, 0.3]}
    assert run_folder(tmp_path, "1", 7, "A", RUNS).name == "stage1-07-A"
    assert run_folder(tmp_path, "2", 7, "B", LOCKSTEP).name == "stage2-round07-B"


def test_a_folder_without_runs_is_bad_input(tmp_path):
    with pytest.raises(GateError, match="no stage1-"):
        load_ab_dir(tmp_path)


def test_too_few_runs_are_flagged_before_measuring():
    suite = Suite(name="s", models=[ModelEntry(name=f"m{i}", model="timm:resnet18")
                                    for i in range(5)])
    # 5 models → 10 noisy tests at α = 0.01, M/α = 1000: 10 lockstep rounds (2^10 > 1000),
    # or 7 fresh runs per side (C(14, 7) = 3432 > 1000 ≥ C(12, 6) = 924)
    assert too_few_runs_warning(suite, suite, 10, 0.01, LOCKSTEP) is None
    assert "Use --runs 10" in too_few_runs_warning(suite, suite, 9, 0.01, LOCKSTEP)
    assert too_few_runs_warning(suite, suite, 7, 0.01, RUNS) is None
    assert "Use --runs 7" in too_few_runs_warning(suite, suite, 6, 0.01, RUNS)
