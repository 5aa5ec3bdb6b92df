"""Pooling layers on NHWC input (N, H, W, C). No padding; OH = (H - K) // S + 1.

MaxPool2D        y = max over each KxK window (stride S); dy goes to the first maximum.
AvgPool2D        y = mean over each KxK window;          dx += dy / (K*K) on every tap.
GlobalAvgPool2D  y[n, c] = mean_{h,w} x[n, h, w, c]      dx = dy / (H*W) broadcast.
GlobalMaxPool2D  y[n, c] = max_{h,w} x[n, h, w, c]       dx = dy at the first argmax.

Pooling has no weights: its backward only routes gradients. A max passes dy to the
one input that won (the derivative of max is 1 there, 0 elsewhere; on a tie, the
first maximum takes it all, so the gradient is not counted twice); a mean spreads
dy evenly over its K*K inputs. Overlapping windows (S < K) add up.

NaN propagates as in np.max: a window (or, for GlobalMaxPool2D, a channel) that
holds a NaN anywhere outputs NaN, and its argmax is the first NaN (as np.argmax
picks), so the backward sends dy to that NaN input. Both backends do so.

MaxPool2D keeps ``arg`` (N, OH, OW, C) int8: the winning tap kh*K + kw of each
output, one byte per output (K*K <= 127). The fast backend computes the same in
one numba pass (fast/kernels/pooling.py); the other pools are NumPy on both.
"""
import numpy as np

from .. import backend
from .layer import Layer, check_positive_int


# ---- reference: the formulas in NumPy ------------------------------------------------
def window_taps(x, K, S):
    """(N, OH, OW, K*K, C): the K*K entries of every window, tap kh*K + kw on axis 3."""
    N, H, W, C = x.shape
    OH, OW = (H - K) // S + 1, (W - K) // S + 1
    windows = np.empty((N, OH, OW, K * K, C), dtype=x.dtype)
    for kh in range(K):
        for kw in range(K):
            windows[:, :, :, kh * K + kw, :] = x[:, kh:kh + S * OH:S, kw:kw + S * OW:S, :]
    return windows


def maxpool(x, K, S):
    """(y, arg): each window's maximum and the tap of its first maximum (int8).
    A window with a NaN gives y = NaN and the tap of its first NaN."""
    windows = window_taps(x, K, S)
    arg = windows.argmax(axis=3)                   # the first maximum, or the first NaN
    return windows.max(axis=3), arg.astype(np.int8)


def maxpool_backward(dy, arg, x_shape, K, S):
    """dx: each dy added to the input its window's maximum came from."""
    OH, OW = dy.shape[1:3]
    dx = np.zeros(x_shape, dtype=dy.dtype)
    for kh in range(K):
        for kw in range(K):
            won = arg == kh * K + kw
            dx[:, kh:kh + S * OH:S, kw:kw + S * OW:S, :] += np.where(won, dy, 0)
    return dx


