"""The max-pooling kernels (fast/kernels/pooling.py) against the reference code of the
layer (minicnn/nn/pooling.py)."""
import numpy as np
import pytest

from minicnn.fast.kernels.pooling import maxpool_backward, maxpool_forward
from minicnn.nn.pooling import maxpool as maxpool_reference
from minicnn.nn.pooling import maxpool_backward as maxpool_backward_reference

DTYPES = [np.float32, np.float64]
TOL = {np.float32: 1e-5, np.float64: 1e-12}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("K,S,shape", [(2, 2, (2, 6, 6, 3)), (2, 2, (3, 7, 5, 8)), (3, 2, (2, 7, 7, 2)),
                                       (3, 1, (1, 5, 6, 2)), (3, 3, (2, 4, 3, 33)), (2, 3, (2, 8, 7, 4)),
                                       (1, 1, (1, 2, 3, 2)), (3, 3, (1, 3, 3, 5))])
def test_maxpool_matches_reference(dtype, K, S, shape):
    rng = np.random.default_rng(4)
    x = rng.integers(-2, 3, shape).astype(dtype)                  # many ties: the first wins
    N, H, W, C = shape
    OH, OW = (H - K) // S + 1, (W - K) // S + 1
    y, arg = np.empty((N, OH, OW, C), dtype), np.empty((N, OH, OW, C), np.int8)
    maxpool_forward(x, K, S, y, arg)
    y_ref, arg_ref = maxpool_reference(x, K, S)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(arg, arg_ref)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = np.full(shape, np.nan, dtype)                             # every pixel must be written
    maxpool_backward(dy, arg, K, S, dx)
    np.testing.assert_allclose(dx, maxpool_backward_reference(dy, arg, shape, K, S),
                               rtol=TOL[dtype], atol=TOL[dtype])
