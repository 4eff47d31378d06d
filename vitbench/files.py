"""Files vitbench writes and reads: one atomic writer, one name for a run's results file,
one UTC stamp. Pure standard library; every module that touches disk goes through here.
"""

from __future__ import annotations

import datetime as _dt
import os
import tempfile
from pathlib import Path

#: The canonical file of a run folder.
RESULTS_FILE = "results.json"


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temp file and a rename: a crash never leaves half
    a file, and readers see the old or the new content, never a mix. The file gets the
    permissions any other new file would (0644 under umask 022), not mkstemp's 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def results_file(path: str | Path) -> Path:
    """A run folder means its ``results.json``; a file path is taken as it is."""
    path = Path(path)
    return path / RESULTS_FILE if path.is_dir() else path


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second (``2026-11-22T01:02:03+00:00``)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def utc_stamp() -> str:
    """A UTC stamp for folder names (``20261122T010203Z``): sorts by time."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
