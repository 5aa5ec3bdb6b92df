import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


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
