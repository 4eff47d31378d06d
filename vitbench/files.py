"""Files vitbench writes and reads: one atomic writer, one name for a run's results file,
one UTC stamp, and a run's output folder (a fresh one, a lock, what a previous run left).
Pure standard library; every module that writes a file goes through :func:`write_atomic`.

A write that fails (a full disk, a quota, a read-only file system, no permission) raises
:class:`~vitbench.errors.DiskError`: one line naming the path and the cause, never a
traceback; the file keeps its previous content.

Test seam (documented, for ``tests/test_faults_disk.py``): with ``VITBENCH_FAULT_DISK_FULL``
set to ``N`` or ``N:GLOB``, writes of paths matching GLOB (:mod:`fnmatch` on the path as
given; default ``*``) fail with ENOSPC once N of them have succeeded in this process, as on
a disk that fills up. Only a real mount could fill a disk otherwise.
"""

from __future__ import annotations

import atexit
import datetime as _dt
import errno
import fnmatch
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Optional

from vitbench.errors import DiskError, OutputFolderError

#: The canonical file of a run folder.
RESULTS_FILE = "results.json"
#: What ``vitbench run`` writes into its folder: a folder holding any of them holds a run.
RUN_FILES = (RESULTS_FILE, "results.csv", "results.md", "report.html", "plots")
#: The lock a run holds on its folder (:class:`FolderLock`).
LOCK_FILE = ".vitbench.lock"
#: ``N`` or ``N:GLOB``: the test seam described above.
FAULT_ENV = "VITBENCH_FAULT_DISK_FULL"

_fault_writes: dict[str, int] = {}


def cause_of(exc: OSError) -> str:
    """``No space left on device`` → ``no space left on device`` (the text after a colon)."""
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


def _injected_fault(path: Path) -> None:
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    count, _, pattern = spec.partition(":")
    if not fnmatch.fnmatch(str(path), pattern or "*"):
        return
    done = _fault_writes.get(spec, 0)
    if done >= int(count):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    _fault_writes[spec] = done + 1


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temp file beside it, flushed to the disk, then a
    rename: a crash or a full disk never leaves half a file, and readers see the old or the
    new content, never a mix. The file gets the permissions of any new file (0644 under
    umask 022). Any failure raises :class:`DiskError` naming ``path`` and the cause."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp: Optional[Path] = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        while tmp is None:
            candidate = path.with_name(f".{path.name}-{secrets.token_hex(4)}")
            try:  # 0o666 masked by the umask, as open() would: not mkstemp's 0600
                fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                continue
            tmp = candidate
        with os.fdopen(fd, "wb") as handle:
            _injected_fault(path)
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())  # some file systems report a full disk only here
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise DiskError(path, cause_of(exc)) from None
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
    return path


def results_file(path: str | Path) -> Path:
    """A run folder means its ``results.json``; a file path is taken as it is."""
    path = Path(path)
    return path / RESULTS_FILE if path.is_dir() else path


