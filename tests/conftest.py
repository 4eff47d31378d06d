"""Shared test settings: one CPU thread, so tests behave the same on a busy 2-core machine."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
# runs made by tests append to no history database (tests/test_history.py names its own)
os.environ.setdefault("VITBENCH_HISTORY", "off")

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    import torch

    torch.set_num_threads(1)
    yield


@pytest.fixture
def repo_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def builders():
    """The ``vitbench:`` zoo's registry (every builder module imported once per session)."""
    from vitbench.build.builders import load_builders

    return load_builders()
