"""Conv2D's shifted-window path: one matrix product per kernel tap (stride 1).
rules.py says when it runs (small maps, where most windows reach into the padding).

A stride-1 convolution is a sum of KH * KW matrix products, one per tap (kh, kw):
tap (kh, kw) reads the input shifted by (kh - pad_top, kw - pad_left),

    y[n, oh, ow] = sum over (kh, kw) of  x[n, oh + kh - pad_top, ow + kw - pad_left] @ W[kh, kw]
                                         (C,)                                         (C, F)

leaving out the taps whose pixel lies in the padding (they add zero). The outputs a
tap reaches inside the image form a rectangle, its "window" [oh0, oh1) x [ow0, ow1)
(``tap_window``), so each tap is one product over the window's pixels:

    y[:, oh0:oh1, ow0:ow1]  += x[:, oh0 + kh - pad_top : ..., ow0 + kw - pad_left : ...] @ W[kh, kw]
    dW[kh, kw]               = x[the same pixels]^T @ dy[:, oh0:oh1, ow0:ow1]
    dx                       = the same sum over dy, with dy's padding KH - 1 - pad_top
                               (KW - 1 - pad_left) and the tap matrices W[KH-1-kh, KW-1-kw].T

On a 3x3 map with padding 1, 40% of im2col's entries are padding (kernels/taps.py);
this path multiplies none of them, builds no im2col matrix (each product reads a
copy of one window of the input), and needs no flipped copy of W for dx (the
transposed tap matrices are views). The tap that covers every output, if any (the
centre tap of a "same" convolution), writes y first, so y is not zeroed.

Work is cut into blocks of whole images for the forward pass and dx, and into taps
for dW (each tap's product is one core's, summed over fixed blocks of images in
order, so the result does not depend on the threads).
"""
import numpy as np

from .parallel import num_threads, parallel_blocks

BLOCK_ROWS = 300        # forward, dx: output pixels per block (whole images, at least
                        # one): a 128-image batch of 3x3 maps makes 4 blocks, 2 per core
DW_BLOCK_ROWS = 4096    # dW: a tap's product over at most this many pixels at a time


def tap_window(k, pad, out_size, in_size):
    """[o0, o1): the outputs o whose tap k reads inside the input: 0 <= o + k - pad < in_size.
    Empty (o0 >= o1) when the tap reads only padding."""
    return max(0, pad - k), min(out_size, in_size + pad - k)


def tap_order(KH, KW, pad_top, pad_left, OH, OW, H, W):
    """[(kh, kw, (oh0, oh1), (ow0, ow1))] for every tap that reaches the image, the ones
    covering every output first, then the rest in (kh, kw) order."""
    taps = []
    for kh in range(KH):
        for kw in range(KW):
            rows, cols = tap_window(kh, pad_top, OH, H), tap_window(kw, pad_left, OW, W)
            if rows[0] < rows[1] and cols[0] < cols[1]:
                taps.append((kh, kw, rows, cols))
    covers_all = lambda tap: tap[2] == (0, OH) and tap[3] == (0, OW)   # noqa: E731
    return sorted(taps, key=lambda tap: not covers_all(tap))          # stable: (kh, kw) order


def window(a, n0, n1, rows, cols, shift_rows, shift_cols, buffer):
    """a[n0:n1, rows shifted, cols shifted] copied into ``buffer``, as a matrix
    (images x window pixels, channels)."""
    (r0, r1), (c0, c1) = rows, cols
    view = a[n0:n1, r0 + shift_rows:r1 + shift_rows, c0 + shift_cols:c1 + shift_cols]
    out = buffer[:view.size].reshape(view.shape)
    np.copyto(out, view)
    return out.reshape(-1, a.shape[3])


def check_shift_inputs(x, weights, pad_top, pad_left):
    KH, KW, C, F = weights.shape
    if x.ndim != 4 or x.shape[3] != C or x.dtype != weights.dtype:
        raise ValueError(f"shifted-window convolution needs x (N, H, W, {C}) of the weights' "
                         f"dtype {weights.dtype}; got x {x.shape} {x.dtype}")
    if not (0 <= pad_top < KH and 0 <= pad_left < KW):
        raise ValueError(f"shifted-window convolution needs 0 <= padding < kernel size; got "
                         f"padding ({pad_top}, {pad_left}) for a {KH}x{KW} kernel")


