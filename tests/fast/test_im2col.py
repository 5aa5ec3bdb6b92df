"""The im2col and col2im kernels (fast/kernels/im2col.py) against their NumPy twins,
float32 and float64, on random shapes, strides and paddings."""
import numpy as np
import pytest

from minicnn.fast.kernels.im2col import col2im_reference, col2im_rows, im2col_reference, im2col_rows

DTYPES = [np.float32, np.float64]
TOL = {np.float32: 1e-5, np.float64: 1e-12}


def random_conv_geometry(rng):
    """N, H, W, C, KH, KW, stride, pad_top, pad_left, OH, OW with OH, OW >= 1."""
    while True:
        N, H, W, C = rng.integers(1, 4), rng.integers(1, 10), rng.integers(1, 10), rng.integers(1, 6)
        KH, KW, S = rng.integers(1, 5), rng.integers(1, 5), rng.integers(1, 4)
        pt, pl = rng.integers(0, KH), rng.integers(0, KW)
        pb, pr = rng.integers(0, KH), rng.integers(0, KW)
        OH, OW = (H + pt + pb - KH) // S + 1, (W + pl + pr - KW) // S + 1
        if OH >= 1 and OW >= 1:
            return N, H, W, C, KH, KW, S, pt, pl, OH, OW


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(30))
def test_im2col_col2im_match_reference(dtype, seed):
    rng = np.random.default_rng(seed)
    N, H, W, C, KH, KW, S, pt, pl, OH, OW = random_conv_geometry(rng)
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    ref = im2col_reference(x, KH, KW, S, pt, pl, OH, OW)
    M = ref.shape[0]
    R = int(rng.integers(1, M + 1))                      # rows per block, blocks in any order
    cols = np.full_like(ref, np.nan)
    dcols = rng.standard_normal(ref.shape).astype(dtype)
    dx = np.zeros_like(x)
    for r0 in rng.permutation(np.arange(0, M, R)):
        im2col_rows(x, KH, KW, S, pt, pl, OH, OW, r0, cols[r0:r0 + R])
        col2im_rows(dcols[r0:r0 + R], KH, KW, S, pt, pl, OH, OW, r0, dx)
    np.testing.assert_array_equal(cols, ref)
    want = col2im_reference(dcols, x.shape, KH, KW, S, pt, pl, OH, OW)
    np.testing.assert_allclose(dx, want, rtol=TOL[dtype], atol=TOL[dtype])
    assert cols.dtype == dx.dtype == dtype


def test_col2im_is_the_adjoint_of_im2col():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 7, 6, 3))
    cols = im2col_reference(x, 3, 2, 2, 1, 1, 4, 3)
    d = rng.standard_normal(cols.shape)
    dx = col2im_rows(d, 3, 2, 2, 1, 1, 4, 3, 0, np.zeros_like(x))
    assert np.isclose(np.sum(cols * d), np.sum(x * dx), rtol=1e-12)   # <Ax, d> = <x, A^T d>