def latest_run(path: str | Path) -> Path:
    """:func:`results_file`, except that a suite's folder of runs (``results/lightweight/``,
    no results.json of its own) means the newest run in it (folders are UTC stamps)."""
    path = Path(path)
    direct = results_file(path)
    if not path.is_dir() or direct.exists():
        return direct
    runs = sorted(path.glob(f"*/{RESULTS_FILE}"), key=lambda p: p.parent.name)
    return runs[-1] if runs else direct


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second (``2026-11-22T01:02:03+00:00``)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def utc_stamp() -> str:
    """A UTC stamp for folder names (``20261122T010203Z``): sorts by time."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def new_folder(path: str | Path) -> Path:
    """Create ``path``, or ``path-2``, ``path-3``, … if it exists: two runs started in the same
    second (or at once) never share a folder; the suffixed name sorts after the plain one.
    OSError (a folder that cannot be created) is the caller's to explain."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    number = 1
    while True:
        candidate = path if number == 1 else path.with_name(f"{path.name}-{number}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            number += 1


def previous_run(folder: Path) -> Optional[str]:
    """What a previous run left in ``folder``, in a few words (``suite lightweight,
    2026-12-02T01:02:03+00:00``), or None when it holds none of :data:`RUN_FILES`."""
    found = [name for name in RUN_FILES if (folder / name).exists()]
    if not found:
        return None
    if RESULTS_FILE in found:
        try:
            data = json.loads((folder / RESULTS_FILE).read_text(encoding="utf-8"))
            suite = data["suite"]["name"] if isinstance(data.get("suite"), dict) else None
            if isinstance(suite, str) and isinstance(data.get("created_utc"), str):
                return f"suite {suite}, {data['created_utc']}"
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
            pass
        return f"an unreadable {RESULTS_FILE}"
    return ", ".join(name + "/" if (folder / name).is_dir() else name for name in found)


def remove_run(folder: Path) -> None:
    """Remove what a run wrote into ``folder`` (:data:`RUN_FILES`, and temp files a crashed
    write left), so no stale report or plot sits beside new results. Other files stay."""
    for name in RUN_FILES:
        target = folder / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
    for name in RUN_FILES:
        for leftover in folder.glob(f".{name}-*"):
            leftover.unlink(missing_ok=True)


class FolderLock:
    """An exclusive ``flock`` on ``folder/.vitbench.lock``, held until :meth:`release` or the
    process ends (the kernel drops it when a process dies, even by SIGKILL, so a stale lock
    file never blocks anyone). The file holds the owner's pid, for the refusal message."""

    def __init__(self, folder: Path, option: str = "--out"):
        import fcntl

        self.path = folder / LOCK_FILE
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.read(fd, 32).decode("ascii", "replace").strip()
                os.close(fd)
                pid = f"pid {owner}" if owner.isdigit() else "pid unknown"
                raise OutputFolderError(
                    f"{option} {folder} is in use by another vitbench run ({pid}): wait for it "
                    f"to finish or choose another folder") from None
            except BaseException:
                os.close(fd)
                raise
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:  # not a file its previous owner unlinked while we waited for it
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self.fd: Optional[int] = fd
        atexit.register(self.release)

    def __enter__(self) -> "FolderLock":
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()

    def release(self) -> None:
        """Remove the lock file, then let go (in that order, so no one else's lock is
        removed)."""
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None
        atexit.unregister(self.release)


def lock_folder(folder: str | Path, option: str = "--out") -> FolderLock:
    """``folder`` created if missing and locked (:class:`FolderLock`) for the command that
    writes into it (``run``, ``report``, ``ab``): another one writing there at the same time
    is refused, not interleaved. Raises :class:`OutputFolderError`, one line naming it."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputFolderError(f"{option} {folder}: cannot create the folder (it is a file): "
                                f"choose another path") from None
    except OSError as exc:
        raise OutputFolderError(f"{option} {folder}: cannot create the folder "
                                f"({cause_of(exc)}): choose another folder") from None
    try:
        return FolderLock(folder, option)
    except OSError as exc:
        raise OutputFolderError(f"{option} {folder}: cannot write in this folder "
                                f"({cause_of(exc)}): choose another folder") from None


def claim_run_folder(folder: str | Path, *, replace: bool = False) -> FolderLock:
    """Make ``folder`` this run's (``vitbench run --out``): created if missing, locked
    against a concurrent run, refused when it holds a previous run unless ``replace``, in
    which case that run's files are removed (after the lock is taken). Raises
    :class:`OutputFolderError` with one line naming the folder; the lock is held until the
    process ends."""
    folder = Path(folder)
    lock = lock_folder(folder)
    held = previous_run(folder)
    if held and not replace:
        lock.release()
        raise OutputFolderError(f"--out {folder} already holds a run ({held}): choose another "
                                f"folder or pass --force to replace it")
    if held:
        try:
            remove_run(folder)
        except OSError as exc:
            lock.release()
            raise OutputFolderError(f"--out {folder}: cannot remove the previous run's "
                                    f"{Path(exc.filename or '').name or 'files'} "
                                    f"({cause_of(exc)})") from None
    return lock
