"""``python -m vitbench`` is the ``vitbench`` command."""

from vitbench.cli import main

main()
