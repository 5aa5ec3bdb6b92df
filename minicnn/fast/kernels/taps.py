"""Convolution that skips the kernel taps falling in the padding (small feature maps).

With "same" padding, an output pixel on the border of the map has part of its
window in the padding, and plain im2col fills those taps with zeros that the
matrix product then multiplies. The share of such zeros grows as the map
shrinks (3x3 kernel: 4% of the products on 31x31, 9% on 15x15, 18% on 7x7,
40% on 3x3). oneDNN skips them; so does this path:

1. ``tap_classes`` groups the output pixels (oh, ow) by the rectangle of taps
   [kh0, kh1) x [kw0, kw1) that lie inside the image. A 3x3 kernel with
   padding 1 gives 9 classes: the interior (all 9 taps), 4 edges (6 taps) and
   4 corners (4 taps).
2. For each class, the im2col rows hold only its valid taps, K' = (kh1-kh0) *
   (kw1-kw0) * C columns, and the weights are cut to the same taps:

       y[rows of class] = cols' @ W[kh0:kh1, kw0:kw1].reshape(K', F)

3. The rows of one class are not contiguous in y, so the product goes to a
   small buffer that ``scatter_rows`` copies into place (``gather_rows`` is
   the reverse, for dy in the weight gradient).

Rows of a class are numbered (n, p) -> r = n * P + p, p indexing the class's
``pos`` array of flat output positions oh * OW + ow (P = len(pos)).
The reference twins rebuild each class from the plain im2col (tests).
"""
from functools import lru_cache

import numpy as np
from numba import njit

from .im2col import copy, im2col_reference


@lru_cache(maxsize=256)
def tap_classes(H, W, KH, KW, stride, pad_top, pad_left, OH, OW):
    """Output pixels grouped by their in-image taps.

    Returns a tuple of (kh0, kh1, kw0, kw1, pos), pos an int64 array of flat
    output positions oh * OW + ow in increasing order; classes with no valid
    tap (windows wholly in the padding) are left out (their output is the bias).
    """
    def valid(o, K, size, pad):                     # taps k with 0 <= o*stride - pad + k < size
        start = o * stride - pad
        return max(0, -start), min(K, size - start)
    kh_ranges = [valid(o, KH, H, pad_top) for o in range(OH)]       # [kh0, kh1) per output row
    kw_ranges = [valid(o, KW, W, pad_left) for o in range(OW)]      # [kw0, kw1) per output column
    classes = {}
    for oh, (kh0, kh1) in enumerate(kh_ranges):
        for ow, (kw0, kw1) in enumerate(kw_ranges):
            if kh1 > kh0 and kw1 > kw0:
                classes.setdefault((kh0, kh1, kw0, kw1), []).append(oh * OW + ow)
    return tuple((*key, np.array(pos, dtype=np.int64)) for key, pos in sorted(classes.items()))


def padding_share(H, W, KH, KW, stride, pad_top, pad_left, OH, OW):
    """Fraction of the im2col entries that are padding (what this path skips)."""
    classes = tap_classes(H, W, KH, KW, stride, pad_top, pad_left, OH, OW)
    used = sum(len(pos) * (kh1 - kh0) * (kw1 - kw0) for kh0, kh1, kw0, kw1, pos in classes)
    return 1.0 - used / (OH * OW * KH * KW)


# ----------------------------------------------------------------------------
# Reference twin: cut the class's rows and columns out of the full im2col.
# ----------------------------------------------------------------------------
def im2col_class_reference(x, KH, KW, stride, pad_top, pad_left, OH, OW, cls):
    """All N*P rows of one class, (N*P, K'), from the plain NumPy im2col."""
    kh0, kh1, kw0, kw1, pos = cls
    N, C = x.shape[0], x.shape[3]
    full = im2col_reference(x, KH, KW, stride, pad_top, pad_left, OH, OW)
    full = full.reshape(N, OH * OW, KH, KW, C)[:, pos, kh0:kh1, kw0:kw1, :]
    return full.reshape(N * len(pos), -1)


# ----------------------------------------------------------------------------
# Fast kernels: numba, serial, GIL released; one block of a class's rows.
# ----------------------------------------------------------------------------
@njit(nogil=True, cache=True, boundscheck=False)
def im2col_class_rows(x, kh0, kh1, kw0, kw1, stride, pad_top, pad_left, OW, pos, r0, cols):
    """Fill cols (R, (kh1-kh0)*(kw1-kw0)*C) with rows r0 .. r0+R-1 of the class.
    Every tap in the window is inside the image (no zeros to write), and a
    window row is (kw1-kw0)*C contiguous input values whatever the stride."""
    N, H, W, C = x.shape
    R = cols.shape[0]
    P = pos.shape[0]
    run_len = (kw1 - kw0) * C                         # one kernel row's valid taps
    x_flat = x.reshape(N * H * W * C)
    n, p = r0 // P, r0 % P                            # image n, p-th pixel of the class
    for row in range(R):
        cols_row = cols[row]
        # the row walk of im2col_rows (im2col.py), over the class's taps only
        oh, ow = pos[p] // OW, pos[p] % OW
        iw0 = ow * stride - pad_left + kw0            # input column of the first valid tap
        for kh in range(kh0, kh1):
            ih = oh * stride - pad_top + kh
            dst = (kh - kh0) * run_len
            copy(x_flat, ((n * H + ih) * W + iw0) * C, cols_row, dst, run_len)  # contiguous
        p += 1
        if p == P:
            p = 0
            n += 1
    return cols


@njit(nogil=True, cache=True, boundscheck=False)
def scatter_rows(src, pos, r0, OHW, dst):
    """dst[n * OHW + pos[p]] = src[row] for the class rows r = r0 + row = n * P + p."""
    R, F = src.shape
    P = pos.shape[0]
    n, p = r0 // P, r0 % P
    for row in range(R):
        dst_row = dst[n * OHW + pos[p]]
        src_row = src[row]
        for f in range(F):
            dst_row[f] = src_row[f]
        p += 1
        if p == P:
            p = 0
            n += 1


# gather_rows is scatter_rows read backwards (its adjoint), the same loop with source and
# destination swapped: two plain loops instead of one with a direction flag.
@njit(nogil=True, cache=True, boundscheck=False)
def gather_rows(src, pos, r0, OHW, dst):
    """dst[row] = src[n * OHW + pos[p]]: the adjoint selection of scatter_rows."""
    R, F = dst.shape
    P = pos.shape[0]
    n, p = r0 // P, r0 % P
    for row in range(R):
        src_row = src[n * OHW + pos[p]]
        dst_row = dst[row]
        for f in range(F):
            dst_row[f] = src_row[f]
        p += 1
        if p == P:
            p = 0
            n += 1
    return dst
