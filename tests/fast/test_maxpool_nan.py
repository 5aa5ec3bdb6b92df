"""NaN in the max-pooling kernel (fast/kernels/pooling.py): a window that holds a NaN
outputs NaN wherever the NaN sits, as np.max does, and its winning tap is the first
NaN, as np.argmax picks; finite windows are unchanged (test_maxpool_kernels.py)."""
import numpy as np
import pytest

from minicnn.fast.kernels.pooling import maxpool_backward, maxpool_forward
from minicnn.nn.pooling import maxpool as maxpool_reference


def pool_by_loops(x, K, S):
    """(y, arg) window by window with np.max and np.argmax: the behaviour to match."""
    N, H, W, C = x.shape
    OH, OW = (H - K) // S + 1, (W - K) // S + 1
    y, arg = np.empty((N, OH, OW, C), x.dtype), np.empty((N, OH, OW, C), np.int8)
    for n in range(N):
        for i in range(OH):
            for j in range(OW):
                for c in range(C):
                    window = x[n, i * S:i * S + K, j * S:j * S + K, c].ravel()   # tap kh*K + kw
                    y[n, i, j, c], arg[n, i, j, c] = np.max(window), np.argmax(window)
    return y, arg


def fast_pool(x, K, S):
    N, H, W, C = x.shape
    OH, OW = (H - K) // S + 1, (W - K) // S + 1
    y, arg = np.empty((N, OH, OW, C), x.dtype), np.empty((N, OH, OW, C), np.int8)
    maxpool_forward(x, K, S, y, arg)
    return y, arg


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K", [2, 3])
def test_a_nan_wins_its_window_at_every_tap(dtype, K):
    """One window, a NaN at each tap in turn, the other taps larger finite numbers."""
    for tap in range(K * K):
        x = np.arange(1, K * K + 1, dtype=dtype).reshape(1, K, K, 1) * 10
        x[0, tap // K, tap % K, 0] = np.nan
        y, arg = fast_pool(x, K, K)
        assert np.isnan(y[0, 0, 0, 0]), f"NaN at tap {tap} was dropped: y = {y.ravel()}"
        assert arg[0, 0, 0, 0] == tap
        dx = np.full(x.shape, -1.0, dtype)                        # every entry must be written
        maxpool_backward(np.full(y.shape, 7.0, dtype), arg, K, K, dx)
        expected = np.zeros(x.shape, dtype)
        expected[0, tap // K, tap % K, 0] = 7.0                    # dy goes to the NaN tap
        np.testing.assert_array_equal(dx, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_first_nan_wins_and_beats_infinity(dtype):
    x = np.array([[1.0, np.inf], [np.nan, np.nan]], dtype).reshape(1, 2, 2, 1)
    y, arg = fast_pool(x, 2, 2)
    assert np.isnan(y.item()) and arg.item() == 2                  # the first of the two NaNs
    x = np.array([[-np.inf, -np.inf], [-np.inf, -np.inf]], dtype).reshape(1, 2, 2, 1)
    y, arg = fast_pool(x, 2, 2)
    assert y.item() == -np.inf and arg.item() == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K,S,shape", [(2, 2, (2, 6, 6, 19)), (3, 2, (2, 7, 9, 5)),
                                       (3, 1, (1, 6, 5, 3)), (2, 3, (2, 8, 7, 4))])
def test_random_nans_match_np_max_and_the_reference(dtype, K, S, shape):
    """Integers (many ties) with NaN and +-inf sprinkled in: y and arg equal np.max and
    np.argmax per window, and the reference code, entry for entry."""
    rng = np.random.default_rng(11)
    x = rng.integers(-2, 3, shape).astype(dtype)
    x[rng.random(shape) < 0.15] = np.nan
    x[rng.random(shape) < 0.05] = np.inf
    x[rng.random(shape) < 0.05] = -np.inf
    y, arg = fast_pool(x, K, S)
    y_loops, arg_loops = pool_by_loops(x, K, S)
    assert np.isnan(y_loops).any() and not np.isnan(y_loops).all()   # the case is exercised
    np.testing.assert_array_equal(y, y_loops)                        # NaN == NaN here
    np.testing.assert_array_equal(arg, arg_loops)
    y_ref, arg_ref = maxpool_reference(x, K, S)
    np.testing.assert_array_equal(y_ref, y_loops)
    np.testing.assert_array_equal(arg_ref, arg_loops)
