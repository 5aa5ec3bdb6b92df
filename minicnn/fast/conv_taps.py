"""Conv2D's tap-class path: products over tap classes, skipping padding taps.
rules.py says when it runs (small maps, where padding is a large share of im2col).

kernels/taps.py has the idea: output pixels are grouped into classes by the
rectangle of kernel taps [kh0, kh1) x [kw0, kw1) that read the image, and each
class's im2col rows hold only those taps, K' = (kh1 - kh0) * (kw1 - kw0) * C
columns. Same maths as the plain im2col path (conv.py):

    y  = cols @ W            per class:  y[rows]  = cols' @ W[taps]
    dW = cols.T @ dy         per class:  dW[taps] += cols'.T @ dy[rows]
    dx (stride 1) = the same forward, on dy, with the flipped transposed kernel

Work is cut into blocks of one class's rows, handed to every core by
``parallel_blocks``; dW is summed per fixed group of blocks, then the groups in
order, so results do not depend on thread timing (as in conv.py).
"""
import numpy as np

from .parallel import num_threads, parallel_blocks
from .kernels.taps import gather_rows, im2col_class_rows, scatter_rows, tap_classes


def _blocks(classes, N, C, block_rows):
    """[(class index, r0, r1, K')]: rows r0 .. r1-1 of that class's im2col matrix
    (N * P rows of K' columns, P = the class's pixel count), covering every class."""
    items = []
    for class_index, (kh0, kh1, kw0, kw1, pos) in enumerate(classes):
        K, M = (kh1 - kh0) * (kw1 - kw0) * C, N * len(pos)
        R = block_rows(M, K)
        items += [(class_index, r0, min(M, r0 + R), K) for r0 in range(0, M, R)]
    return items


def taps_forward(x, weights, b, stride, pad_top, pad_left, OH, OW, block_rows):
    """y (N, OH, OW, F) = conv(x, weights) + b; x (N, H, W, C), weights (KH, KW, C, F),
    b (F,) or None. block_rows(M, K) -> rows per block (conv.block_rows)."""
    N, H, W, C = x.shape
    KH, KW, _, F = weights.shape
    classes = tap_classes(H, W, KH, KW, stride, pad_top, pad_left, OH, OW)
    y = np.empty((N, OH, OW, F), dtype=x.dtype)
    y_rows = y.reshape(N * OH * OW, F)
    if sum(len(c[4]) for c in classes) < OH * OW:        # windows wholly in the padding
        y_rows[...] = 0.0 if b is None else b
    W_classes = [np.ascontiguousarray(weights[kh0:kh1, kw0:kw1]).reshape(-1, F)   # (K', F)
                 for kh0, kh1, kw0, kw1, _ in classes]
    items = _blocks(classes, N, C, block_rows)
    n_threads = num_threads()
    cols_buffers = [np.empty(max((r1 - r0) * K for _, r0, r1, K in items), x.dtype)  # per thread
                    for _ in range(n_threads)]
    out_buffers = [np.empty(max(r1 - r0 for _, r0, r1, _ in items) * F, x.dtype)     # per thread
                   for _ in range(n_threads)]

    def block(i, thread):
        class_index, r0, r1, K = items[i]
        kh0, kh1, kw0, kw1, pos = classes[class_index]
        R = r1 - r0
        cols = im2col_class_rows(x, kh0, kh1, kw0, kw1, stride, pad_top, pad_left, OW, pos, r0,
                                 cols_buffers[thread][:R * K].reshape(R, K))          # (R, K')
        out = np.matmul(cols, W_classes[class_index],
                        out=out_buffers[thread][:R * F].reshape(R, F))                # (R, F)
        if b is not None:
            out += b
        scatter_rows(out, pos, r0, OH * OW, y_rows)

    parallel_blocks(len(items), block)
    return y


def taps_weight_grad(x, dy, KH, KW, stride, pad_top, pad_left, block_rows, reduce_groups):
    """dW (KH, KW, C, F) = sum over classes of cols'.T @ dy[rows]; dy (N, OH, OW, F)."""
    N, H, W, C = x.shape
    _, OH, OW, F = dy.shape
    classes = tap_classes(H, W, KH, KW, stride, pad_top, pad_left, OH, OW)
    dy_rows = dy.reshape(N * OH * OW, F)
    items = _blocks(classes, N, C, block_rows)
    n_groups = min(reduce_groups, len(items))
    n_threads = num_threads()
    dW_groups = np.zeros((n_groups, KH, KW, C, F), dtype=x.dtype)   # one accumulator per group
    cols_buffers = [np.empty(max((r1 - r0) * K for _, r0, r1, K in items), x.dtype)  # per thread
                    for _ in range(n_threads)]
    dy_buffers = [np.empty(max(r1 - r0 for _, r0, r1, _ in items) * F, x.dtype)      # per thread
                  for _ in range(n_threads)]
    dW_part_buffers = [np.empty(KH * KW * C * F, x.dtype) for _ in range(n_threads)]

    def group(g, thread):                # group g: its range of items, in order
        for i in range(g * len(items) // n_groups, (g + 1) * len(items) // n_groups):
            class_index, r0, r1, K = items[i]
            kh0, kh1, kw0, kw1, pos = classes[class_index]
            R = r1 - r0
            cols = im2col_class_rows(x, kh0, kh1, kw0, kw1, stride, pad_top, pad_left, OW, pos,
                                     r0, cols_buffers[thread][:R * K].reshape(R, K))  # (R, K')
            dy_class = gather_rows(dy_rows, pos, r0, OH * OW,
                                   dy_buffers[thread][:R * F].reshape(R, F))          # (R, F)
            part = np.matmul(cols.T, dy_class,
                             out=dW_part_buffers[thread][:K * F].reshape(K, F))       # (K', F)
            dW_groups[g, kh0:kh1, kw0:kw1] += part.reshape(kh1 - kh0, kw1 - kw0, C, F)

    parallel_blocks(n_groups, group)
    return dW_groups.sum(axis=0)
