"""Where ``python:`` models come from, and how workers start Python without the working
directory on their import path.

A suite that names ``python:pkg.mod:fn`` runs ``pkg.mod``'s code: vitbench imports it only
inside a worker process, never in its own (validation locates the file, executing nothing).

A worker's import path (``sys.path``) is, in this order:

1. the installed packages: the interpreter's standard library and site-packages (with their
   ``.pth`` files, editable installs included), as a plain ``python`` sees them, **without**
   the working directory (``python -m``/``-c`` would put it first) and without
   ``PYTHONPATH`` (Python would put it first too);
2. the python path (:data:`PYTHON_PATH_ENV`), appended by :func:`use_python_path` just
   before a ``python:`` module is imported: the suite file's folder, the folders of the
   suite's ``python_path:`` key (relative to the suite file), then the user's
   ``PYTHONPATH``.

So a stray ``fvcore.py``, ``timm.py`` or ``torch.py`` in the working directory is never
imported, and one beside the suite loses to the installed package of that name.

The commands that build ``python:`` models in vitbench's own process (``run --in-process``,
``profile``, ``sweep``'s counting, ``selfcheck``'s in-process timing) search the same
folders, appended after the installed packages by :func:`use_python_path`: a suite's folder
and ``python_path:`` for a suite row; ``--python-path`` for a model named on the command
line. They locate the module there first (:func:`vitbench.build.zoo.check_model`), so one
found only in the working directory is refused, never imported.

Not ``python -I``: isolated mode also drops the user's site-packages (``pip install
--user``), where torch may live. The worker starts as ``python -c BOOTSTRAP MODULE ARGS…``;
the bootstrap removes the working-directory entry before it imports anything, then runs
``MODULE`` as ``python -m`` would (:func:`worker_command`).
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import subprocess
import sys
from importlib.machinery import ModuleSpec, PathFinder
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from vitbench.errors import BuildError

#: the folders searched for ``python:`` modules after the installed packages, ``os.pathsep``
#: separated; set by the parent (:func:`worker_python_path`), read in the worker
PYTHON_PATH_ENV = "VITBENCH_PYTHON_PATH"

#: the first statement drops the entry ``-c`` puts first (the working directory) unless
#: ``-P``/``PYTHONSAFEPATH`` already left it out; nothing is imported before it
_BOOTSTRAP = """import sys
if not getattr(sys.flags, "safe_path", False):
    del sys.path[0]
sys.path.extend({extra!r})
{body}"""

_RUN_MODULE = """import runpy
runpy.run_module(sys.argv.pop(1), run_name="__main__", alter_sys=True)
"""

_PROBE = """import importlib.util, json
spec = importlib.util.find_spec("vitbench")
print(json.dumps({"path": sys.path, "vitbench": spec is not None}))
"""


def isolated_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without ``PYTHONPATH`` (its folders reach the worker through the python path)."""
    return {key: value for key, value in env.items() if key != "PYTHONPATH"}


@functools.lru_cache(maxsize=None)
def _probe() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the installed packages' ``sys.path`` of a worker, the folders the bootstrap must add
    so that vitbench itself imports: none when it is installed, its checkout otherwise)."""
    root = str(Path(__file__).resolve().parents[2])
    code = _BOOTSTRAP.format(extra=[], body=_PROBE)
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=isolated_env(os.environ), timeout=120, check=True)
        found = json.loads(done.stdout)
    except (OSError, ValueError, subprocess.SubprocessError):
        # Cannot ask: assume the parent's own path minus what a worker would not have.
        cwd = os.getcwd()
        extra = set(os.environ.get("PYTHONPATH", "").split(os.pathsep))
        path = [p for p in sys.path if p and p not in extra and os.path.abspath(p) != cwd]
        return tuple(path), (root,)
    return tuple(found["path"]), () if found["vitbench"] else (root,)


def installed_path() -> list[str]:
    """The worker's ``sys.path`` before the python path is appended (installed packages)."""
    path, extra = _probe()
    return [*path, *extra]


