"""Per-channel sums over rows on every core (fast/kernels/sums.py): the bias gradient of
Conv2D's fast paths."""
import numba
import numpy as np
import pytest

from minicnn.fast.kernels.sums import column_sums, sum_blocks


@pytest.mark.parametrize("m,C", [(1, 3), (7, 32), (16, 5), (1000, 32), (4097, 64)])
def test_column_sums_are_the_float64_sums(m, C):
    x = np.random.default_rng(m).standard_normal((m, C)).astype(np.float32) + 3
    got = column_sums(x)
    assert got.shape == (C,) and got.dtype == np.float64
    np.testing.assert_allclose(got, x.astype(np.float64).sum(axis=0), rtol=1e-12, atol=1e-9)


def test_column_sums_same_bits_on_any_thread_count():
    """The row blocks are fixed (sum_blocks), not one per thread: one thread and all
    threads add the same numbers in the same order."""
    x = (np.random.default_rng(0).standard_normal((5003, 24)) * 1e4).astype(np.float32)
    all_threads = column_sums(x)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one_thread = column_sums(x)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one_thread, all_threads)
    assert sum_blocks(5003) == 16 and sum_blocks(3) == 3


def test_column_sums_of_a_strided_view():
    base = np.random.default_rng(2).standard_normal((300, 40)).astype(np.float32)
    view = base[::3, 5:37]                                   # not contiguous
    np.testing.assert_allclose(column_sums(view), view.astype(np.float64).sum(axis=0),
                               rtol=1e-12, atol=1e-9)
