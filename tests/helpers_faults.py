"""The fault corpus's one assertion: a real ``vitbench`` process, given bad input or a hostile
environment, exits with its documented code and one line on stderr, never a traceback.

Each ``tests/test_faults_*.py`` file holds the cases of one area (suites, result files,
output folders, disk, signals, imports, markup); together they are the corpus the
reliability issue asks for (at least 60 cases).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
#: what :class:`vitbench.cli.console.LineLog` prints per stage and row
PROGRESS_LINE = re.compile(r"^\[\d+/\d+\] |^[\w.-]+: writing the reports$")


@dataclass(frozen=True)
class Outcome:
    """What a ``vitbench`` process did: exit code and both streams."""

    code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        """Non-empty stderr lines that are neither warnings nor the progress log of a run
        (``[2/3] name: stage`` lines, printed when stderr is not a terminal)."""
        return [line for line in self.stderr.splitlines()
                if line.strip() and not line.lstrip().startswith("warning:")
                and not PROGRESS_LINE.match(line)]


def vitbench_cli(*args: str, cwd: Optional[Path] = None, env: Optional[dict[str, str]] = None,
                 timeout: float = 300, stdin: Optional[str] = None) -> Outcome:
    """Run ``python -m vitbench ARGS`` as a user would, in ``cwd`` (default: the repository)."""
    full_env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})}
    full_env.pop("VITBENCH_DEBUG", None)
    done = subprocess.run([sys.executable, "-m", "vitbench", *args], cwd=cwd or REPO,
                          env=full_env, capture_output=True, text=True, timeout=timeout,
                          input=stdin, errors="replace")
    return Outcome(done.returncode, done.stdout, done.stderr)


def assert_clean_failure(outcome: Outcome, code: int, *fragments: str) -> str:
    """``outcome`` exited ``code`` with exactly one error line (which names every fragment)
    and no traceback anywhere; returns that line."""
    everything = outcome.stdout + outcome.stderr
    assert "Traceback" not in everything, everything[-3000:]
    assert outcome.code == code, (outcome.code, everything[-3000:])
    lines = outcome.error_lines
    assert len(lines) == 1, lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]
