"""Max-pooling kernels for NHWC images (numba) and their NumPy twins.

Forward:  y[n, i, j, c] = max_{kh, kw} x[n, i*S + kh, j*S + kw, c]
          arg[n, i, j, c] = kh*K + kw of the FIRST maximum (so a tie sends the
          gradient to exactly one input).
Backward: dx[n, i*S + kh, j*S + kw, c] += dy[n, i, j, c]   where kh*K + kw = arg
          (overlapping windows, S < K, add up).

No padding; windows that do not fit are dropped (OH = (H - K) // S + 1).
``arg`` is int8 (K*K <= 127), one byte per output element.
"""
import numpy as np
from numba import njit, prange


def maxpool_reference(x, K, S):
    N, H, W, C = x.shape
    OH, OW = (H - K) // S + 1, (W - K) // S + 1
    windows = np.empty((N, OH, OW, K * K, C), dtype=x.dtype)
    for kh in range(K):
        for kw in range(K):
            windows[:, :, :, kh * K + kw, :] = x[:, kh:kh + S * OH:S, kw:kw + S * OW:S, :]
    arg = windows.argmax(axis=3)            # first maximum on ties
    return windows.max(axis=3), arg.astype(np.int8)


def maxpool_backward_reference(dy, arg, x_shape, K, S):
    N, H, W, C = x_shape
    _, OH, OW, _ = dy.shape
    dx = np.zeros(x_shape, dtype=dy.dtype)
    for kh in range(K):
        for kw in range(K):
            hit = arg == kh * K + kw
            dx[:, kh:kh + S * OH:S, kw:kw + S * OW:S, :] += np.where(hit, dy, 0)
    return dx


@njit(parallel=True, cache=True)
def maxpool_forward(x, K, S, y, arg):
    N, H, W, C = x.shape
    _, OH, OW, _ = y.shape
    for n in prange(N):
        for i in range(OH):
            for j in range(OW):
                for c in range(C):
                    y[n, i, j, c] = x[n, i * S, j * S, c]
                    arg[n, i, j, c] = 0
                for kh in range(K):
                    for kw in range(K):
                        if kh == 0 and kw == 0:
                            continue
                        h, w = i * S + kh, j * S + kw
                        for c in range(C):
                            v = x[n, h, w, c]
                            if v > y[n, i, j, c]:
                                y[n, i, j, c] = v
                                arg[n, i, j, c] = kh * K + kw
    return y, arg


@njit(parallel=True, cache=True)
def maxpool_backward(dy, arg, K, S, dx):
    N, OH, OW, C = dy.shape
    for n in prange(N):
        dx[n] = 0.0
        for i in range(OH):
            for j in range(OW):
                for c in range(C):
                    a = arg[n, i, j, c]
                    dx[n, i * S + a // K, j * S + a % K, c] += dy[n, i, j, c]
    return dx
