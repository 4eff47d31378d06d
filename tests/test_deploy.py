"""Deploy-mode counting (``reparameterize``): RepVGG/MobileOne-style models are folded into
their inference form before counting; a model with nothing to fold is measured as built."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from vitbench.build.deploy import (  # noqa: E402
    AS_BUILT, NOTHING_TO_REPARAMETERIZE, REPARAMETERIZED, reparameterize)


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_fastvit_folds_to_timms_own_deploy_build():
    """Folding the training-time FastViT-T8 gives exactly the params of timm's
    ``inference_mode=True`` build (the deploy model), and the same outputs."""
    torch.manual_seed(0)
    model = timm.create_model("fastvit_t8").eval()
    before = _params(model)
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        expected = model(x)
        outcome = reparameterize(model)
        folded = outcome.module(x)
    assert outcome.mode == REPARAMETERIZED and outcome.folded_modules > 0
    deploy = timm.create_model("fastvit_t8", inference_mode=True)
    assert _params(outcome.module) == _params(deploy) < before
    assert torch.allclose(folded, expected, rtol=1e-3, atol=1e-4)


def test_plain_model_is_unchanged_and_says_so():
    torch.manual_seed(0)
    model = timm.create_model("test_vit").eval()
    before = _params(model)
    outcome = reparameterize(model)
    assert outcome.mode == NOTHING_TO_REPARAMETERIZE and outcome.folded_modules == 0
    assert outcome.module is model and _params(model) == before


def test_root_with_its_own_method_is_folded():
    """A model whose root (not a child) has ``switch_to_deploy`` is switched too."""

    class Root(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)

        def switch_to_deploy(self):
            del self.b

    outcome = reparameterize(Root())
    assert outcome.mode == REPARAMETERIZED and _params(outcome.module) == 20


def test_run_reparameterize_records_the_mode(tmp_path):
    """``vitbench run --reparameterize`` (one process, the workers' measure_job): MobileOne-S0 counts timm's published
    deploy figures (2.08 M params, 0.28 GMACs) instead of its 5.29 M training form; a plain
    model is recorded as having nothing to fold, not failed; the CSV's last column says which."""
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "vitbench", "run", "--model", "timm:mobileone_s0",
         "--model", "timm:test_vit", "--static-only", "--reparameterize",
         "--flops-convention", "fvcore", "--no-plots", "--in-process", "--out", str(out),
         "--json"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r["model"]: r for r in json.loads(proc.stdout)["results"]}
    mobileone = rows["timm:mobileone_s0"]
    assert mobileone["reparameterization"] == REPARAMETERIZED
    assert round(mobileone["counts"]["params"] / 1e6, 2) == 2.08
    assert round(mobileone["counts"]["gmacs"], 2) == 0.28
    plain = rows["timm:test_vit"]
    assert plain["status"] == "ok" and plain["reparameterization"] == NOTHING_TO_REPARAMETERIZE
    lines = list(csv.reader(io.StringIO((out / "results.csv").read_text())))
    column = lines[0].index("reparameterization")
    assert column > lines[0].index("run_id")  # appended after the v5 columns, never inserted
    assert {line[column] for line in lines[1:]} == {REPARAMETERIZED, NOTHING_TO_REPARAMETERIZE}


def test_rows_not_asking_are_as_built():
    from tests.jobs import small_job
    from vitbench.records import ModelResult

    assert ModelResult.for_job(small_job("timm:test_vit")).reparameterization == AS_BUILT
    asked = small_job("timm:test_vit", reparameterize=True)
    assert ModelResult.for_job(asked).reparameterization is None  # the worker fills it in
