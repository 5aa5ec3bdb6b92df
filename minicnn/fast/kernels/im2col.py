"""im2col / col2im for NHWC images: the numba kernels and their NumPy twins.

im2col turns every (KH, KW, C) input window under the kernel into one row of a
matrix, so that a convolution becomes one matrix product:

    cols[(n, oh, ow), (kh, kw, c)] = x_pad[n, oh*S + kh, ow*S + kw, c]
    y[(n, oh, ow), f]              = cols @ W.reshape(KH*KW*C, F)

    x     : (N, H, W, C)
    cols  : (N*OH*OW, KH*KW*C)      <- the large buffer: N*OH*OW*KH*KW*C floats
    y     : (N*OH*OW, F) == (N, OH, OW, F), already NHWC

col2im is its adjoint: it adds every row of ``dcols`` back onto the input
pixels the row was read from (overlapping windows add up), giving dx.

Padding is given as (top, left); the bottom/right padding is implied by OH, OW.
Windows that fall outside the image read zeros (im2col) and drop their
gradient (col2im).

The fast kernels work on a block of ROWS [r0, r0 + R) of the full matrix, so
that a caller never needs the whole N*OH*OW*KH*KW*C buffer: it fills a block
small enough to stay in the L2 cache and hands it straight to the matrix
product (see fast/conv.py). They are serial and release the GIL
(``nogil``), so two Python threads can each run one block at a time. Rows are
walked as (n, oh, ow) with plain counters; the inner copy is a contiguous run
of C values (or KW*C values, when the stride is 1 and the window lies inside
the image), which LLVM turns into vector loads and stores.
"""
import numpy as np
from numba import njit, uint64


# ----------------------------------------------------------------------------
# Reference twins: plain NumPy, obviously correct, used by the tests.
# ----------------------------------------------------------------------------
def pad_nhwc(x, top, bottom, left, right):
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))


def im2col_reference(x, KH, KW, stride, pad_top, pad_left, OH, OW):
    """NumPy im2col: one strided slice of the padded input per kernel tap."""
    N, H, W, C = x.shape
    bottom = max((OH - 1) * stride + KH - H - pad_top, 0)
    right = max((OW - 1) * stride + KW - W - pad_left, 0)
    x_pad = pad_nhwc(x, pad_top, bottom, pad_left, right)
    cols = np.empty((N, OH, OW, KH, KW, C), dtype=x.dtype)
    for kh in range(KH):
        for kw in range(KW):
            cols[:, :, :, kh, kw, :] = x_pad[:, kh:kh + stride * OH:stride,
                                             kw:kw + stride * OW:stride, :]
    return cols.reshape(N * OH * OW, KH * KW * C)


def col2im_reference(dcols, x_shape, KH, KW, stride, pad_top, pad_left, OH, OW):
    """NumPy col2im: scatter-add each kernel tap's slice back, then unpad."""
    N, H, W, C = x_shape
    bottom = max((OH - 1) * stride + KH - H - pad_top, 0)
    right = max((OW - 1) * stride + KW - W - pad_left, 0)
    dx_pad = np.zeros((N, H + pad_top + bottom, W + pad_left + right, C), dtype=dcols.dtype)
    dcols_taps = dcols.reshape(N, OH, OW, KH, KW, C)
    for kh in range(KH):
        for kw in range(KW):
            dx_pad[:, kh:kh + stride * OH:stride, kw:kw + stride * OW:stride, :] += \
                dcols_taps[:, :, :, kh, kw, :]
    return dx_pad[:, pad_top:pad_top + H, pad_left:pad_left + W, :]


# ----------------------------------------------------------------------------
# Fast kernels: numba, serial, GIL released; one block of rows per call.
# ----------------------------------------------------------------------------
@njit(nogil=True, cache=True, boundscheck=False, inline="always")
def copy(src, src_start, dst, dst_start, n):
    """dst[dst_start : dst_start+n] = src[src_start : src_start+n] (flat arrays; unsigned
    indices, so no wraparound checks)."""
    src_start, dst_start = uint64(src_start), uint64(dst_start)
    for i in range(uint64(n)):
        dst[dst_start + i] = src[src_start + i]


