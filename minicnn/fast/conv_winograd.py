"""Conv2D's Winograd paths for 3x3 layers (stride 1, float32): F(4x4, 3x3) for the
forward pass and dx, F(3x3, 4x4) for dW. rules.py says when they run.

kernels/winograd.py and kernels/winograd_grad.py have the algorithms and the
kernels. Names: the output is cut into 4x4 tiles, TH = ceil(OH / 4) rows of
TW = ceil(OW / 4) tiles per image; a "tile row" is the TW tiles of one row of one
image, and the batch has N * TH of them, numbered n * TH + ty.

Here the work is cut into blocks of whole tile rows, about TILES_PER_BLOCK tiles
each (forward_tiles_per_block: more on cores with a large L2), handed to every
core (parallel.py), each core with its own scratch: V and M of a block, 36
positions x 32 tiles x (C + F) floats, 295 KB for 32 + 32 channels, stay in the
core's L2 cache (for dW with C * F above WIDE_DW_ABOVE, blocks of 128 tiles whose
rows of V and E lie DW_ROW_PAD floats further apart, kernels/winograd_grad.py). dW sums its
blocks into one (36, C, F) accumulator per fixed group of blocks (REDUCE_GROUPS in
conv.py), then the groups in order: reproducible whatever the thread timing. The
weight transforms (U for the forward pass and dx; the groups' sum and G^T M G for
dW) are shared out by input channel among the cores for large layers.

Measurements of these paths against the others: docs/performance.md, "Winograd".
"""
import functools
import os

import numpy as np

from .parallel import num_threads, parallel_blocks
from .kernels.winograd import G, weight_transform_into, winograd_rows
from .kernels.winograd_grad import weight_grad_output_transform_into, winograd_grad_rows
from .conv_direct import check_inputs
from .vectors import forward_tile_width, grad_tile_width, vector_unit

TILES_PER_BLOCK = 32
LARGE_L2_BYTES = 2 * 1024 ** 2   # with at least this much L2 per core, larger blocks where
WIDE_LAYER_TILES = 48            # U is large (C * F >= 64 * 256: read once per block) and
THIN_LAYER_TILES = 64            # where a tile's V and M are small (C + F <= 64: 9 KB)
GRAD_TILES_PER_BLOCK = 32      # dW: tiles per block (V and E of a block, and the accumulators)
WIDE_DW_ABOVE = 64 * 256       # dW: from C * F above this, blocks of ...
WIDE_GRAD_TILES_PER_BLOCK = 128   # ... this many tiles, whose rows of V and E are ...
DW_ROW_PAD = 16                   # ... this many floats further apart (docs/performance.md)


SHARED_TRANSFORMS_ABOVE = 64 * 64   # weight transforms of C * F above this: channels shared


