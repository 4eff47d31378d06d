"""The CI question "did this PR slow the model down?", answered as the example workflow
(examples/github/vitbench-gate.yml) answers it: two git revisions of a user's model code, the
base checked out in its own worktree, each side's suite importing its own revision through
``python_path``, timed in lockstep by ``vitbench ab``. The head revision does three times the
convolutions with the same weights, so the verdict must be a latency regression."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

MODEL = textwrap.dedent('''\
    """A small network; the second revision runs its convolutions PASSES times."""
    from torch import nn

    PASSES = 1


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(32, 32, 3, padding=1), nn.ReLU())
            self.head = nn.Linear(32, 10)

        def forward(self, x):
            for _ in range(PASSES):
                y = self.body(x)
            return self.head(y.mean((2, 3)))


    def build(**kwargs):
        return Net()
    ''')
SUITE = textwrap.dedent("""\
    name: mynet
    python_path: [".."]  # the repository root of whichever checkout holds this file
    defaults: {image_size: 64, threads: 1}
    models:
      - {name: MyNet, model: "python:mynet.models:build"}
    """)


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                   cwd=repo, check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_ab_between_two_git_revisions_finds_the_slower_head(tmp_path):
    repo = tmp_path / "repo"
    (repo / "mynet").mkdir(parents=True)
    (repo / "bench").mkdir()
    (repo / "mynet" / "__init__.py").write_text("")
    (repo / "mynet" / "models.py").write_text(MODEL)
    (repo / "bench" / "suite.yaml").write_text(SUITE)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    (repo / "mynet" / "models.py").write_text(MODEL.replace("PASSES = 1", "PASSES = 3"))
    git(repo, "commit", "-qam", "head: three passes")
    git(repo, "worktree", "add", "-q", str(tmp_path / "base"), "HEAD~1")

    done = subprocess.run(
        [sys.executable, "-m", "vitbench", "ab", str(tmp_path / "base/bench/suite.yaml"),
         str(repo / "bench/suite.yaml"), "--metrics", "latency", "--runs", "7", "--threads",
         "1", "--no-confirm", "--out", str(tmp_path / "ab"), "--json", str(tmp_path / "v.json")],
        cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    assert done.returncode == 1, (done.returncode, done.stdout[-3000:], done.stderr[-2000:])
    verdict = json.loads((tmp_path / "v.json").read_text())
    assert verdict["overall"] == "FAIL" and verdict["exit_code"] == 1
    mynet = [v for v in verdict["verdicts"] if v["model"] == "MyNet" and v["metric"] == "latency_ms"]
    assert mynet and mynet[0]["verdict"] == "FAIL" and mynet[0]["ratio"] > 1.5, mynet