class _Pool2D(Layer):
    x_shape = None                                 # the input's shape, kept by forward

    def __init__(self, pool_size=2, stride=None, name=None):
        super().__init__(name)
        self.K = check_positive_int(self.name, "pool_size", pool_size)
        self.S = self.K if stride is None else check_positive_int(self.name, "stride", stride)

    def __repr__(self):
        return f"{self.name}(k={self.K}, s={self.S})"

    def output_shape(self, input_shape):
        H, W, C = self.check_example_shape(input_shape, 3)
        if H < self.K or W < self.K:
            raise ValueError(f"{self.name}: input {H}x{W} is smaller than the pool window {self.K}")
        return ((H - self.K) // self.S + 1, (W - self.K) // self.S + 1, C)

    def flops(self, input_shape):
        OH, OW, C = self.output_shape(input_shape)
        return OH * OW * C * self.K * self.K


class MaxPool2D(_Pool2D):
    cached = ("arg",)
    arg = None

    def __init__(self, pool_size=2, stride=None, name=None):
        super().__init__(pool_size, stride, name)
        if self.K * self.K > 127:                  # the winning tap is kept as an int8
            raise ValueError(f"{self.name}: pool_size must be at most 11, got {pool_size}")

    def forward(self, x, training=False):
        self.check_input(x, ndim=4)
        self.output_shape(x.shape[1:])                  # raises if x is smaller than a window
        self.x_shape, self.x_dtype = x.shape, x.dtype
        return backend.run(self, "forward", np.ascontiguousarray(x))

    def backward(self, dy):
        self.check_forward_ran(self.arg)
        dy = self.check_backward(dy, self.arg.shape, self.x_dtype)
        return backend.run(self, "backward", dy)

    def forward_reference(self, x):
        y, self.arg = maxpool(x, self.K, self.S)
        return y

    def backward_reference(self, dy):
        return maxpool_backward(dy, self.arg, self.x_shape, self.K, self.S)


class AvgPool2D(_Pool2D):
    def forward(self, x, training=False):
        self.check_input(x, ndim=4)
        OH, OW, C = self.output_shape(x.shape[1:])
        K, S = self.K, self.S
        y = np.zeros((x.shape[0], OH, OW, C), dtype=x.dtype)
        for kh in range(K):
            for kw in range(K):
                y += x[:, kh:kh + S * OH:S, kw:kw + S * OW:S, :]
        y *= x.dtype.type(1.0 / (K * K))
        self.x_shape, self.x_dtype = x.shape, x.dtype
        return y

    def backward(self, dy):
        self.check_forward_ran(self.x_shape)
        N, H, W, C = self.x_shape
        K, S = self.K, self.S
        OH, OW, _ = self.output_shape((H, W, C))
        dy = self.check_backward(dy, (N, OH, OW, C), self.x_dtype)
        dx = np.zeros(self.x_shape, dtype=dy.dtype)
        share = dy * dy.dtype.type(1.0 / (K * K))
        for kh in range(K):
            for kw in range(K):
                dx[:, kh:kh + S * OH:S, kw:kw + S * OW:S, :] += share
        return dx


class GlobalPool2D(Layer):
    """A pool over the whole map: (N, H, W, C) -> (N, C)."""
    x_shape = None                                 # the input's shape, kept by forward

    def output_shape(self, input_shape):
        return (self.check_example_shape(input_shape, 3)[-1],)

    def flops(self, input_shape):
        return int(np.prod(input_shape))


class GlobalAvgPool2D(GlobalPool2D):
    def forward(self, x, training=False):
        self.check_input(x, ndim=4)
        self.x_shape, self.x_dtype = x.shape, x.dtype
        return x.mean(axis=(1, 2), dtype=x.dtype)

    def backward(self, dy):
        self.check_forward_ran(self.x_shape)
        N, H, W, C = self.x_shape
        dy = self.check_backward(dy, (N, C), self.x_dtype)
        dx = np.empty(self.x_shape, dtype=dy.dtype)
        dx[...] = (dy * dy.dtype.type(1.0 / (H * W)))[:, None, None, :]
        return dx


class GlobalMaxPool2D(GlobalPool2D):
    cached = ("arg",)
    arg = None

    def forward(self, x, training=False):
        self.check_input(x, ndim=4)
        N, H, W, C = x.shape
        flat = x.reshape(N, H * W, C)
        self.arg = flat.argmax(axis=1)                # (N, C), first maximum or first NaN
        self.x_shape, self.x_dtype = x.shape, x.dtype
        return np.take_along_axis(flat, self.arg[:, None, :], axis=1)[:, 0, :]

    def backward(self, dy):
        self.check_forward_ran(self.arg)
        N, H, W, C = self.x_shape
        dy = self.check_backward(dy, (N, C), self.x_dtype)
        dx = np.zeros((N, H * W, C), dtype=dy.dtype)
        np.put_along_axis(dx, self.arg[:, None, :], dy[:, None, :], axis=1)
        return dx.reshape(self.x_shape)