@njit(nogil=True, cache=True, boundscheck=False, inline="always")
def add_to(src, src_start, dst, dst_start, n):
    """dst[dst_start : dst_start+n] += src[src_start : src_start+n] (flat arrays, unsigned
    indices)."""
    src_start, dst_start = uint64(src_start), uint64(dst_start)
    for i in range(uint64(n)):
        dst[dst_start + i] += src[src_start + i]


@njit(nogil=True, cache=True, boundscheck=False)
def im2col_rows(x, KH, KW, stride, pad_top, pad_left, OH, OW, r0, cols):
    """Fill ``cols`` (R, KH*KW*C) with rows r0 .. r0+R-1 of im2col(x).

    x: (N, H, W, C), C-contiguous. Row r is the window of output pixel
    (n, oh, ow) = (r // (OH*OW), r // OW % OH, r % OW). Returns cols.
    """
    N, H, W, C = x.shape
    R = cols.shape[0]
    KWC = KW * C                                       # the entries of one kernel row
    x_flat = x.reshape(N * H * W * C)
    n, oh, ow = r0 // (OH * OW), (r0 // OW) % OH, r0 % OW
    for row in range(R):
        cols_row = cols[row]
        iw0 = ow * stride - pad_left                   # input column of the window's first tap
        inside_w = iw0 >= 0 and iw0 + KW <= W
        for kh in range(KH):
            ih = oh * stride - pad_top + kh            # input row of kernel row kh
            dst = kh * KWC
            if ih < 0 or ih >= H:                      # whole kernel row in the padding
                cols_row[dst:dst + KWC] = 0.0
            elif stride == 1 and inside_w:             # KW*C contiguous input values
                src = ((n * H + ih) * W + iw0) * C
                copy(x_flat, src, cols_row, dst, KWC)
            else:                                      # tap by tap, zeros outside
                for kw in range(KW):
                    iw = iw0 + kw
                    dst_tap = dst + kw * C
                    if 0 <= iw < W:
                        src = ((n * H + ih) * W + iw) * C
                        copy(x_flat, src, cols_row, dst_tap, C)
                    else:
                        cols_row[dst_tap:dst_tap + C] = 0.0
        ow += 1
        if ow == OW:
            ow = 0
            oh += 1
            if oh == OH:
                oh = 0
                n += 1
    return cols


# col2im_rows makes the same walk over windows as im2col_rows, adding instead of copying
# (col2im is im2col's adjoint). Written out twice on purpose: each loop stays free of a
# per-element copy-or-add branch, and each reads as its formula.
@njit(nogil=True, cache=True, boundscheck=False)
def col2im_rows(dcols, KH, KW, stride, pad_top, pad_left, OH, OW, r0, dx):
    """Add rows r0 .. r0+R-1 of ``dcols`` (R, KH*KW*C) onto ``dx`` (N, H, W, C).

    dx is NOT zeroed here (the caller zeroes it once). Two calls may run at the
    same time only on rows of different images (their pixels are disjoint).
    """
    N, H, W, C = dx.shape
    R = dcols.shape[0]
    KWC = KW * C                                       # the entries of one kernel row
    dx_flat = dx.reshape(N * H * W * C)
    n, oh, ow = r0 // (OH * OW), (r0 // OW) % OH, r0 % OW
    for row in range(R):
        dcols_row = dcols[row]
        iw0 = ow * stride - pad_left                   # input column of the window's first tap
        inside_w = iw0 >= 0 and iw0 + KW <= W
        for kh in range(KH):
            ih = oh * stride - pad_top + kh            # input row of kernel row kh
            src = kh * KWC
            if ih < 0 or ih >= H:
                continue
            if stride == 1 and inside_w:
                dst = ((n * H + ih) * W + iw0) * C
                add_to(dcols_row, src, dx_flat, dst, KWC)
            else:
                for kw in range(KW):
                    iw = iw0 + kw
                    if 0 <= iw < W:
                        dst = ((n * H + ih) * W + iw) * C
                        src_tap = src + kw * C
                        add_to(dcols_row, src_tap, dx_flat, dst, C)
        ow += 1
        if ow == OW:
            ow = 0
            oh += 1
            if oh == OH:
                oh = 0
                n += 1
    return dx
