"""Conv2D: 2-D convolution (cross-correlation, as in every DL library), NHWC.

Forward, for an input x (N, H, W, C), weights W (KH, KW, C, F), bias b (F,):

    y[n, i, j, f] = b[f] + sum_{kh, kw, c} x_pad[n, i*S + kh, j*S + kw, c] * W[kh, kw, c, f]

computed as matrix products over blocks of output pixels (see kernels/im2col.py):

    cols = im2col(x)                         # (M, K) with M = N*OH*OW, K = KH*KW*C
    y    = cols @ W.reshape(K, F) + b        # (M, F) == (N, OH, OW, F)

Backward, given dy = dL/dy (N, OH, OW, F) seen as a matrix (M, F):

    db    = sum over rows of dy              # (F,)
    dW    = cols.T @ dy                      # (K, F) -> (KH, KW, C, F)
    dx    = col2im(dy @ W.reshape(K, F).T)   # (N, H, W, C), overlaps add up

or, when the stride is 1, dx is itself a convolution: dy, padded by
(KH-1-pad_top, KW-1-pad_left), convolved with the flipped, transposed kernel

    dx    = im2col(dy) @ Wflip,   Wflip[kh, kw, f, c] = W[KH-1-kh, KW-1-kw, c, f]   # (KH*KW*F, C)

Same FLOPs; which is faster depends on the shape of the products (below).

Which path runs, and how the work is cut (rates per core with one-thread
OpenBLAS on a 2-core Zen 3; benchmarks/bench_layers.py times every conv). Tried
in this order, the first whose rule holds: Winograd (3x3 layers,
conv_winograd.py), direct tiles (thin layers, conv_direct.py), tap classes
(small maps, conv_taps.py), and the im2col blocks below, which run everything
else, float64 included (gradient checks), and are the readable baseline:

* Rows: blocks of R = max(1 MB / (K * itemsize), 512) rows of im2col (K = 12:
  21845 rows, K = 288: 910, K >= 512: 512; max_chunk_bytes caps R). Each core
  takes blocks from a shared counter and runs im2col_rows -> matmul on its own
  buffer (kernels/parallel.py): 55-77 GFLOP/s per core on every 3x3 layer of
  the bundled nets, where one 2-thread product over the whole (M, K) matrix
  (up to 400 MB, streamed through memory) got 20-45 in total. Nothing of size
  M*K is allocated. (No im2col at all -- nine shifted (M, C) @ (C, F) products
  over the padded input -- was measured too: 30-50% slower for every layer.)
* dW, db: summed per GROUP of consecutive blocks (REDUCE_GROUPS, in block
  order, whichever thread runs the group), then the groups in order: results
  do not depend on thread timing, so training is bit-for-bit reproducible.
* dx: F > C or stride > 1 -> dcols + col2im, in blocks of whole images (two
  threads never add to the same pixel). F <= C and stride 1, or any stride-1
  layer the Winograd or direct rule takes for dx -> the flipped kernel
  convolution, in blocks of rows of dx. The cheaper one is 5-15% faster
  (64->256: col2im 28 ms vs 32 ms; 256->256: flipped slightly ahead).

* Small maps: when at least TAPS_MIN_PADDING (8%) of the im2col entries would
  be padding zeros (3x3 kernel, 'same': maps of 16x16 and smaller), forward, dW
  and the flipped-kernel dx skip those taps (conv_taps.py), doing that much less
  work. Measured per core (CPU time, batch 128, forward / backward speed-up over
  plain im2col): 256->256 @7x7 1.18x / 1.17x, @3x3 1.44x / 1.45x, 64->64 @15x15
  1.05x / 1.01x, @16x16 1.11x / 1.04x, 32->64 @16x16 1.01x / 0.98x; on 31x31
  (4% padding) it would not pay, so that stays on the plain path.

* Thin layers: float32, stride 1, maps >= MIN_DIRECT_WIDTH (12) wide, and at
  most MAX_DIRECT_CHANNELS (64) output channels in the product (F forward, C
  for dx), a multiple of 16 or 24 -> the direct convolution (conv_direct.py):
  register-blocked numba tiles, no im2col at all. Per core (CPU time, batch
  128, benchmarks/bench_direct.py; results/direct_vs_blas.txt), direct over
  the path taken otherwise: 32->32 @32x32 1.25x forward / 1.24x dW / 1.25x dx,
  3->32 forward 1.68x, 24->64 @31x31 1.17x / 1.05x / 1.10x, 64->64 @15x15
  1.07x / 1.03x / 1.07x; 64->64 @16x16 0.96-1.02x (even). Where the product
  is 256 wide, OpenBLAS wins (dW 0.71x at 64->256), and on 7x7 and 3x3 maps the
  tap-class path does (0.6-0.7x): those keep their paths. Since Winograd
  F(4x4, 3x3) comes first, the direct path now runs dW of the thin layers,
  other kernel sizes, and products whose output is not a multiple of 32.

* 3x3 layers: float32, stride 1, maps >= 7 wide and high, the product's output channels
  (F forward, C for dx) a multiple of 32 and its input channels >= 16 ->
  Winograd F(4x4, 3x3) for the forward pass and dx (conv_winograd.py): 36
  instead of 144 multiply-adds per 4x4 outputs; and for dW when C % 4 == 0,
  F % 16 == 0 and C * F <= 64 * 256, F(3x3, 4x4) (kernels/winograd_grad.py). Measured at 2 threads,
  batch 128 (benchmarks/bench_winograd.py, results/winograd_vs_other.txt)
  against the path taken otherwise: see that file; it loses with 3 input
  channels and on 3x3 maps, hence the rule.

The layer keeps a reference to x (N, H, W, C) for backward.
"""
import numpy as np

