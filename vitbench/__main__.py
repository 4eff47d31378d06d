"""``python -m vitbench`` is the ``vitbench`` command."""

from .cli import main

main()
