"""Conv2D's Winograd paths for 3x3 layers (stride 1, float32): F(4x4, 3x3) for the
forward pass and dx, F(3x3, 4x4) for dW.

kernels/winograd.py and kernels/winograd_grad.py have the algorithms and the
kernels. Here the work is cut into blocks of about TILES_PER_BLOCK 4x4 output
tiles (whole rows of tiles), handed to both cores (kernels/parallel.py), each
core with its own scratch: V and M of a block, 36 x 32 tiles x (C + F) floats,
295 KB for 32 + 32 channels, stay in the core's L2 cache. dW sums its blocks
into one (36, C, F) accumulator per fixed group of blocks (REDUCE_GROUPS in
conv.py), then the groups in order: reproducible whatever the thread timing.

When it runs (Conv2D.use_winograd, the rule): 3x3, stride 1, float32, at least
MIN_WINOGRAD_CHANNELS = 16 input channels in the product (C forward, F for
dx), its output channels a multiple of 32 (F forward, C for dx), maps at least
MIN_WINOGRAD_WIDTH = 7 wide and high, SLP vectorizer on; dW: C % 4 == 0 and
F % 16 == 0 (the 4x16 tiles), C * F <= 64 * 256, same maps (dW of 256->256 @7x7
runs at 0.82x: its products read V and E rows 1 KB apart; blocks of 16 to 256
tiles made no difference). Measured at 2 threads,
batch 128 (benchmarks/bench_winograd.py, results/winograd_vs_other.txt), against
the path taken otherwise: 1.56-2.11x on the thin and wide layers of both nets,
1.15-1.18x at 256->256 @7x7. It loses where a 4x4 tile covers mostly padding
(3x3 maps: 0.32x) and with 3 input channels (the products are too thin to pay
for the transforms: 0.48x).
"""
import numpy as np

from .parallel import num_threads, parallel_blocks
from .kernels.winograd import weight_transform, winograd_rows
from .kernels.winograd_grad import finish, winograd_grad_rows
from .conv_direct import check_inputs

TILES_PER_BLOCK = 32
GRAD_TILES_PER_BLOCK = 32      # dW: tiles per block (V and E of a block, and the accumulators)


def winograd_forward(x, Wt, b, pad_top, pad_left, OH, OW, relu=False):
    """y (N, OH, OW, F) = conv(x, Wt) + b (then max(y, 0) if relu), stride 1;
    x (N, H, W, C), Wt (3, 3, C, F) with F a multiple of 32, b (F,) or None."""
    N, H, W, C = x.shape
    F = Wt.shape[3]
    check_inputs("Winograd convolution", x, Wt, pad_top, pad_left, b, (OH, OW))
    if Wt.shape[:2] != (3, 3) or F % 32:
        raise ValueError(f"Winograd F(4x4, 3x3) needs a 3x3 kernel and F a multiple of 32; "
                         f"got kernel {Wt.shape[:2]}, F = {F}")
    x = np.ascontiguousarray(x)
    Upk = weight_transform(Wt)                                       # (36, F/32, C, 32)
    TH, TW = -(-OH // 4), -(-OW // 4)
    R = max(1, TILES_PER_BLOCK // TW)                                # tile rows per block
    T = max(R * TW, 3)
    bias = np.zeros(0, x.dtype) if b is None else b
    y = np.empty((N, OH, OW, F), dtype=x.dtype)
    nt = num_threads()

    def scratch(size):
        return [np.zeros(size, x.dtype) for _ in range(nt)]
    bands, hrows = scratch(24 * (TW + 1) * C), scratch(36 * TW * C)
    Vs, Ms = scratch(36 * T * C), scratch(36 * T * F)
    qs, yrows = scratch(24 * TW * F), scratch(16 * TW * F)

    def block(i, t):
        g0, g1 = i * R, min(N * TH, i * R + R)
        winograd_rows(x, g0, g1, pad_top, pad_left, Upk, bias, relu, y,
                      bands[t], hrows[t], Vs[t], Ms[t], qs[t], yrows[t])

    parallel_blocks(-(-N * TH // R), block)
    return y


def winograd_weight_grad(x, dy, pad_top, pad_left, groups):
    """dW (3, 3, C, F) of a 3x3, stride-1 convolution by F(3x3, 4x4) (kernels/winograd_grad.py);
    x (N, H, W, C) with C % 4 == 0, dy (N, OH, OW, F) with F % 16 == 0, float32.
    Summed per ``groups`` fixed ranges of tile rows, then the groups in order, so the
    result does not depend on which thread ran what."""
    N, H, W, C = x.shape
    OH, OW, F = dy.shape[1:]
    check_inputs("Winograd weight gradient", x, np.empty((3, 3, C, F), x.dtype), pad_top,
                 pad_left, None, (OH, OW))
    if C % 4 or F % 16 or dy.dtype != x.dtype or dy.shape[0] != N:
        raise ValueError(f"Winograd weight gradient needs C a multiple of 4, F of 16 and dy "
                         f"(N, OH, OW, F) of x's dtype and batch; got x {x.shape} {x.dtype}, "
                         f"dy {dy.shape} {dy.dtype}")
    x, dy = np.ascontiguousarray(x), np.ascontiguousarray(dy)
    TH, TW = -(-OH // 4), -(-OW // 4)
    R = max(1, GRAD_TILES_PER_BLOCK // TW)                           # tile rows per block
    rows = N * TH
    nb = -(-rows // R)
    G = min(groups, nb)
    M_g = np.zeros((G, 36, C, F), x.dtype)
    nt = num_threads()

    def scratch(size):
        return [np.zeros(size, x.dtype) for _ in range(nt)]
    bands, hrows, Vs = scratch(24 * (TW + 1) * C), scratch(36 * TW * C), scratch(36 * R * TW * C)
    dbands, hEs, Es = scratch(16 * TW * F), scratch(24 * TW * F), scratch(36 * R * TW * F)

    def group(g, t):                                  # blocks g*nb//G .. (g+1)*nb//G - 1, in order
        for i in range(g * nb // G, (g + 1) * nb // G):
            winograd_grad_rows(x, dy, i * R, min(rows, i * R + R), pad_top, pad_left, M_g[g],
                               bands[t], hrows[t], Vs[t], dbands[t], hEs[t], Es[t])

    parallel_blocks(G, group)
    return finish(M_g.sum(axis=0, dtype=np.float64), x.dtype)
