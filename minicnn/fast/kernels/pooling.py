"""Max-pooling kernels for NHWC images (numba); the reference code is in minicnn/nn/pooling.py.

Forward:  y[n, i, j, c] = max_{kh, kw} x[n, i*S + kh, j*S + kw, c]
          arg[n, i, j, c] = kh*K + kw of the FIRST maximum (so a tie sends the
          gradient to exactly one input).
Backward: dx[n, i*S + kh, j*S + kw, c] += dy[n, i, j, c]   where kh*K + kw = arg
          (overlapping windows, S < K, add up).

NaN, as np.max and np.argmax treat it: a window holding a NaN outputs NaN, and
arg is its first NaN tap, so the backward sends dy to that NaN input.

No padding; windows that do not fit are dropped (OH = (H - K) // S + 1).
``arg`` is int8 (K*K <= 127), one byte per output element.
"""
import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def maxpool_forward(x, K, S, y, arg):
    """Fill y (N, OH, OW, C) and arg (same shape, int8). Parallel over output rows.

    Each output pixel's C channels are a contiguous run. The taps are visited
    in order; a channel's running max and argmax change only where a tap wins,
    written as selects. A tap v wins over the running max m when

        not (v <= m) and m == m      (v > m, or v is NaN; never once m is NaN)

    so ties keep the first maximum, and the first NaN, once taken, stays: the
    output is NaN and arg its tap, wherever the NaN sits in the window (a plain
    ``v > m`` is False for a NaN v and would drop it). Both compares vectorize
    with the selects; m is read once into a local, so the loop keeps it in a
    register instead of reloading y_pix[c]. The argmax is kept in a float scratch row of x's dtype while the taps are
    scanned (a float select vectorizes, an int8 one does not: docs/performance.md)
    and converted to int8 once per pixel.
    """
    N, H, W, C = x.shape
    _, OH, OW, _ = y.shape
    taps = np.arange(K * K).astype(x.dtype)               # tap index as a float of x's dtype
    for ni in prange(N * OH):                             # ni = (image n, output row i)
        n, i = ni // OH, ni % OH
        best = np.empty(C, dtype=x.dtype)                 # argmax so far, as a float
        for j in range(OW):
            y_pix = y[n, i, j]                            # running max of output pixel (i, j)
            x_first = x[n, i * S, j * S]                  # tap (0, 0) of its window
            for c in range(C):
                y_pix[c] = x_first[c]
                best[c] = 0.0
            for kh in range(K):
                for kw in range(K):
                    if kh == 0 and kw == 0:
                        continue
                    x_tap = x[n, i * S + kh, j * S + kw]
                    tap = taps[kh * K + kw]
                    for c in range(C):
                        v, running_max = x_tap[c], y_pix[c]
                        wins = (not (v <= running_max)) & (running_max == running_max)
                        best[c] = tap if wins else best[c]
                        y_pix[c] = v if wins else running_max
            arg_pix = arg[n, i, j]
            for c in range(C):
                arg_pix[c] = np.int8(best[c])
    return y, arg


@njit(parallel=True, cache=True)
def maxpool_backward(dy, arg, K, S, dx):
    """dx (N, H, W, C) from dy and arg. Parallel over output rows i.

    S >= K (windows do not overlap, the usual 2x2/2): every input pixel is
    written exactly once (dy where it was the argmax, else 0), and the rows and
    columns no window covers are zeroed; no scatter, no zero-fill pass.
    S < K: zero dx, then add each dy to its argmax, one image at a time (rows
    of one image overlap).
    """
    N, OH, OW, C = dy.shape
    _, H, W, _ = dx.shape
    if S >= K:
        for ni in prange(N * OH):                         # ni = (image n, output row i)
            n, i = ni // OH, ni % OH
            for h in range(i * S, min(i * S + S, H)):     # the rows this window row owns
                kh = h - i * S
                for j in range(OW):
                    dy_pix, arg_pix = dy[n, i, j], arg[n, i, j]
                    for w in range(j * S, min(j * S + S, W)):
                        kw = w - j * S
                        dx_pix = dx[n, h, w]
                        if kh < K and kw < K:
                            tap = np.int8(kh * K + kw)
                            for c in range(C):
                                dx_pix[c] = dy_pix[c] if arg_pix[c] == tap else 0.0
                        else:
                            dx_pix[:] = 0.0
                for w in range(OW * S, W):                # columns right of the last window
                    dx[n, h, w, :] = 0.0
        for n in prange(N):                               # rows below the last window
            for h in range(OH * S, H):
                dx[n, h] = 0.0
    else:
        for n in prange(N):
            dx[n] = 0.0
            for i in range(OH):
                for j in range(OW):
                    dy_pix, arg_pix = dy[n, i, j], arg[n, i, j]
                    for c in range(C):
                        tap = arg_pix[c]
                        dx[n, i * S + tap // K, j * S + tap % K, c] += dy_pix[c]
    return dx
