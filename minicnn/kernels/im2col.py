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
"""
import numpy as np
from numba import njit, prange


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
    xp = pad_nhwc(x, pad_top, bottom, pad_left, right)
    cols = np.empty((N, OH, OW, KH, KW, C), dtype=x.dtype)
    for kh in range(KH):
        for kw in range(KW):
            cols[:, :, :, kh, kw, :] = xp[:, kh:kh + stride * OH:stride,
                                          kw:kw + stride * OW:stride, :]
    return cols.reshape(N * OH * OW, KH * KW * C)


def col2im_reference(dcols, x_shape, KH, KW, stride, pad_top, pad_left, OH, OW):
    """NumPy col2im: scatter-add each kernel tap's slice back, then unpad."""
    N, H, W, C = x_shape
    bottom = max((OH - 1) * stride + KH - H - pad_top, 0)
    right = max((OW - 1) * stride + KW - W - pad_left, 0)
    dxp = np.zeros((N, H + pad_top + bottom, W + pad_left + right, C), dtype=dcols.dtype)
    d = dcols.reshape(N, OH, OW, KH, KW, C)
    for kh in range(KH):
        for kw in range(KW):
            dxp[:, kh:kh + stride * OH:stride, kw:kw + stride * OW:stride, :] += d[:, :, :, kh, kw, :]
    return dxp[:, pad_top:pad_top + H, pad_left:pad_left + W, :]


# ----------------------------------------------------------------------------
# Fast kernels: numba, parallel over images (each image writes disjoint memory).
# ----------------------------------------------------------------------------
@njit(parallel=True, cache=True)
def im2col(x, KH, KW, stride, pad_top, pad_left, OH, OW, cols):
    """Fill ``cols`` (N*OH*OW, KH*KW*C) from ``x`` (N, H, W, C). Returns cols."""
    N, H, W, C = x.shape
    for n in prange(N):
        for oh in range(OH):
            for ow in range(OW):
                row = (n * OH + oh) * OW + ow
                for kh in range(KH):
                    ih = oh * stride - pad_top + kh
                    for kw in range(KW):
                        iw = ow * stride - pad_left + kw
                        base = (kh * KW + kw) * C
                        if 0 <= ih < H and 0 <= iw < W:
                            for c in range(C):
                                cols[row, base + c] = x[n, ih, iw, c]
                        else:
                            for c in range(C):
                                cols[row, base + c] = 0.0
    return cols


@njit(parallel=True, cache=True)
def col2im(dcols, KH, KW, stride, pad_top, pad_left, OH, OW, dx):
    """Add each row of ``dcols`` back onto ``dx`` (N, H, W, C), zeroed here first."""
    N, H, W, C = dx.shape
    for n in prange(N):
        dx[n] = 0.0
        for oh in range(OH):
            for ow in range(OW):
                row = (n * OH + oh) * OW + ow
                for kh in range(KH):
                    ih = oh * stride - pad_top + kh
                    if ih < 0 or ih >= H:
                        continue
                    for kw in range(KW):
                        iw = ow * stride - pad_left + kw
                        if iw < 0 or iw >= W:
                            continue
                        base = (kh * KW + kw) * C
                        for c in range(C):
                            dx[n, ih, iw, c] += dcols[row, base + c]
    return dx
