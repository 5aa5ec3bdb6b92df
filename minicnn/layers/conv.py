"""Conv2D: 2-D convolution (cross-correlation, as in every DL library), NHWC.

Forward, for an input x (N, H, W, C), weights W (KH, KW, C, F), bias b (F,):

    y[n, i, j, f] = b[f] + sum_{kh, kw, c} x_pad[n, i*S + kh, j*S + kw, c] * W[kh, kw, c, f]

computed as one matrix product per chunk of images (see kernels/im2col.py):

    cols = im2col(x)                         # (M, K) with M = N*OH*OW, K = KH*KW*C
    y    = cols @ W.reshape(K, F) + b        # (M, F) == (N, OH, OW, F)

Backward, given dy = dL/dy (N, OH, OW, F) seen as a matrix (M, F):

    db    = sum over rows of dy              # (F,)
    dW    = cols.T @ dy                      # (K, F) -> (KH, KW, C, F)
    dcols = dy @ W.reshape(K, F).T           # (M, K)
    dx    = col2im(dcols)                    # (N, H, W, C), overlaps add up

Memory: ``cols`` is never kept for backward; it is rebuilt there, one chunk of
images at a time, so the largest buffer is ``chunk*OH*OW*K`` floats (at most
``max_chunk_bytes``, 32 MB by default) instead of ``N*OH*OW*K``. The layer keeps a
reference to its input x (N, H, W, C) for backward.
"""
import numpy as np

from ..kernels.im2col import im2col, col2im
from .base import Layer
from .init import as_rng, init_weight


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

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding="same",
                 bias=True, init="he", rng=None, dtype=np.float32, name=None,
                 max_chunk_bytes=32 << 20):
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

    def chunks(self, N, OH, OW, itemsize):
        """Split the batch so one chunk's cols matrix fits in max_chunk_bytes."""
        row_bytes = OH * OW * self.KH * self.KW * self.C * itemsize
        step = max(1, min(N, self.max_chunk_bytes // max(row_bytes, 1)))
        return [(n0, min(n0 + step, N)) for n0 in range(0, N, step)]

    def check_dtype(self, x):
        if x.dtype != self.params["W"].dtype:
            raise TypeError(f"{self.name}: input dtype {x.dtype} does not match parameter dtype "
                            f"{self.params['W'].dtype}; cast the input or call model.to(dtype)")

    def forward(self, x, training=False):
        self.check_input(x, ndim=4, channels=self.C)
        self.check_dtype(x)
        N, H, W, C = x.shape
        OH, OW, pt, pl = self.geometry(H, W)
        K = self.KH * self.KW * C
        Wmat = self.params["W"].reshape(K, self.F)
        y = np.empty((N, OH, OW, self.F), dtype=x.dtype)
        y2 = y.reshape(N * OH * OW, self.F)
        for n0, n1 in self.chunks(N, OH, OW, x.itemsize):
            cols = np.empty(((n1 - n0) * OH * OW, K), dtype=x.dtype)        # (M, K)
            im2col(x[n0:n1], self.KH, self.KW, self.stride, pt, pl, OH, OW, cols)
            np.matmul(cols, Wmat, out=y2[n0 * OH * OW:n1 * OH * OW])          # (M, F)
        if self.use_bias:
            y += self.params["b"]
        self.x = x
        return y

    def backward(self, dy):
        x = self.x
        N, H, W, C = x.shape
        OH, OW, pt, pl = self.geometry(H, W)
        self.check_backward(dy, (N, OH, OW, self.F))
        K = self.KH * self.KW * C
        Wmat = self.params["W"].reshape(K, self.F)
        dy2 = np.ascontiguousarray(dy).reshape(N * OH * OW, self.F)
        need_dW = "W" not in self.frozen
        need_dx = not getattr(self, "skip_input_grad", False)
        if self.use_bias and "b" not in self.frozen:
            self.grads["b"][...] = dy2.sum(axis=0)
        dW = self.grads["W"].reshape(K, self.F)
        if need_dW:
            dW.fill(0)
        dx = np.empty_like(x) if need_dx else None
        for n0, n1 in self.chunks(N, OH, OW, x.itemsize):
            dyc = dy2[n0 * OH * OW:n1 * OH * OW]                               # (M, F)
            if need_dW:
                cols = np.empty(((n1 - n0) * OH * OW, K), dtype=x.dtype)
                im2col(x[n0:n1], self.KH, self.KW, self.stride, pt, pl, OH, OW, cols)
                dW += cols.T @ dyc                                             # (K, F)
            if need_dx:
                dcols = dyc @ Wmat.T                                           # (M, K)
                col2im(dcols, self.KH, self.KW, self.stride, pt, pl, OH, OW, dx[n0:n1])
        return dx
