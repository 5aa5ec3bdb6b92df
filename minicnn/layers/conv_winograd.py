"""Conv2D's Winograd path: F(2x2, 3x3) for wide 3x3 layers (stride 1, float32).

kernels/winograd.py has the algorithm and the kernel. Here the work is cut into
blocks of whole images, about TILES_PER_BLOCK 2x2 output tiles each, handed to
both cores (kernels/parallel.py), each core with scratch small enough for its
L2 cache (32 tiles of 256 channels: V and M 32 KB, Yacc 128 KB, the padded
images 200 KB).

When it runs (Conv2D.use_winograd, the rule): 3x3, stride 1, float32, C and F
both >= 64 and the wider >= 128, the product's output channels a multiple of 32
(F forward, C for dx), maps >= 6 wide. Measured at 2 threads, batch 128
(benchmarks/bench_winograd.py, results/winograd_vs_other.txt), against the path
taken otherwise: 64->256 @15x15 1.25x forward / 1.18x dx, 256->256 @7x7 1.20x,
128->128 @8x8 1.4x; 64->64 @15x15 0.85x and @16x16 1.04x (thin: the direct tiles
are as good), so those keep their paths; on 3x3 maps a 2x2 tile covers 4 outputs
for 1 to 4 real ones and it loses.
"""
import numpy as np

from ..kernels.parallel import num_threads, parallel_blocks
from ..kernels.winograd import pack_transformed, weight_transform, winograd_images
from .conv_direct import check_inputs

TILES_PER_BLOCK = 32


def winograd_forward(x, Wt, b, pad_top, pad_left, OH, OW, relu=False):
    """y (N, OH, OW, F) = conv(x, Wt) + b (then max(y, 0) if relu), stride 1;
    x (N, H, W, C), Wt (3, 3, C, F) with F a multiple of 32, b (F,) or None."""
    N, H, W, C = x.shape
    F = Wt.shape[3]
    check_inputs("Winograd convolution", x, Wt, pad_top, pad_left)
    if Wt.shape[:2] != (3, 3) or F % 32:
        raise ValueError(f"Winograd F(2x2, 3x3) needs a 3x3 kernel and F a multiple of 32; "
                         f"got kernel {Wt.shape[:2]}, F = {F}")
    Upk = pack_transformed(weight_transform(Wt))                     # (16, F/32, C, 32)
    TH, TW = -(-OH // 2), -(-OW // 2)
    per = max(1, TILES_PER_BLOCK // (TH * TW))                       # images per block
    T = max(per * TH * TW, 3)
    bias = np.zeros(0, x.dtype) if b is None else b
    y = np.empty((N, OH, OW, F), dtype=x.dtype)
    nt = num_threads()
    xps = [np.zeros((per, 2 * TH + 2, 2 * TW + 2, C), x.dtype) for _ in range(nt)]
    Vs = [np.zeros((T, C), x.dtype) for _ in range(nt)]
    Ms = [np.empty((T, F), x.dtype) for _ in range(nt)]
    Ys = [np.empty((T, 4, F), x.dtype) for _ in range(nt)]

    def block(i, t):
        n0, n1 = i * per, min(N, i * per + per)
        winograd_images(x, n0, n1, pad_top, pad_left, Upk, bias, relu, y,
                        xps[t], Vs[t], Ms[t], Ys[t])

    parallel_blocks(-(-N // per), block)
    return y
