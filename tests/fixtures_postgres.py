"""A real, throwaway PostgreSQL server for the history tests: initdb in a temp folder, pg_ctl
start listening on a unix socket only (in that folder), stopped and removed at the end.

The binaries are looked up on PATH, then in Debian's /usr/lib/postgresql/*/bin (where the
``postgresql`` package puts them; .ci/run installs it). initdb refuses to run as root, so as
root the server runs as the ``postgres`` user (``nobody`` when there is none) through
``runuser``. Without the binaries or psycopg the tests that need the server are skipped, or
fail when ``VITBENCH_REQUIRE_POSTGRES=1`` (CI), so a missing server never passes silently.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Iterator, Optional

import pytest


def postgres_bindir() -> Optional[Path]:
    """The folder holding initdb, pg_ctl and postgres, or None."""
    found = shutil.which("initdb")
    candidates = ([Path(found).parent] if found else []) + [
        Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for folder in candidates:
        if all((folder / name).exists() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def _unavailable(reason: str) -> None:
    if os.environ.get("VITBENCH_REQUIRE_POSTGRES"):
        pytest.fail(f"VITBENCH_REQUIRE_POSTGRES is set but {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_user() -> tuple[list[str], Optional[tuple[int, int]]]:
    """The command prefix that runs the server unprivileged, and that user's (uid, gid)."""
    if os.geteuid() != 0:
        return [], None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if shutil.which("runuser"):
            return ["runuser", "-u", name, "--"], (entry.pw_uid, entry.pw_gid)
        if shutil.which("setpriv"):
            return (["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}",
                     "--clear-groups"], (entry.pw_uid, entry.pw_gid))
    return [], None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[dict]:
    """``{"host": socket folder, "port": N}`` of a running server (user ``vitbench``, trust)."""
    bindir = postgres_bindir()
    if bindir is None:
        _unavailable("the PostgreSQL binaries (initdb, pg_ctl) are not installed")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg is not installed (pip install 'vitbench[postgres]')")
    prefix, owner = _as_user()
    if os.geteuid() == 0 and owner is None:
        _unavailable("running as root without runuser/setpriv or an unprivileged user")
    root = Path(tempfile.mkdtemp(prefix="vbpg-"))  # short: a socket path has ~100 characters
    if owner is not None:
        os.chown(root, *owner)
    data, port = root / "data", _free_port()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120,
                              cwd=root)

    try:
        made = run(str(bindir / "initdb"), "-D", str(data), "-U", "vitbench", "--auth=trust",
                   "-E", "UTF8", "--no-locale", "-N")
        if made.returncode != 0:
            _unavailable(f"initdb failed: {(made.stderr or made.stdout).strip()[-300:]}")
        started = run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w",
                      "-t", "60", "-o", f"-k {root} -c listen_addresses='' -p {port} "
                      f"-c fsync=off -c full_page_writes=off", "start")
        if started.returncode != 0:
            log = (root / "log").read_text(errors="replace") if (root / "log").exists() else ""
            _unavailable(f"pg_ctl start failed: {(started.stderr + log).strip()[-300:]}")
        yield {"host": str(root), "port": port}
    finally:
        if (data / "postmaster.pid").exists():
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def new_database(server: dict) -> str:
    """A fresh, empty database on ``server``: its SQLAlchemy URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(host=server["host"], port=server["port"], user="vitbench",
                         dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://vitbench@/{name}?host={server['host']}&port={server['port']}"
