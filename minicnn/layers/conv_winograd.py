"""Conv2D's Winograd path: F(4x4, 3x3) for 3x3 layers (stride 1, float32).

kernels/winograd.py has the algorithm and the kernel. Here the work is cut into
blocks of about TILES_PER_BLOCK 4x4 output tiles (whole rows of tiles), handed
to both cores (kernels/parallel.py), each core with its own scratch: V and M
of a block, 36 x 32 tiles x (C + F) floats, 295 KB for 32 + 32 channels, stay
in the core's L2 cache.

When it runs (Conv2D.use_winograd, the rule): 3x3, stride 1, float32, at least
MIN_WINOGRAD_CHANNELS = 16 input channels in the product (C forward, F for
dx), its output channels a multiple of 32 (F forward, C for dx), maps at least
MIN_WINOGRAD_WIDTH = 7 wide, SLP vectorizer on. Measured per core, batch 128
(benchmarks/bench_winograd.py, results/winograd_vs_other.txt), against the path
taken otherwise: see conv.py's docstring. It loses where a 4x4 tile covers
mostly padding (3x3 maps: 0.4x) and with 3 input channels (the products are
too thin to pay for the transforms: 0.5x).
"""
import numpy as np

from ..kernels.parallel import num_threads, parallel_blocks
from ..kernels.winograd import weight_transform, winograd_rows
from .conv_direct import check_inputs

TILES_PER_BLOCK = 32


def winograd_forward(x, Wt, b, pad_top, pad_left, OH, OW, relu=False):
    """y (N, OH, OW, F) = conv(x, Wt) + b (then max(y, 0) if relu), stride 1;
    x (N, H, W, C), Wt (3, 3, C, F) with F a multiple of 32, b (F,) or None."""
    N, H, W, C = x.shape
    F = Wt.shape[3]
    check_inputs("Winograd convolution", x, Wt, pad_top, pad_left)
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
