"""vitbench sweep: size parsing, the log-log exponent fit, and real counts at small sizes."""

from __future__ import annotations

import math

import pytest

from vitbench.tools.sweep import SweepError, fit_exponent, parse_sizes, sweep


def test_parse_range_list_and_hxw():
    assert parse_sizes("224:448:112") == [(224, 224), (336, 336), (448, 448)]
    assert parse_sizes("224,384") == [(224, 224), (384, 384)]
    assert parse_sizes("512x1024, 256x512") == [(512, 1024), (256, 512)]


@pytest.mark.parametrize("bad", ["", "224", "448:224:32", "224:448:0", "a,b", "224,224", "0,224"])
def test_parse_rejects_bad_specs(bad):
    with pytest.raises(SweepError, match="--image-size"):
        parse_sizes(bad)


def test_fit_recovers_a_power_law_exactly():
    tokens = [100.0, 400.0, 1600.0, 6400.0]
    fit = fit_exponent(tokens, [3.0 * t ** 1.5 for t in tokens])
    assert fit.exponent == pytest.approx(1.5)
    assert fit.r2 == pytest.approx(1.0)
    assert fit_exponent(tokens, [None, None, 1.0, None]) is None


def test_vit_cost_grows_faster_than_pvtv2():
    """Global attention: ViT's attention term is quadratic in tokens; its total exponent is
    above PVTv2's (spatial-reduction attention is N²/R²: same exponent, far smaller share)."""
    sizes = [(64, 64), (128, 128), (256, 256)]
    vit = sweep("timm:test_vit", sizes)
    pvt = sweep("timm:pvt_v2_b0", sizes)
    for result in (vit, pvt):
        assert all(p.error is None for p in result.points), [p.error for p in result.points]
    assert vit.fits["attention"].exponent == pytest.approx(2.0, abs=0.05)
    assert vit.fits["rest"].exponent == pytest.approx(1.0, abs=0.05)
    assert vit.fits["total"].exponent > pvt.fits["total"].exponent
    # The local exponent rises with size as attention takes a larger share.
    local = [e for e in vit.local_exponents if e is not None]
    assert local == sorted(local) and not any(math.isnan(e) for e in local)


def test_cli_writes_table_csv_and_plot(tmp_path):
    from typer.testing import CliRunner

    from vitbench.cli import app

    result = CliRunner().invoke(app, ["sweep", "timm:test_vit", "--image-size", "64,128",
                                      "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "fitted exponent" in result.output
    for name in ("sweep.csv", "sweep.json", "sweep.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_cli_bad_size_is_one_line_error():
    from typer.testing import CliRunner

    from vitbench.cli import app

    result = CliRunner().invoke(app, ["sweep", "timm:test_vit", "--image-size", "224"])
    assert result.exit_code == 2
    assert "at least two sizes" in result.output
