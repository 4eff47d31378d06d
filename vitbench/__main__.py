"""``python -m vitbench`` is the ``vitbench`` command.

``python -m`` puts the working directory first on ``sys.path``; here it moves to the end
before anything else is imported, so that a stray ``timm.py`` or ``torch.py`` where vitbench
is run from cannot stand in for the installed package (the ``vitbench`` script never has the
working directory on its path; workers never do: :mod:`vitbench.build.pythonpath`).
"""

import os
import sys

if not getattr(sys.flags, "safe_path", False) and sys.path and \
        os.path.abspath(sys.path[0] or os.curdir) == os.getcwd():
    sys.path.append(sys.path.pop(0))

from vitbench.cli import main  # noqa: E402 - after the path is fixed

main()
