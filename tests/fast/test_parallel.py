"""fast/parallel.py: blocks of work on every core, and the matrix product split over them."""
import numpy as np
import pytest

from minicnn.fast.parallel import parallel_blocks, parallel_matmul


def test_parallel_blocks_runs_every_block_once_and_reraises():
    seen = []
    parallel_blocks(37, lambda b, t: seen.append(b))
    assert sorted(seen) == list(range(37))

    def boom(b, t):
        if b == 5:
            raise RuntimeError("block 5")
    with pytest.raises(RuntimeError, match="block 5"):
        parallel_blocks(9, boom)


@pytest.mark.parametrize("M,K,F", [(1, 5, 3), (7, 4, 9), (128, 64, 10), (300, 33, 17), (16, 64, 520)])
def test_parallel_matmul(M, K, F):
    rng = np.random.default_rng(M)
    a = rng.standard_normal((K, M)).astype(np.float32).T        # a transposed view, as in dW
    b = rng.standard_normal((K, F)).astype(np.float32)
    out = np.full((M, F), np.nan, np.float32)
    got = parallel_matmul(a, b, out=out)
    assert got is out
    np.testing.assert_allclose(out, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-5)
    assert parallel_matmul(a, b).dtype == np.float32
