"""Conv2D's direct path: convolution with register-blocked tiles (stride 1, float32).

Same maths as the im2col path (conv.py), without the im2col matrix: see
kernels/direct.py for the loops and kernels/microkernel.py for why they are
fast. Work is handed to both cores in whole images (kernels/parallel.py), each
core with its own zero-bordered copy of one image; dW is summed per fixed group
of images, then the groups in order, so results do not depend on thread timing.

When it runs (Conv2D.use_direct, the rule):
  * float32, stride 1, and numba's SLP vectorizer on (without it the tiles run
    ~20x slower; minicnn turns it on at import unless numba was imported first
    with NUMBA_SLP_VECTORIZE unset);
  * maps at least MIN_DIRECT_WIDTH = 12 pixels wide: on 7x7 and 3x3 maps the
    tap-class path (conv_taps.py) skips the padding taps, and a 3-pixel tile
    would compute 9 of 7 columns;
  * forward / dx: the product's output channels a multiple of 16 or 24 (F for
    the forward pass, C for dx; tile_width) and at most MAX_DIRECT_CHANNELS = 64;
    wider layers keep OpenBLAS, which is as fast there (benchmarks/bench_direct.py);
  * dW: C a multiple of 4 and F a multiple of 16, same width limits.
"""
import operator

import numpy as np

from .kernels.direct import (conv_images, pack_weights, tile_pixels, tile_width,
                              weight_grad_images)
from .parallel import num_threads, parallel_blocks

IMAGES_PER_BLOCK = 2     # images per block handed to a core


def check_inputs(what, x, Wt, pad_top, pad_left, b=None, out_size=None):
    """The kernels run without bounds checks: refuse what they cannot do, clearly.
    b: the bias, (F,) or None; out_size: (OH, OW), both must be >= 1."""
    if x.dtype != np.float32 or Wt.dtype != np.float32:
        raise TypeError(f"{what} is float32 only; got x {x.dtype}, weights {Wt.dtype}")
    if x.ndim != 4 or Wt.ndim != 4 or x.shape[3] != Wt.shape[2]:
        raise ValueError(f"{what}: x (N, H, W, C) and weights (KH, KW, C, F) must agree on C; "
                         f"got x {x.shape}, weights {Wt.shape}")
    try:
        pads = operator.index(pad_top), operator.index(pad_left)
    except TypeError:
        raise TypeError(f"{what}: padding must be integers; got top {pad_top!r}, "
                        f"left {pad_left!r}") from None
    if min(pads) < 0:
        raise ValueError(f"{what}: padding must be >= 0; got top {pad_top}, left {pad_left}")
    if b is not None and (b.shape != (Wt.shape[3],) or b.dtype != Wt.dtype):
        raise ValueError(f"{what}: bias must have shape ({Wt.shape[3]},) and dtype {Wt.dtype}; "
                         f"got {b.shape} {b.dtype}")
    if out_size is not None and min(out_size) < 1:
        raise ValueError(f"{what}: the output would be empty; got (OH, OW) = {tuple(out_size)}")


def direct_forward(x, Wt, b, pad_top, pad_left, OH, OW, relu=False):
    """y (N, OH, OW, F) = conv(x, Wt) + b, then max(y, 0) if relu; stride 1.
    x (N, H, W, C), Wt (KH, KW, C, F) with F a multiple of 16 or 24 (tile_width), b (F,) or None."""
    N, H, W, C = x.shape
    KH, KW, _, F = Wt.shape
    check_inputs("direct convolution", x, Wt, pad_top, pad_left, b, (OH, OW))
    FB = tile_width(F, OW)
    if FB == 0 or OW < tile_pixels(FB):
        raise ValueError(f"direct convolution needs F a multiple of 16 or 24 and OW >= "
                         f"{tile_pixels(FB or 32)}; got F = {F}, OW = {OW}")
    wpack = pack_weights(Wt, FB)                            # (F/FB, KH*KW*C, FB)
    bias = np.zeros(0, x.dtype) if b is None else b
    y = np.empty((N, OH, OW, F), dtype=x.dtype)
    xps = [np.zeros((OH + KH - 1, OW + KW - 1, C), x.dtype) for _ in range(num_threads())]

    def block(i, t):
        n0 = i * IMAGES_PER_BLOCK
        conv_images(x, n0, min(N, n0 + IMAGES_PER_BLOCK), pad_top, pad_left, wpack, KH, KW,
                    bias, relu, y, xps[t])

    parallel_blocks(-(-N // IMAGES_PER_BLOCK), block)
    return y


def direct_weight_grad(x, dy, KH, KW, pad_top, pad_left, groups):
    """dW (KH, KW, C, F) = sum over images of x_pad (*) dy, stride 1; C % 4 == 0, F % 16 == 0.
    Summed per ``groups`` fixed ranges of images, then the groups in order."""
    N, H, W, C = x.shape
    OH, OW, F = dy.shape[1:]
    check_inputs("direct weight gradient", x, np.empty((KH, KW, C, F), x.dtype), pad_top, pad_left)
    if C % 4 or F % 16 or dy.dtype != x.dtype:
        raise ValueError(f"direct weight gradient needs C a multiple of 4, F of 16 and dy of "
                         f"x's dtype; got C = {C}, F = {F}, dy {dy.dtype}")
    G = min(groups, N)
    dW_g = np.zeros((G, KH, KW, C, F), dtype=x.dtype)
    xps = [np.zeros((OH + KH - 1, OW + KW - 1, C), x.dtype) for _ in range(num_threads())]

    def group(g, t):
        weight_grad_images(x, dy, g * N // G, (g + 1) * N // G, pad_top, pad_left, KH, KW,
                           dW_g[g], xps[t])

    parallel_blocks(G, group)
    return dW_g.sum(axis=0)