def shifted_forward(x, weights, b, pad_top, pad_left, OH, OW, flipped=False):
    """y (N, OH, OW, F) = the stride-1 convolution of x (N, H, W, C) zero-padded by
    (pad_top, pad_left), with tap matrices weights[kh, kw] (C, F) (+ b (F,) or None).
    flipped=True: the tap matrices are weights[KH-1-kh, KW-1-kw].T instead, weights
    (KH, KW, F, C) being the layer's kernel: the convolution that gives dx from dy."""
    N, H, W, C = x.shape
    if flipped:
        weights = weights[::-1, ::-1].transpose(0, 1, 3, 2)          # views: no copy
    check_shift_inputs(x, weights, pad_top, pad_left)
    KH, KW, _, F = weights.shape
    y = np.empty((N, OH, OW, F), dtype=x.dtype)
    taps = tap_order(KH, KW, pad_top, pad_left, OH, OW, H, W)
    writes_all = bool(taps) and taps[0][2:] == ((0, OH), (0, OW))
    images = max(1, BLOCK_ROWS // (OH * OW))                          # images per block
    n_threads = num_threads()
    in_buffers = [np.empty(images * OH * OW * C, x.dtype) for _ in range(n_threads)]
    out_buffers = [np.empty(images * OH * OW * F, x.dtype) for _ in range(n_threads)]

    def block(i, thread):                # images n0 .. n1-1
        n0, n1 = i * images, min(N, i * images + images)
        y_block = y[n0:n1]
        if not writes_all:
            y_block[...] = 0.0
        for t, (kh, kw, rows, cols) in enumerate(taps):
            x_window = window(x, n0, n1, rows, cols, kh - pad_top, kw - pad_left,
                              in_buffers[thread])                     # (pixels, C)
            if t == 0 and writes_all:                                 # every output: y = ...
                np.matmul(x_window, weights[kh, kw], out=y_block.reshape(-1, F))
                continue
            (r0, r1), (c0, c1) = rows, cols
            part = np.matmul(x_window, weights[kh, kw],
                             out=out_buffers[thread][:x_window.shape[0] * F].reshape(-1, F))
            y_block[:, r0:r1, c0:c1] += part.reshape(n1 - n0, r1 - r0, c1 - c0, F)
        if b is not None:
            y_block += b

    parallel_blocks(-(-N // images), block)
    return y


def shifted_weight_grad(x, dy, KH, KW, pad_top, pad_left):
    """dW (KH, KW, C, F) of the stride-1 convolution of x (N, H, W, C) zero-padded by
    (pad_top, pad_left) with output gradient dy (N, OH, OW, F): for each tap, its
    window of x (transposed) times dy over the window, summed over fixed blocks of
    images in order. Taps reading only padding get zeros."""
    N, H, W, C = x.shape
    _, OH, OW, F = dy.shape
    check_shift_inputs(x, np.empty((KH, KW, C, F), dy.dtype), pad_top, pad_left)
    dW = np.zeros((KH, KW, C, F), dtype=x.dtype)
    taps = tap_order(KH, KW, pad_top, pad_left, OH, OW, H, W)
    taps.sort(key=lambda tap: -(tap[2][1] - tap[2][0]) * (tap[3][1] - tap[3][0]))  # largest first
    images = max(1, DW_BLOCK_ROWS // (OH * OW))
    n_threads = num_threads()
    x_buffers = [np.empty(images * OH * OW * C, x.dtype) for _ in range(n_threads)]
    dy_buffers = [np.empty(images * OH * OW * F, x.dtype) for _ in range(n_threads)]
    part_buffers = [np.empty((C, F), x.dtype) for _ in range(n_threads)]

    def tap(t, thread):                  # one tap, its blocks of images in order
        kh, kw, rows, cols = taps[t]
        for n0 in range(0, N, images):
            n1 = min(N, n0 + images)
            x_window = window(x, n0, n1, rows, cols, kh - pad_top, kw - pad_left,
                              x_buffers[thread])                      # (pixels, C)
            dy_window = window(dy, n0, n1, rows, cols, 0, 0, dy_buffers[thread])  # (pixels, F)
            if n0 == 0:
                np.matmul(x_window.T, dy_window, out=dW[kh, kw])
            else:
                dW[kh, kw] += np.matmul(x_window.T, dy_window, out=part_buffers[thread])

    parallel_blocks(len(taps), tap)
    return dW
