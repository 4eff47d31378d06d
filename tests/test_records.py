"""Measured vs printed: the tolerance widens to the printed precision."""

import pytest

from vitbench.records import RunResult, compare
from vitbench.errors import ResultsError


def test_printed_precision_widens_the_tolerance():
    # 0.4 printed with one decimal stands for 0.35-0.45: 0.44 is 10% off but consistent.
    c = compare(0.44, 0.4, 1, 5.0)
    assert c.within_tolerance and c.matches_printed
    assert c.tolerance_pct == pytest.approx(12.5)
    assert not compare(0.46, 0.4, 1, 5.0).within_tolerance


def test_default_tolerance_is_five_percent_for_precise_values():
    assert compare(104.9, 100.0, 1, 5.0).within_tolerance
    c = compare(105.2, 100.0, 1, 5.0)
    assert not c.within_tolerance and c.delta_pct == pytest.approx(5.2)
    assert compare(8.769, 8.7, 1, 5.0).matches_printed is False
    assert compare(8.741, 8.7, 1, 5.0).matches_printed is True


def test_missing_measurement_has_no_verdict():
    c = compare(None, 3.7, 1, 5.0)
    assert c.within_tolerance is None and c.delta_pct is None


def test_results_file_errors(tmp_path):
    with pytest.raises(ResultsError, match="no such file"):
        RunResult.load(tmp_path / "x.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ResultsError, match="not JSON"):
        RunResult.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"schema": "other/9"}')
    with pytest.raises(ResultsError, match="schema"):
        RunResult.load(tmp_path / "other.json")
