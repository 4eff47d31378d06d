"""The self-contained HTML report, and a headless-Chromium render when chromium is present."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from vitbench import report
from vitbench.report.html import to_html
from vitbench.report.merge import load_runs

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[1]


def _runs():
    runs, _ = load_runs([DATA / "report_cpu_b1.json", DATA / "report_synthetic_cuda.json"])
    return runs


def test_html_is_self_contained_and_sortable():
    page = to_html(_runs(), plots=[("p", "A plot", "caption", "<svg xmlns='x'></svg>")],
                   skipped=[("q", "no data")])
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing from the network
    assert '<table class="sortable">' in page and "<script>" in page
    # latency, img/s and memory under each device (img/s at batch 1 too, as the terminal)
    assert 'colspan="3" scope="colgroup">CPU</th>' in page
    assert page.count(">img/s</th>") == 2
    assert "data:image/svg+xml;base64," in page and "q: not drawn (no data)" in page
    assert 'id="fn1"' in page and "CUDA out of memory" in page


#: ``.ci/run`` installs Chromium and sets this, so CI fails rather than skips without it.
CHROMIUM_REQUIRED = os.environ.get("VITBENCH_REQUIRE_CHROMIUM") == "1"
HAVE_CHROMIUM = any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome"))


@pytest.mark.skipif(not (HAVE_CHROMIUM or CHROMIUM_REQUIRED),
                    reason="chromium not installed (apt-get install -y chromium)")
def test_html_renders_headless(tmp_path):
    assert HAVE_CHROMIUM, "VITBENCH_REQUIRE_CHROMIUM=1 but no chromium on PATH"
    report.write_reports(_runs(), tmp_path, formats=("html",))
    shot = tmp_path / "shot.png"
    done = subprocess.run([str(ROOT / "scripts" / "screenshot_report.sh"),
                           str(tmp_path / "report.html"), str(shot), "1200x900"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 30_000  # a page, not a blank
