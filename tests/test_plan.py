"""Planning a suite's rows: a batch sweep gives one row (and one job) per batch size,
command-line overrides reach the jobs, and bad timing settings name the entry and field."""

from __future__ import annotations

import pytest

SWEEP = """
name: sweep
defaults: {threads: 1, image_size: 32}
models:
  - {name: A, model: "python:tests.fixtures_models:tiny", batch_size: [1, 8, 64]}
  - {name: B, model: "python:tests.fixtures_models:tiny", batch_size: max, device: cpu}
  - {name: C, model: "python:tests.fixtures_models:tiny", target_ci_pct: 2, mode: throughput,
     channels_last: true, compile: false}
  - {name: D, unavailable: "no code", batch_size: [1, 2]}
"""


def test_a_batch_sweep_plans_one_row_per_batch_size():
    from vitbench.config.plan import plan
    from vitbench.config.suite import parse_suite

    planned = plan(parse_suite(SWEEP))
    keys = [(p.row.name, p.row.batch_size) for p in planned]
    assert keys == [("A", 1), ("A", 8), ("A", 64), ("B", 0), ("C", 1), ("D", 1)]
    assert [p.job.batch_size for p in planned[:3]] == [1, 8, 64]
    assert planned[3].job.max_batch and planned[3].row.batch_size_search == {"requested": "max"}
    c = planned[4].job
    assert (c.target_ci_pct, c.mode, c.channels_last, c.compile) == (2, "throughput", True, None)
    assert planned[4].row.mode == "throughput" and planned[4].row.channels_last is True
    assert planned[5].job is None and planned[5].row.status == "unavailable"
    static = plan(parse_suite(SWEEP), static_only=True)
    assert [(p.row.name, p.row.batch_size) for p in static][:2] == [("A", 1), ("B", 0)]


def test_command_line_overrides_reach_the_job():
    from vitbench.config.plan import plan
    from vitbench.config.suite import parse_suite

    planned = plan(parse_suite(SWEEP), {"batch_size": [2, 4], "target_ci_pct": 1.5,
                                        "compile": "max-autotune", "mode": "latency"})
    assert [(p.row.name, p.row.batch_size) for p in planned][:4] == [
        ("A", 2), ("A", 4), ("B", 2), ("B", 4)]
    assert planned[0].job.target_ci_pct == 1.5 and planned[0].job.compile == "max-autotune"


@pytest.mark.parametrize("bad, message", [
    ("batch_size: [1, 0]", "greater than or equal to 1"),
    ("batch_size: [1, 1]", "repeat"),
    ("batch_size: many", "'max'"),
    ("target_ci_pct: 0", "greater than 0"),
    ("compile: fast", "compile"),
])
def test_bad_timing_settings_name_the_field(bad, message):
    from vitbench.errors import SuiteError
    from vitbench.config.suite import parse_suite

    text = f"name: x\nmodels:\n  - {{name: A, model: timm:resnet18, {bad}}}\n"
    with pytest.raises(SuiteError) as info:
        parse_suite(text, "x.yaml")
    assert "models[0] (A)" in str(info.value) and message in str(info.value)
