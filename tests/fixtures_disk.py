"""A model for the full-disk case of ``tests/test_faults_disk.py``, importable in a worker as
``python:tests.fixtures_disk:fills_the_disk`` (the test module itself imports test helpers a
worker cannot find)."""

from __future__ import annotations

import os

from torch import nn

from tests.fixtures_models import tiny


def fills_the_disk() -> nn.Module:
    """A tiny model whose builder first fills the file system of ``$FILL_THE_DISK`` with one
    file: the next write there fails with a real ENOSPC."""
    target = os.environ.get("FILL_THE_DISK")
    if target and not os.path.exists(target):
        try:
            with open(target, "wb") as handle:
                while True:
                    handle.write(b"\0" * 65536)
        except OSError:
            pass
    return tiny()