from ..kernels.direct import slp_vectorizer_on, tile_width
from ..kernels.im2col import im2col_rows, col2im_rows
from ..kernels.parallel import num_threads, parallel_blocks
from ..kernels.taps import padding_share
from .base import Layer
from .conv_direct import direct_forward, direct_weight_grad
from .conv_taps import taps_forward, taps_weight_grad
from .conv_winograd import winograd_forward, winograd_weight_grad
from .init import as_rng, init_weight


BLOCK_BYTES = 1 << 20  # target size of one block of im2col rows (module docstring)
MIN_BLOCK_ROWS = 512   # ... but at least this many rows, so each product is tall
REDUCE_GROUPS = 4      # dW, db: sums over this many fixed groups of blocks, added in order
TAPS_MIN_PADDING = 0.08  # take the tap-class path (conv_taps.py) from this share of padding on
MIN_DIRECT_WIDTH = 12    # direct path (conv_direct.py) on maps at least this wide ...
MAX_DIRECT_CHANNELS = 64  # ... when the product's output has at most this many channels
MIN_WINOGRAD_CHANNELS = 16  # Winograd (conv_winograd.py) for 3x3 when the product has >= this
MIN_WINOGRAD_WIDTH = 7      # many input channels, on maps at least this wide and high;
MAX_WINOGRAD_DW_SIZE = 64 * 256  # dW by Winograd up to this C * F (256->256: 0.82x, its
                                 # products read V and E with strides of 1 KB)


def conv_output_size(size, k, stride, padding):
    """Output length and (before, after) padding along one axis.

    padding: an int p (p on both sides), "valid" (0) or "same" (output
    ceil(size / stride), the extra pixel of an odd total going after, as in
    TensorFlow).
    """
    if padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + k - size, 0)
        return out, total // 2, total - total // 2
    p = 0 if padding == "valid" else padding
    out = (size + 2 * p - k) // stride + 1
    return out, p, p


