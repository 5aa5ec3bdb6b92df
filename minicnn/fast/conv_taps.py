"""Conv2D's second path: products over tap classes, skipping padding taps.

Used by Conv2D when at least ``TAPS_MIN_PADDING`` of the im2col entries would be
padding zeros (small maps; see kernels/taps.py for the idea and conv.py for the
rule). Same maths as the plain im2col path:

    y  = cols @ W            per class:  y[rows]  = cols' @ W[taps]
    dW = cols.T @ dy         per class:  dW[taps] += cols'.T @ dy[rows]
    dx (stride 1) = the same forward, on dy, with the flipped transposed kernel

Work is cut into blocks of one class's rows, handed to both cores by
``parallel_blocks``; dW is summed per fixed group of blocks, then the groups in
order, so results do not depend on thread timing (as in conv.py).
"""
import numpy as np

from .parallel import num_threads, parallel_blocks
from .kernels.taps import gather_rows, im2col_class_rows, scatter_rows, tap_classes


def _blocks(classes, N, C, block_rows):
    """[(class index, r0, r1, K')] covering every class's N * P rows."""
    items = []
    for ci, (h0, h1, w0, w1, pos) in enumerate(classes):
        K, M = (h1 - h0) * (w1 - w0) * C, N * len(pos)
        R = block_rows(M, K)
        items += [(ci, r0, min(M, r0 + R), K) for r0 in range(0, M, R)]
    return items


def taps_forward(x, Wt, b, stride, pad_top, pad_left, OH, OW, block_rows):
    """y (N, OH, OW, F) = conv(x, Wt) + b; x (N, H, W, C), Wt (KH, KW, C, F), b (F,) or None.
    block_rows(M, K) -> rows per block (Conv2D.block_rows)."""
    N, H, W, C = x.shape
    KH, KW, _, F = Wt.shape
    classes = tap_classes(H, W, KH, KW, stride, pad_top, pad_left, OH, OW)
    y = np.empty((N, OH, OW, F), dtype=x.dtype)
    y2 = y.reshape(N * OH * OW, F)
    if sum(len(c[4]) for c in classes) < OH * OW:        # windows wholly in the padding
        y2[...] = 0.0 if b is None else b
    Ws = [np.ascontiguousarray(Wt[h0:h1, w0:w1]).reshape(-1, F) for h0, h1, w0, w1, _ in classes]
    items = _blocks(classes, N, C, block_rows)
    T = num_threads()
    cbuf = [np.empty(max((r1 - r0) * K for _, r0, r1, K in items), x.dtype) for _ in range(T)]
    obuf = [np.empty(max(r1 - r0 for _, r0, r1, _ in items) * F, x.dtype) for _ in range(T)]

    def block(i, t):
        ci, r0, r1, K = items[i]
        h0, h1, w0, w1, pos = classes[ci]
        R = r1 - r0
        cols = im2col_class_rows(x, h0, h1, w0, w1, stride, pad_top, pad_left, OW, pos, r0,
                                 cbuf[t][:R * K].reshape(R, K))          # (R, K')
        out = np.matmul(cols, Ws[ci], out=obuf[t][:R * F].reshape(R, F))  # (R, F)
        if b is not None:
            out += b
        scatter_rows(out, pos, r0, OH * OW, y2)

    parallel_blocks(len(items), block)
    return y


def taps_weight_grad(x, dy, KH, KW, stride, pad_top, pad_left, block_rows, groups):
    """dW (KH, KW, C, F) = sum over classes of cols'.T @ dy[rows]; dy (N, OH, OW, F)."""
    N, H, W, C = x.shape
    _, OH, OW, F = dy.shape
    classes = tap_classes(H, W, KH, KW, stride, pad_top, pad_left, OH, OW)
    dy2 = dy.reshape(N * OH * OW, F)
    items = _blocks(classes, N, C, block_rows)
    G = min(groups, len(items))
    T = num_threads()
    dW_g = np.zeros((G, KH, KW, C, F), dtype=x.dtype)
    cbuf = [np.empty(max((r1 - r0) * K for _, r0, r1, K in items), x.dtype) for _ in range(T)]
    dbuf = [np.empty(max(r1 - r0 for _, r0, r1, _ in items) * F, x.dtype) for _ in range(T)]
    tbuf = [np.empty(KH * KW * C * F, x.dtype) for _ in range(T)]

    def group(g, t):                     # items g*n//G .. (g+1)*n//G - 1, in order
        for i in range(g * len(items) // G, (g + 1) * len(items) // G):
            ci, r0, r1, K = items[i]
            h0, h1, w0, w1, pos = classes[ci]
            R = r1 - r0
            cols = im2col_class_rows(x, h0, h1, w0, w1, stride, pad_top, pad_left, OW, pos, r0,
                                     cbuf[t][:R * K].reshape(R, K))      # (R, K')
            dyb = gather_rows(dy2, pos, r0, OH * OW, dbuf[t][:R * F].reshape(R, F))
            part = np.matmul(cols.T, dyb, out=tbuf[t][:K * F].reshape(K, F))
            dW_g[g, h0:h1, w0:w1] += part.reshape(h1 - h0, w1 - w0, C, F)

    parallel_blocks(G, group)
    return dW_g.sum(axis=0)