def worker_command(module: str, *args: str) -> list[str]:
    """The command line that runs ``python -m MODULE ARGS…`` with the installed packages
    first and no working directory on ``sys.path`` (see the module docstring)."""
    _, extra = _probe()
    code = _BOOTSTRAP.format(extra=list(extra), body=_RUN_MODULE)
    return [sys.executable, "-c", code, module, *args]


def worker_python_path(folders: Sequence[str], env: Optional[Mapping[str, str]] = None) -> str:
    """The python path for :data:`PYTHON_PATH_ENV`: ``folders`` (the suite's folder and its
    ``python_path:``) then the user's ``PYTHONPATH`` (empty entries, which Python reads as
    the working directory, are dropped), absolute and without repeats."""
    env = os.environ if env is None else env
    user = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.pathsep.join(dict.fromkeys(os.path.abspath(p) for p in [*folders, *user]))


def python_path_folders(env: Optional[Mapping[str, str]] = None) -> list[str]:
    """The folders of :data:`PYTHON_PATH_ENV` (empty outside a worker)."""
    env = os.environ if env is None else env
    return [p for p in env.get(PYTHON_PATH_ENV, "").split(os.pathsep) if p]


def use_python_path(folders: Optional[Sequence[str]] = None) -> None:
    """Append the python path's folders to ``sys.path``, after the installed packages; a
    folder already on ``sys.path`` keeps its place. ``folders`` (absolute) are those of an
    in-process build; by default, a worker's (:data:`PYTHON_PATH_ENV`)."""
    for folder in python_path_folders() if folders is None else folders:
        if folder not in sys.path:
            sys.path.append(folder)


#: ``python:`` modules whose import failed in this process, with the reason: reported again,
#: never retried (a retry would run the module's top-level code a second time)
_FAILED_IMPORTS: dict[str, str] = {}


def import_python_module(name: str) -> Any:
    """Import ``name`` after appending the python path (:func:`use_python_path`); runs its
    code, so only a worker calls this. Any exception its import raises, ``SystemExit``
    included, becomes a :class:`BuildError` ("importing NAME raised SyntaxError: … (line 3)")."""
    if name in _FAILED_IMPORTS:
        raise BuildError(_FAILED_IMPORTS[name])
    use_python_path()
    try:
        return importlib.import_module(name)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the row says what went wrong
        text = (f"{exc.__class__.__name__}: {exc}".strip().splitlines() or ["?"])[0]
        _FAILED_IMPORTS[name] = f"importing {name} raised {text}"[:400]
        raise BuildError(_FAILED_IMPORTS[name]) from exc


def locate_module(name: str, folders: Sequence[str]) -> tuple[Optional[ModuleSpec], str]:
    """Find ``name`` (``pkg.sub.mod``) as a worker would, without executing any of it.

    Only file-system look-ups run: the top-level name through the import system's finders
    over the installed packages then ``folders`` (in that order, as in a worker), each
    further part in its parent package's folders. No ``__init__.py`` is executed, so a
    package that builds its submodules at import time is not seen. Returns the spec (None
    if not found) and, when not found, which part was missing.
    """
    parts = name.split(".")
    search = [*installed_path(), *folders]
    spec = None
    for finder in sys.meta_path:
        try:
            if finder is PathFinder:
                spec = PathFinder.find_spec(parts[0], search)
            elif hasattr(finder, "find_spec"):
                spec = finder.find_spec(parts[0], None)
        except (ImportError, ValueError, OSError):
            spec = None
        if spec is not None:
            break
    if spec is None:
        return None, parts[0]
    for depth in range(1, len(parts)):
        locations = list(spec.submodule_search_locations or [])
        fullname = ".".join(parts[:depth + 1])
        spec = PathFinder.find_spec(fullname, locations) if locations else None
        if spec is None:
            return None, fullname
    return spec, ""
