"""vitbench profile: per-module breakdown, attention split, uncounted ops, exports."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from vitbench.cli import app
from vitbench.errors import VitbenchError
from vitbench.tools.profile import profile_model, render_markdown, resolve_target, table_rows

runner = CliRunner()


@pytest.fixture(scope="module")
def vit_profile():
    return profile_model("timm:test_vit", image_size=(160, 160), max_depth=3)


def test_module_tree_adds_up(vit_profile):
    by_name = {m.name: m for m in vit_profile.modules}
    root = by_name[""]
    assert root.gflops == pytest.approx(vit_profile.gflops)
    assert root.share_pct == pytest.approx(100.0)
    assert root.params == vit_profile.params
    children = [m for m in vit_profile.modules if m.depth == 1]
    assert sum(m.gflops for m in children) == pytest.approx(root.gflops, rel=1e-9)
    assert sum(m.params for m in children) <= root.params  # embeddings live on the root
    assert vit_profile.counters_agree


def test_attention_macs_show_up_in_each_attn_module(vit_profile):
    attns = [m for m in vit_profile.modules if m.name.endswith(".attn")]
    assert attns and all("scaled_dot_product_attention" in m.by_op for m in attns)
    assert all(m.attention_gflops > 0 for m in attns)
    total_attention = sum(m.attention_gflops for m in attns)
    root = vit_profile.modules[0]
    assert root.attention_gflops == pytest.approx(total_attention)
    assert all(m.attention_gflops == 0 for m in vit_profile.modules if m.name.endswith(".mlp"))


def test_depth_limits_the_rows():
    shallow = profile_model("timm:test_vit", image_size=(160, 160), max_depth=1)
    assert max(m.depth for m in shallow.modules) == 1


def test_uncountable_op_appears_in_cli_output(repo_root):
    result = runner.invoke(app, ["profile", "python:tests.test_counting:solver_model", "--format", "md",
                                 "--python-path", str(repo_root)])  # not the working directory
    assert result.exit_code == 0, result.output
    assert "aten::linalg_solve" in result.output
    assert "may carry MACs" in result.output


def test_exports(tmp_path, vit_profile):
    md = "\n".join(render_markdown(vit_profile))
    assert "blocks.0.attn" in md and "convention matmul-only" in md
    rows = table_rows(vit_profile)
    assert rows[0]["module"] == "(model)" and "attention_gflops" in rows[0]

    out = tmp_path / "p.json"
    result = runner.invoke(app, ["profile", "timm:test_vit", "--image-size", "160", "--depth", "2",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["convention"] == "matmul-only" and data["modules"][0]["share_pct"] == 100.0

    result = runner.invoke(app, ["profile", "timm:test_vit", "--image-size", "160", "--depth", "1",
                                 "--format", "csv", "--convention", "fvcore"])
    assert result.exit_code == 0, result.output
    table = [line for line in result.output.splitlines() if not line.startswith("#")]
    parsed = list(csv.DictReader(io.StringIO("\n".join(table))))
    assert parsed[0]["module"] == "(model)" and any(r["module"] == "blocks" for r in parsed)


def test_terminal_tree():
    result = runner.invoke(app, ["profile", "timm:test_vit", "--image-size", "160"])
    assert result.exit_code == 0, result.output
    assert "attn" in result.output and "scaled_dot_product_attention" in result.output
    assert "not counted by" in result.output


def test_suite_row_target(repo_root):
    model, kwargs, size, convention = resolve_target(f"{repo_root}/suites/lightweight.yaml:TNT-Ti")
    assert model == "python:timm.models.tnt:TNT" and kwargs["embed_dim"] == 192
    assert size == (224, 224) and convention == "matmul-only"
    with pytest.raises(VitbenchError, match="unavailable"):
        resolve_target(f"{repo_root}/suites/lightweight.yaml:EMSNet-Tiny")


def test_bad_targets_are_one_line_errors():
    result = runner.invoke(app, ["profile", "notazoo"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["profile", "timm:test_vit", "--format", "xml"])
    assert result.exit_code == 2 and "--format" in result.output
