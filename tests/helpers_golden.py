"""Golden files: one way to compare and to regenerate them.

A golden never writes itself: a missing or changed file fails. Regenerate on purpose with
``VITBENCH_UPDATE_GOLDEN=1 pytest ...`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

UPDATE_GOLDEN = os.environ.get("VITBENCH_UPDATE_GOLDEN") == "1"


def assert_matches_golden(path: Path, text: str) -> None:
    """``text`` equals the golden at ``path`` byte for byte (written first when regenerating)."""
    if UPDATE_GOLDEN:
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"{path.name} is missing; create it with VITBENCH_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), (
        f"{path.name} changed; if intended, regenerate with VITBENCH_UPDATE_GOLDEN=1")
