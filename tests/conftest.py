"""Shared by every test folder (tests/nn, tests/fast, tests/data, ...).

``ROOT`` and ``real_data_dir()`` are imported by tests as ``from conftest import ...``;
the folders have no ``__init__.py`` (pytest's default "prepend" import mode, so test
file names are unique across folders), and this folder is put on sys.path below, so
that import, and ``import helpers`` (tests/helpers.py), work from any subfolder.
"""
import os
import sys
from pathlib import Path

# minicnn before numba: it sets numba's compile flags at import, and a test file that
# imports numba first would turn the fast kernels off for every file after it
import minicnn  # noqa: F401
import numpy as np
import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))


def real_data_dir():
    """The shared CIFAR-10 copy: $MINICNN_DATA, else ../shared/data next to the project."""
    env = os.environ.get("MINICNN_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(ROOT.parent / "shared" / "data" / "cifar-10-batches-bin")
    for c in candidates:
        if (c / "data_batch_1.bin").exists() or (c / "cifar-10-batches-bin" / "data_batch_1.bin").exists():
            return c
    return None


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