class Conv2D(Layer):
    """2-D convolution on NHWC input.

    Args:
        in_channels, out_channels: C and F.
        kernel_size: int or (KH, KW).
        stride: int.
        padding: int, "same" or "valid".
        bias: add a learned bias per output channel.
        init: "he" (normal, for ReLU-family nets) or "glorot" (uniform).
        rng: np.random.Generator or int seed, for the initial weights.
        dtype: parameter dtype (float32 for training, float64 for gradient checks).

    Params: W (KH, KW, C, F), b (F,).
    """

    cached = ("x",)

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding="same",
                 bias=True, init="he", rng=None, dtype=np.float32, name=None,
                 max_chunk_bytes=64 << 20):
        super().__init__(name)
        KH, KW = (kernel_size, kernel_size) if np.isscalar(kernel_size) else tuple(kernel_size)
        for label, v in (("in_channels", in_channels), ("out_channels", out_channels),
                         ("kernel_size", KH), ("kernel_size", KW), ("stride", stride)):
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{self.name}: {label} must be a positive int, got {v!r}")
        if not (padding in ("same", "valid") or (isinstance(padding, (int, np.integer)) and padding >= 0)):
            raise ValueError(f"{self.name}: padding must be a non-negative int, 'same' or 'valid', "
                             f"got {padding!r}")
        self.C, self.F, self.KH, self.KW = in_channels, out_channels, KH, KW
        self.stride, self.padding, self.use_bias = stride, padding, bias
        self.max_chunk_bytes = max_chunk_bytes
        self.taps_min_padding = TAPS_MIN_PADDING    # > 1: never skip padding taps; 0: always
        self.allow_direct = True                    # False: never take the direct path
        self.allow_winograd = True                  # False: never take the Winograd path
        fan_in, fan_out = KH * KW * in_channels, KH * KW * out_channels
        self.add_param("W", init_weight((KH, KW, in_channels, out_channels), fan_in, fan_out,
                                        init, as_rng(rng), dtype))
        if bias:
            self.add_param("b", np.zeros(out_channels, dtype=dtype))
        self.x = None

    def __repr__(self):
        return (f"{self.name}({self.C}->{self.F}, k={self.KH}x{self.KW}, s={self.stride}, "
                f"p={self.padding!r}, bias={self.use_bias})")

    def geometry(self, H, W):
        OH, pt, _ = conv_output_size(H, self.KH, self.stride, self.padding)
        OW, pl, _ = conv_output_size(W, self.KW, self.stride, self.padding)
        if OH < 1 or OW < 1:
            raise ValueError(f"{self.name}: input {H}x{W} is smaller than the "
                             f"{self.KH}x{self.KW} kernel with padding {self.padding!r}")
        return OH, OW, pt, pl

    def output_shape(self, input_shape):
        H, W, _ = input_shape
        OH, OW, _, _ = self.geometry(H, W)
        return (OH, OW, self.F)

    def flops(self, input_shape):
        OH, OW, _ = self.output_shape(input_shape)
        return 2 * OH * OW * self.KH * self.KW * self.C * self.F

    def block_rows(self, M, K, itemsize):
        """Rows per block of im2col (R, K): BLOCK_BYTES worth, at least MIN_BLOCK_ROWS,
        never more than max_chunk_bytes (a hard cap: 1 gives one-row blocks) or M."""
        row = K * itemsize
        R = min(max(BLOCK_BYTES // row, MIN_BLOCK_ROWS), self.max_chunk_bytes // row, M)
        return int(max(1, R))

    def check_dtype(self, x):
        if x.dtype != self.params["W"].dtype:
            raise TypeError(f"{self.name}: input dtype {x.dtype} does not match parameter dtype "
                            f"{self.params['W'].dtype}; cast the input or call model.to(dtype)")

    def use_taps(self, H, W, OH, OW, pt, pl, stride):
        """The rule: skip padding taps when they would be >= taps_min_padding of im2col."""
        return padding_share(H, W, self.KH, self.KW, stride, pt, pl, OH, OW) >= self.taps_min_padding

    def use_winograd(self, dtype, size, dx=False, weight_grad=False):
        """The rule for the Winograd paths (conv_winograd.py says why): 3x3, stride 1,
        float32, the map the product runs over at least MIN_WINOGRAD_WIDTH wide and high
        (size = the smaller side), numba's SLP vectorizer on (the products use the tiles),
        and for the forward pass and dx (through the flipped kernel) the product's output
        channels (F forward, C for dx) a multiple of 32 and its input channels (the
        others) >= MIN_WINOGRAD_CHANNELS; for dW, C % 4 == 0, F % 16 == 0 and
        C * F <= MAX_WINOGRAD_DW_SIZE."""
        if not (self.allow_winograd and dtype == np.float32 and self.stride == 1
                and (self.KH, self.KW) == (3, 3) and size >= MIN_WINOGRAD_WIDTH
                and slp_vectorizer_on()):
            return False
        if weight_grad:
            return self.C % 4 == 0 and self.F % 16 == 0 and self.C * self.F <= MAX_WINOGRAD_DW_SIZE
        in_channels, out_channels = (self.F, self.C) if dx else (self.C, self.F)
        return in_channels >= MIN_WINOGRAD_CHANNELS and out_channels % 32 == 0

    def use_direct(self, dtype, width, out_channels, weight_grad=False):
        """The rule for the direct path (conv_direct.py's docstring says why): float32,
        stride 1, SLP vectorizer on, maps >= MIN_DIRECT_WIDTH wide, and the product's output
        channels (F forward, C for dx) <= MAX_DIRECT_CHANNELS and a multiple of 16 or 24
        (tile_width);
        for dW, C % 4 == 0 and F % 16 == 0 (both <= MAX_DIRECT_CHANNELS)."""
        if not (self.allow_direct and dtype == np.float32 and self.stride == 1
                and width >= MIN_DIRECT_WIDTH and slp_vectorizer_on()):
            return False
        if weight_grad:
            return (self.C % 4 == 0 and self.F % 16 == 0
                    and max(self.C, self.F) <= MAX_DIRECT_CHANNELS)
        return out_channels <= MAX_DIRECT_CHANNELS and tile_width(out_channels, width) > 0

    def rows_for(self, itemsize):
        return lambda M, K: self.block_rows(M, K, itemsize)

    def forward(self, x, training=False, relu=False):
        """y (N, OH, OW, F); relu=True returns max(y, 0) instead, applied block by block
        while the output is in cache (Sequential fuses Conv2D + ReLU this way)."""
        self.check_input(x, ndim=4, channels=self.C)
        self.check_dtype(x)
        x = np.ascontiguousarray(x)
        N, H, W, C = x.shape
        OH, OW, pt, pl = self.geometry(H, W)
        if self.use_winograd(x.dtype, min(OH, OW)):
            self.x = x
            return winograd_forward(x, self.params["W"],
                                    self.params["b"] if self.use_bias else None, pt, pl, OH, OW, relu)
        if self.use_direct(x.dtype, OW, self.F):
            self.x = x
            return direct_forward(x, self.params["W"], self.params["b"] if self.use_bias else None,
                                  pt, pl, OH, OW, relu)
        if self.use_taps(H, W, OH, OW, pt, pl, self.stride):
            b = self.params["b"] if self.use_bias else None
            self.x = x
            y = taps_forward(x, self.params["W"], b, self.stride, pt, pl, OH, OW,
                             self.rows_for(x.itemsize))
            return np.maximum(y, 0, out=y) if relu else y
        M, K, F = N * OH * OW, self.KH * self.KW * C, self.F
        Wmat = self.params["W"].reshape(K, F)
        b = self.params["b"] if self.use_bias else None
        y = np.empty((N, OH, OW, F), dtype=x.dtype)
        y2 = y.reshape(M, F)
        R = self.block_rows(M, K, x.itemsize)
        bufs = [np.empty((R, K), dtype=x.dtype) for _ in range(num_threads())]

        def block(i, t):                     # rows r0:r1 of y
            r0, r1 = i * R, min(M, i * R + R)
            cols = im2col_rows(x, self.KH, self.KW, self.stride, pt, pl, OH, OW, r0,
                               bufs[t][:r1 - r0])                        # (R, K)
            np.matmul(cols, Wmat, out=y2[r0:r1])                          # (R, F)
            if b is not None:
                y2[r0:r1] += b
            if relu:
                np.maximum(y2[r0:r1], 0, out=y2[r0:r1])

        parallel_blocks(-(-M // R), block)
        self.x = x
        return y

    def backward(self, dy):
        x = self.x
        N, H, W, C = x.shape
        OH, OW, pt, pl = self.geometry(H, W)
        self.check_backward(dy, (N, OH, OW, self.F))
        M, K, F, KH, KW = N * OH * OW, self.KH * self.KW * C, self.F, self.KH, self.KW
        dy = np.ascontiguousarray(dy, dtype=x.dtype)
        dy2 = dy.reshape(M, F)
        need_db = self.use_bias and "b" not in self.frozen
        need_dW = "W" not in self.frozen
        T = num_threads()
        if need_dW and self.use_winograd(x.dtype, min(OH, OW), weight_grad=True):
            if need_db:
                self.grads["b"][...] = dy2.sum(axis=0, dtype=np.float64)
            self.grads["W"][...] = winograd_weight_grad(x, dy, pt, pl, REDUCE_GROUPS)
        elif need_dW and self.use_direct(x.dtype, OW, F, weight_grad=True):
            if need_db:
                self.grads["b"][...] = dy2.sum(axis=0, dtype=np.float64)
            self.grads["W"][...] = direct_weight_grad(x, dy, KH, KW, pt, pl, REDUCE_GROUPS)
        elif (need_db or need_dW) and self.use_taps(H, W, OH, OW, pt, pl, self.stride):
            if need_db:
                self.grads["b"][...] = dy2.sum(axis=0, dtype=np.float64)
            if need_dW:
                self.grads["W"][...] = taps_weight_grad(x, dy, KH, KW, self.stride, pt, pl,
                                                        self.rows_for(x.itemsize), REDUCE_GROUPS)
        elif need_db or need_dW:
            R = self.block_rows(M, K, x.itemsize)
            nb = -(-M // R)
            G = min(REDUCE_GROUPS, nb)           # fixed groups of blocks, one accumulator each
            db_g = np.zeros((G, F))                                     # float64 partial sums
            dW_g = np.zeros((G, K, F), dtype=x.dtype) if need_dW else None
            tmp = np.empty((T, K, F), dtype=x.dtype) if need_dW else None
            bufs = [np.empty((R, K), dtype=x.dtype) for _ in range(T)] if need_dW else None

            def group(g, t):                     # blocks g*nb//G .. (g+1)*nb//G - 1, in order
                for i in range(g * nb // G, (g + 1) * nb // G):
                    r0, r1 = i * R, min(M, i * R + R)
                    dyb = dy2[r0:r1]                                      # (R, F)
                    if need_db:
                        db_g[g] += dyb.sum(axis=0)
                    if need_dW:
                        cols = im2col_rows(x, KH, KW, self.stride, pt, pl, OH, OW, r0,
                                           bufs[t][:r1 - r0])            # (R, K)
                        np.matmul(cols.T, dyb, out=tmp[t])                # (K, F)
                        dW_g[g] += tmp[t]

            parallel_blocks(G, group)
            if need_db:
                self.grads["b"][...] = db_g.sum(axis=0)
            if need_dW:
                self.grads["W"][...] = dW_g.sum(axis=0).reshape(self.grads["W"].shape)
        if getattr(self, "skip_input_grad", False):
            return None
        return self.input_grad(dy, x.shape, OH, OW, pt, pl)

    def dx_fast_path(self, dtype, x_shape, pt, pl):
        """"winograd", "direct" or None: the fast path for dx as the flipped-kernel
        convolution of dy, padded by (KH-1-pt, KW-1-pl). Those paths need that padding to be
        >= 0, i.e. padding <= kernel size - 1 (larger paddings keep the im2col paths)."""
        if self.stride != 1 or self.KH - 1 - pt < 0 or self.KW - 1 - pl < 0:
            return None
        if self.use_winograd(dtype, min(x_shape[1], x_shape[2]), dx=True):
            return "winograd"
        return "direct" if self.use_direct(dtype, x_shape[2], self.C) else None

    def input_grad(self, dy, x_shape, OH, OW, pt, pl):
        """dx (N, H, W, C) from dy (N, OH, OW, F), by the cheaper path (module docstring)."""
        fast = self.dx_fast_path(dy.dtype, x_shape, pt, pl)
        if self.stride == 1 and (self.F <= self.C or fast):
            return self._dx_flipped_conv(dy, x_shape, pt, pl, fast)
        return self._dx_col2im(dy, x_shape, OH, OW, pt, pl)

    def _dx_flipped_conv(self, dy, x_shape, pt, pl, fast=None):
        """dx = conv(dy padded by (KH-1-pt, KW-1-pl), Wflip): by the fast path ``fast``
        ("winograd", "direct") or im2col(dy) @ Wflip in blocks of rows of dx (stride 1 only)."""
        N, H, W, C = x_shape
        KH, KW, F = self.KH, self.KW, self.F
        Wflip = np.ascontiguousarray(self.params["W"][::-1, ::-1].transpose(0, 1, 3, 2))
        OH, OW = dy.shape[1:3]
        if fast == "winograd":
            return winograd_forward(dy, Wflip, None, KH - 1 - pt, KW - 1 - pl, H, W)
        if fast == "direct":
            return direct_forward(dy, Wflip, None, KH - 1 - pt, KW - 1 - pl, H, W)
        if self.use_taps(OH, OW, H, W, KH - 1 - pt, KW - 1 - pl, 1):
            return taps_forward(dy, Wflip, None, 1, KH - 1 - pt, KW - 1 - pl, H, W,
                                self.rows_for(dy.itemsize))
        Wflip = Wflip.reshape(KH * KW * F, C)
        dx = np.empty(x_shape, dtype=dy.dtype)
        dx2 = dx.reshape(N * H * W, C)
        M, K = N * H * W, KH * KW * F
        R = self.block_rows(M, K, dy.itemsize)
        bufs = [np.empty((R, K), dtype=dy.dtype) for _ in range(num_threads())]

        def block(i, t):
            r0, r1 = i * R, min(M, i * R + R)
            cols = im2col_rows(dy, KH, KW, 1, KH - 1 - pt, KW - 1 - pl, H, W, r0,
                               bufs[t][:r1 - r0])                        # (R, KH*KW*F)
            np.matmul(cols, Wflip, out=dx2[r0:r1])                        # (R, C)

        parallel_blocks(-(-M // R), block)
        return dx

    def _dx_col2im(self, dy, x_shape, OH, OW, pt, pl):
        """dx = col2im(dy @ W.T), in blocks of whole images (col2im adds across rows)."""
        N = x_shape[0]
        KH, KW, F = self.KH, self.KW, self.F
        K = KH * KW * self.C
        WmatT = self.params["W"].reshape(K, F).T
        dx = np.empty(x_shape, dtype=dy.dtype)
        dy2 = dy.reshape(N * OH * OW, F)
        R = self.block_rows(N * OH * OW, K, dy.itemsize)
        per = max(1, R // (OH * OW))                                   # images per block
        bufs = [np.empty((R, K), dtype=dy.dtype) for _ in range(num_threads())]

        def block(i, t):
            n0, n1 = i * per, min(N, i * per + per)
            dx[n0:n1] = 0.0
            for r0 in range(n0 * OH * OW, n1 * OH * OW, R):
                r1 = min(r0 + R, n1 * OH * OW)
                dcols = np.matmul(dy2[r0:r1], WmatT, out=bufs[t][:r1 - r0])  # (R, K)
                col2im_rows(dcols, KH, KW, self.stride, pt, pl, OH, OW, r0, dx)

        parallel_blocks(-(-N // per), block)
        return dx
