"""``python:`` models built in vitbench's own process (``run --in-process``, ``profile``,
``sweep``'s counting, ``selfcheck``'s one-process timing) are found where a worker finds them.

A worker searches the installed packages, then the python path (:mod:`vitbench.build.pythonpath`).
Here the same folders are appended to this process's ``sys.path``, after the module was
located there without executing it, so one that only the working directory holds is refused
(exit 2, one line saying where to put it), never imported.
"""

from __future__ import annotations

import os
from typing import Sequence

#: where to put a ``python:`` module named on the command line that was not found
PYTHON_PATH_HINT = "give its folder with --python-path (the working directory is not searched)"


def command_line_path(folders: Sequence[str | os.PathLike]) -> list[str]:
    """The python path of a model named on the command line: the ``--python-path`` folders,
    absolute, without repeats (never the working directory unless named)."""
    return list(dict.fromkeys(os.path.abspath(f) for f in folders))


def use_in_process(model: str, folders: Sequence[str], hint: str = "") -> None:
    """Check that ``model`` exists (:func:`~vitbench.build.zoo.check_model`: a ``python:``
    module is located, nothing executed, in the installed packages, ``folders`` and
    ``PYTHONPATH``; not found: :class:`~vitbench.errors.UnknownModelError` ending with
    ``hint``), then append ``folders`` to this process's ``sys.path`` so that building it
    here imports what a worker would."""
    from vitbench.build.pythonpath import use_python_path
    from vitbench.build.zoo import check_model

    check_model(model, folders, hint)
    if model.startswith("python:"):
        use_python_path(folders)
