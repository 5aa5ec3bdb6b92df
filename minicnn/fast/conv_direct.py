"""Conv2D's direct path: convolution with register-blocked tiles (stride 1, float32).
rules.py says when it runs.

Same maths as the im2col path (conv.py), without the im2col matrix: see
kernels/direct.py for the loops and kernels/microkernel.py for why they are
fast. Work is handed to every core in whole images (parallel.py), each core
with its own zero-bordered copy of one image, x_pad (OH + KH - 1, OW + KW - 1, C);
dW is summed per fixed group of images, then the groups in order, so results do
not depend on thread timing.

What the kernels need, checked here (they run without bounds checks): float32,
stride 1; forward and dx: the product's output channels a multiple of 16 or 24
(tile_width) and rows at least one tile wide; dW: F a multiple of 16 (C runs with
zero channels up to a multiple of 4: RGB's 3 as 4).
The tile shapes follow the CPU's vector registers (vectors.py).
"""
import operator

import numpy as np

from .kernels.direct import (conv_images, pack_weights, tile_pixels, tile_width,
                              weight_grad_images)
from .parallel import num_threads, parallel_blocks
from .vectors import grad_tile_width, vector_unit

IMAGES_PER_BLOCK = 2     # images per block handed to a core


def check_inputs(what, x, weights, pad_top, pad_left, b=None, out_size=None):
    """The kernels run without bounds checks: refuse what they cannot do, clearly.
    weights (KH, KW, C, F); b: the bias, (F,) or None; out_size: (OH, OW), both >= 1."""
    if x.dtype != np.float32 or weights.dtype != np.float32:
        raise TypeError(f"{what} is float32 only; got x {x.dtype}, weights {weights.dtype}")
    if x.ndim != 4 or weights.ndim != 4 or x.shape[3] != weights.shape[2]:
        raise ValueError(f"{what}: x (N, H, W, C) and weights (KH, KW, C, F) must agree on C; "
                         f"got x {x.shape}, weights {weights.shape}")
    try:
        pads = operator.index(pad_top), operator.index(pad_left)
    except TypeError:
        raise TypeError(f"{what}: padding must be integers; got top {pad_top!r}, "
                        f"left {pad_left!r}") from None
    if min(pads) < 0:
        raise ValueError(f"{what}: padding must be >= 0; got top {pad_top}, left {pad_left}")
    if b is not None and (b.shape != (weights.shape[3],) or b.dtype != weights.dtype):
        raise ValueError(f"{what}: bias must have shape ({weights.shape[3]},) and dtype "
                         f"{weights.dtype}; got {b.shape} {b.dtype}")
    if out_size is not None and min(out_size) < 1:
        raise ValueError(f"{what}: the output would be empty; got (OH, OW) = {tuple(out_size)}")


def forward_tile_pixels(FB, OW):
    """Output pixels per forward tile of FB channels: tile_pixels(FB), except on AVX-512
    with FB = 32 and rows of at least 8 pixels: 8 (the 8 x 32 tile, 16 zmm accumulators;
    3 x 32 would be 6, too few to hide the FMA latency: vectors.py)."""
    if FB == 32 and OW >= 8 and vector_unit().name == "avx512":
        return 8
    return tile_pixels(FB)


def direct_forward(x, weights, b, pad_top, pad_left, OH, OW, relu=False):
    """y (N, OH, OW, F) = conv(x, weights) + b, then max(y, 0) if relu; stride 1.
    x (N, H, W, C), weights (KH, KW, C, F) with F a multiple of 16 or 24 (tile_width),
    b (F,) or None."""
    N, H, W, C = x.shape
    KH, KW, _, F = weights.shape
    check_inputs("direct convolution", x, weights, pad_top, pad_left, b, (OH, OW))
    FB = tile_width(F, OW)               # output channels per tile: 32, 24 or 16 (0: none fits)
    if FB == 0 or OW < tile_pixels(FB):
        raise ValueError(f"direct convolution needs F a multiple of 16 or 24 and OW >= "
                         f"{tile_pixels(FB or 32)}; got F = {F}, OW = {OW}")
    P = forward_tile_pixels(FB, OW)
    W_packed = pack_weights(weights, FB)                            # (F/FB, KH*KW*C, FB)
    bias = np.zeros(0, x.dtype) if b is None else b
    y = np.empty((N, OH, OW, F), dtype=x.dtype)
    x_pads = [np.zeros((OH + KH - 1, OW + KW - 1, C), x.dtype)       # per thread: one image
              for _ in range(num_threads())]                          # with its zero border

    def block(i, thread):                # images n0 .. n0 + IMAGES_PER_BLOCK - 1
        n0 = i * IMAGES_PER_BLOCK
        conv_images(x, n0, min(N, n0 + IMAGES_PER_BLOCK), pad_top, pad_left, W_packed, KH, KW,
                    bias, relu, y, x_pads[thread], P)

    parallel_blocks(-(-N // IMAGES_PER_BLOCK), block)
    return y


def direct_weight_grad(x, dy, KH, KW, pad_top, pad_left, reduce_groups):
    """dW (KH, KW, C, F) = sum over images of x_pad (*) dy, stride 1; F % 16 == 0. The
    tiles take 4 input channels at a time: other C run with zero channels up to a
    multiple of 4 in the per-image copy x_pad (RGB as 4), whose dW rows are dropped.
    Summed per ``reduce_groups`` fixed ranges of images, then the groups in order."""
    N, H, W, C = x.shape
    OH, OW, F = dy.shape[1:]
    check_inputs("direct weight gradient", x, np.empty((KH, KW, C, F), x.dtype), pad_top, pad_left)
    if F % 16 or dy.dtype != x.dtype:
        raise ValueError(f"direct weight gradient needs F a multiple of 16 and dy of x's "
                         f"dtype; got F = {F}, dy {dy.dtype}")
    C4 = -(-C // 4) * 4                  # channels of x_pad and of the tiles
    n_groups = min(reduce_groups, N)
    FB = grad_tile_width(F)              # output channels per tile: 16 (AVX2) or 32 (AVX-512)
    dW_groups = np.zeros((n_groups, KH, KW, C4, F), dtype=x.dtype)  # one accumulator per group
    x_pads = [np.zeros((OH + KH - 1, OW + KW - 1, C4), x.dtype) for _ in range(num_threads())]

    def group(g, thread):                # images g*N//n_groups .. (g+1)*N//n_groups - 1
        weight_grad_images(x, dy, g * N // n_groups, (g + 1) * N // n_groups, pad_top, pad_left,
                           KH, KW, dW_groups[g], x_pads[thread], FB)

    parallel_blocks(n_groups, group)
    return dW_groups.sum(axis=0)[:, :, :C]