def over_input_channels(C, F, transform):
    """Call transform(c0, c1) on ranges of the C input channels that cover them all: on
    every core, a few ranges per core, when C * F is above SHARED_TRANSFORMS_ABOVE (a
    256 x 256 layer's weights take milliseconds to transform: 36 x 256 x 256 values of
    U, or 4 groups of its M to sum for dW); else one call, where a thread hand-off
    would cost more than it saves. Each channel's result is computed the same way
    whoever computes it: the same bits whatever the split."""
    n_ranges = min(C, 4 * num_threads()) if C * F > SHARED_TRANSFORMS_ABOVE else 1
    parallel_blocks(n_ranges, lambda i, thread: transform(i * C // n_ranges,
                                                          (i + 1) * C // n_ranges))


def parallel_weight_transform(W, FB):
    """U (36, F/FB, C, FB) = G g G^T per (c, f), packed in FB-channel blocks: the
    kernels' weight_transform (kernels/winograd.py), on every core for large layers."""
    C, F = W.shape[2:]
    U = np.empty((36, F // FB, C, FB), W.dtype)
    W = np.ascontiguousarray(W)
    over_input_channels(C, F, lambda c0, c1: weight_transform_into(W, G, U, c0, c1))
    return U


@functools.lru_cache(maxsize=None)
def l2_cache_bytes(folder="/sys/devices/system/cpu/cpu0/cache"):
    """One core's L2 cache in bytes, as Linux reports it in ``folder``; 0 where it does not."""
    try:
        for index in sorted(os.listdir(folder)):
            with open(os.path.join(folder, index, "level")) as f:
                if f.read().strip() != "2":
                    continue
            with open(os.path.join(folder, index, "size")) as f:
                size = f.read().strip()                      # "2048K", "1M"
            scale = {"K": 1024, "M": 1024 ** 2}.get(size[-1:], 1)
            return int(size.rstrip("KM")) * scale
    except (OSError, ValueError):
        pass
    return 0


def forward_tiles_per_block(C, F):
    """Tiles per block of the forward/dx Winograd: TILES_PER_BLOCK, or on cores with a
    large L2 (LARGE_L2_BYTES) more where it pays: WIDE_LAYER_TILES when U is large (the
    products read all of U once per block, so larger blocks read it fewer times) and
    THIN_LAYER_TILES when each tile's V and M are small (docs/performance.md, "Serial
    tails and block sizes")."""
    if l2_cache_bytes() >= LARGE_L2_BYTES:
        if C * F >= 64 * 256:
            return WIDE_LAYER_TILES
        if C + F <= 64:
            return THIN_LAYER_TILES
    return TILES_PER_BLOCK


def padded_width(F):
    """The product's output channels rounded up to the tiles' 32: F = 24 runs as 32."""
    return -(-F // 32) * 32


MAX_WIDE_TILE_CHANNELS = 128   # AVX-512 forward/dx products: 4 x 64 tiles up to this C


def forward_product_tile(C, F):
    """(FB, P) of the forward/dx products of C input and F (padded) output channels: FB
    channels by P Winograd tiles. AVX2: 3 x 32. AVX-512: 4 x 64 (16 zmm accumulators)
    where 64 divides F and the product's C x 64 block of U (32 KiB at C = 128) fits in
    L1; else 8 x 32 (16 accumulators too, on a block half as wide; 3 x 32 would be 6)."""
    if vector_unit().name != "avx512":
        return 32, 3
    if forward_tile_width(F) == 64 and C <= MAX_WIDE_TILE_CHANNELS:
        return 64, 4
    return 32, 8


def unpooled_input(x, unpool):
    """(argmax, (H, W)) for x read through a max-pool's backward (``unpool`` = (arg, (H,
    W)): arg int8 of x's shape, H // 2 and W // 2 x's rows and columns), checked; (an
    empty argmax, x's own (H, W)) when unpool is None."""
    if unpool is None:
        return np.empty((0, 0, 0, 0), np.int8), x.shape[1:3]
    arg, (H, W) = unpool
    if arg.dtype != np.int8 or arg.shape != x.shape or (H // 2, W // 2) != x.shape[1:3]:
        raise ValueError(f"unpooling needs the pool's int8 argmax of the gradient's shape and "
                         f"the map it pooled, twice as large (+1); got gradient {x.shape}, "
                         f"argmax {arg.shape} {arg.dtype}, map {(H, W)}")
    return np.ascontiguousarray(arg), (H, W)


def winograd_forward(x, weights, b, pad_top, pad_left, OH, OW, relu=False, pool=False,
                     unpool=None, mask=None):
    """y (N, OH, OW, F) = conv(x, weights) + b (then max(y, 0) if relu), stride 1;
    x (N, H, W, C), weights (3, 3, C, F), b (F,) or None. The product tiles are 32
    output channels wide: any other F runs as padded_width(F) with zero filters, of
    which the kernel writes the first F. pool=True: returns (the 2x2, stride-2
    max-pool of y (N, OH // 2, OW // 2, F), its argmax as MaxPool2D keeps it) instead,
    made from each tile's outputs while they are in cache; y itself is never written.
    unpool=(arg, (H, W)): x is the gradient of a 2x2, stride-2 max-pool, arg its argmax
    (int8, x's shape), and the input convolved is that pool's backward, (N, H, W, C),
    read through arg as the kernel copies it, never written (dx of a conv + pool).
    mask (N, OH, OW, F_out) of x's dtype, or None; only with b None, relu and pool False:
    for dx of a conv whose input a ReLU made, mask is that input, and y is written as
    y where mask > 0, else 0 (dL/dz = dL/dx where x > 0: the ReLU's backward)."""
    N, C = x.shape[0], x.shape[3]
    F_out = weights.shape[3]
    check_inputs("Winograd convolution", x, weights, pad_top, pad_left, b, (OH, OW))
    unpool_arg, (H, W) = unpooled_input(x, unpool)
    if weights.shape[:2] != (3, 3):
        raise ValueError(f"Winograd F(4x4, 3x3) needs a 3x3 kernel; got {weights.shape[:2]}")
    if mask is None:
        mask = np.empty((0, 0, 0, 0), x.dtype)
    elif (pool or relu or b is not None or mask.shape != (N, OH, OW, F_out)
          or mask.dtype != x.dtype):
        raise ValueError(f"a ReLU mask (for dx) needs the output's shape {(N, OH, OW, F_out)} "
                         f"and dtype {x.dtype}, and no bias, ReLU or pool; got {mask.shape} "
                         f"{mask.dtype}, bias {b is not None}, relu={relu}, pool={pool}")
    F = padded_width(F_out)
    if F != F_out:                                                   # zero filters
        weights = np.pad(weights, ((0, 0), (0, 0), (0, 0), (0, F - F_out)))
    x, mask = np.ascontiguousarray(x), np.ascontiguousarray(mask)
    FB, P = forward_product_tile(C, F)
    U_packed = parallel_weight_transform(weights, FB)                # (36, F/FB, C, FB)
    TH, TW = -(-OH // 4), -(-OW // 4)                                # tile rows, tiles per row
    rows_per_block = max(1, forward_tiles_per_block(C, F) // TW)     # tile rows per block
    tiles_per_block = max(rows_per_block * TW, P)                    # >= one product tile
    bias = np.zeros(0, x.dtype) if b is None else b
    if pool:
        pooled = np.empty((N, OH // 2, OW // 2, F_out), dtype=x.dtype)
        arg = np.empty(pooled.shape, dtype=np.int8)
        y = np.empty((N, OH, OW, 0), dtype=x.dtype)                  # not written
    else:
        pooled, arg = np.empty((0, 0, 0, 0), x.dtype), np.empty((0, 0, 0, 0), np.int8)
        y = np.empty((N, OH, OW, F_out), dtype=x.dtype)
    n_threads = num_threads()

    def scratch(size, make=np.zeros):    # one flat buffer per thread (sizes: winograd_rows)
        return [make(size, x.dtype) for _ in range(n_threads)]
    bands, partial_Vs = scratch(24 * (TW + 1) * C), scratch(36 * TW * C)
    # V and M (megabytes for a wide layer: zeroing them cost more than a block's products
    # of a small one) need no zeros: the products read V's tiles only after the input
    # transform wrote them, except the padding tiles of a block smaller than a product
    # tile, whose M rows the output transform never reads.
    Vs = scratch(36 * tiles_per_block * C, np.empty)
    Ms = scratch(36 * tiles_per_block * F, np.empty)
    partial_Ys, y_tiles_bufs = scratch(24 * TW * F), scratch(16 * TW * F)

    def block(i, thread):                # tile rows row0 .. row1-1 of the batch
        row0, row1 = i * rows_per_block, min(N * TH, i * rows_per_block + rows_per_block)
        winograd_rows(x, row0, row1, pad_top, pad_left, U_packed, P, bias, relu, y,
                      bands[thread], partial_Vs[thread], Vs[thread], Ms[thread], partial_Ys[thread],
                      y_tiles_bufs[thread], pooled, arg, unpool_arg, H, W, mask)

    parallel_blocks(-(-N * TH // rows_per_block), block)
    return (pooled, arg) if pool else y


def winograd_weight_grad(x, dy, pad_top, pad_left, reduce_groups, unpool=None):
    """dW (3, 3, C, F) of a 3x3, stride-1 convolution by F(3x3, 4x4) (kernels/winograd_grad.py);
    x (N, H, W, C) with C % 4 == 0, dy (N, OH, OW, F) with F % 16 == 0, float32.
    Summed per ``reduce_groups`` fixed ranges of tile rows, then the groups in order, so
    the result does not depend on which thread ran what. unpool=(arg, (OH, OW)): dy is
    a 2x2, stride-2 max-pool's gradient and the dy used is that pool's backward
    (winograd_forward)."""
    N, H, W, C = x.shape
    F = dy.shape[3]
    dy_arg, (OH, OW) = unpooled_input(dy, unpool)
    check_inputs("Winograd weight gradient", x, np.empty((3, 3, C, F), x.dtype), pad_top,
                 pad_left, None, (OH, OW))
    if C % 4 or F % 16 or dy.dtype != x.dtype or dy.shape[0] != N:
        raise ValueError(f"Winograd weight gradient needs C a multiple of 4, F of 16 and dy "
                         f"(N, OH, OW, F) of x's dtype and batch; got x {x.shape} {x.dtype}, "
                         f"dy {dy.shape} {dy.dtype}")
    x, dy = np.ascontiguousarray(x), np.ascontiguousarray(dy)
    TH, TW = -(-OH // 4), -(-OW // 4)                                # tile rows, tiles per row
    wide = C * F > WIDE_DW_ABOVE
    tiles_per_block = WIDE_GRAD_TILES_PER_BLOCK if wide else GRAD_TILES_PER_BLOCK
    row_pad = DW_ROW_PAD if wide else 0  # a tile's C values of V (F of E) + row_pad to the next
    rows_per_block = max(1, tiles_per_block // TW)                   # tile rows per block
    n_tile_rows = N * TH
    n_blocks = -(-n_tile_rows // rows_per_block)
    n_groups = min(reduce_groups, n_blocks)
    FB = grad_tile_width(F)              # product tile: 4 x 16 (AVX2) or 4 x 32 (AVX-512) ...
    P = 8 if FB == 32 and C % 8 == 0 else 4   # ... 8 x 32 when 8 divides C
    M_groups = np.empty((n_groups, 36, C, F), x.dtype)   # one M per group; its first block sets it
    n_threads = num_threads()

    def scratch(size):                   # one flat buffer per thread (sizes: winograd_grad_rows),
        return [np.empty(size, x.dtype) for _ in range(n_threads)]   # written before it is read
    bands, partial_Vs = scratch(24 * (TW + 1) * C), scratch(36 * TW * C)
    Vs = scratch(36 * rows_per_block * TW * (C + row_pad))
    dy_bands, partial_Es = scratch(16 * TW * F), scratch(24 * TW * F)
    Es = scratch(36 * rows_per_block * TW * (F + row_pad))

    def group(g, thread):                # group g: its range of blocks, in order
        first = g * n_blocks // n_groups
        for i in range(first, (g + 1) * n_blocks // n_groups):
            winograd_grad_rows(x, dy, i * rows_per_block,
                               min(n_tile_rows, i * rows_per_block + rows_per_block),
                               pad_top, pad_left, M_groups[g], bands[thread], partial_Vs[thread],
                               Vs[thread], dy_bands[thread], partial_Es[thread], Es[thread],
                               C + row_pad, F + row_pad, P, FB, i > first, dy_arg, OH, OW)

    parallel_blocks(n_groups, group)
    dW = np.empty((3, 3, C, F), x.dtype)          # G^T (sum of the groups) G, in float64
    over_input_channels(C, F, lambda c0, c1: weight_grad_output_transform_into(M_groups, G, dW,
                                                                               c0, c1))
    return dW
