"""The tap-class kernels (fast/kernels/taps.py): im2col rows of the taps that read the
image only, and the row scatter/gather of each class."""
import numpy as np
import pytest

from minicnn.fast.kernels.im2col import im2col_reference
from minicnn.fast.kernels.taps import (gather_rows, im2col_class_reference, im2col_class_rows,
                                       padding_share, scatter_rows, tap_classes)

DTYPES = [np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("H,W,K,S,pad", [(7, 7, 3, 1, 1), (3, 3, 3, 1, 1), (6, 5, 3, 2, 1),
                                         (4, 4, 3, 1, 3), (5, 8, 2, 1, 0)])
def test_tap_classes_cover_every_valid_tap_once(dtype, H, W, K, S, pad):
    rng = np.random.default_rng(7)
    N, C = 2, 3
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    OH, OW = (H + 2 * pad - K) // S + 1, (W + 2 * pad - K) // S + 1
    classes = tap_classes(H, W, K, K, S, pad, pad, OH, OW)
    full = im2col_reference(x, K, K, S, pad, pad, OH, OW).reshape(N, OH * OW, K, K, C)
    seen = np.zeros((OH * OW, K, K), int)
    for cls in classes:
        h0, h1, w0, w1, pos = cls
        seen[np.ix_(pos, range(h0, h1), range(w0, w1))] += 1
        ref = im2col_class_reference(x, K, K, S, pad, pad, OH, OW, cls)
        for r0 in range(0, len(ref), 3):                       # blocks of 3 rows, any offset
            R = min(3, len(ref) - r0)
            out = im2col_class_rows(x, h0, h1, w0, w1, S, pad, pad, OW, pos, r0,
                                    np.empty((R, ref.shape[1]), dtype))
            np.testing.assert_array_equal(out, ref[r0:r0 + R])
    # every tap that reads the image is in exactly one class; the skipped ones are zeros
    inside = np.abs(full).sum(axis=(0, 4)) > 0
    np.testing.assert_array_equal(seen, inside.astype(int))
    assert padding_share(H, W, K, K, S, pad, pad, OH, OW) == pytest.approx(1 - inside.mean())


def test_scatter_and_gather_rows_are_each_others_inverse():
    rng = np.random.default_rng(3)
    pos, OHW, N, F = np.array([1, 4, 5], np.int64), 6, 3, 4
    src = rng.standard_normal((N * 3, F)).astype(np.float32)
    dst = np.zeros((N * OHW, F), np.float32)
    scatter_rows(src[2:7], pos, 2, OHW, dst)                  # rows 2..6 of the class
    rows = [n * OHW + p for n in range(N) for p in pos][2:7]
    np.testing.assert_array_equal(dst[rows], src[2:7])
    assert np.count_nonzero(np.abs(dst).sum(1)) == 5
    back = gather_rows(dst, pos, 2, OHW, np.empty((5, F), np.float32))
    np.testing.assert_array_equal(back, src[2:7])
