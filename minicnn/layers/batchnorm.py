"""Batch normalisation over every axis but the last (channels).

BatchNorm2D takes NHWC (N, H, W, C); BatchNorm1D takes (N, C). Both see the
input as a matrix x of shape (m, C), m = N*H*W (or N).

training (batch statistics):
    mu  = mean(x),  var = mean((x - mu)^2)            per channel, (C,)
    xh  = (x - mu) / sqrt(var + eps)
    y   = gamma * xh + beta
    running_mean <- (1 - momentum) * running_mean + momentum * mu
    running_var  <- (1 - momentum) * running_var  + momentum * var * m / (m - 1)
backward:
    dbeta  = sum(dy),   dgamma = sum(dy * xh)
    dx     = gamma / sqrt(var + eps) * (dy - mean(dy) - xh * mean(dy * xh))
eval (running statistics, a fixed affine map):
    y  = gamma * (x - running_mean) / sqrt(running_var + eps) + beta
    dx = dy * gamma / sqrt(running_var + eps)

Params: gamma (scale), beta (shift), (C,) each; either can be frozen
(``freeze_scale``/``freeze_shift``), which keeps it out of the optimizer.
Buffers: running_mean, running_var — saved with the model, never trained.

Computed by the kernels in kernels/batchnorm.py, without full-size temporaries:
the statistics in one parallel pass (float64 partial sums), y in a second;
backward sums dy and dy * (x - mu) in one pass and writes

    dx = p * dy + q * (x - mu) + r,   p = gamma * istd,
    q = -p * istd^2 * sum(dy * (x - mu)) / m,   r = -p * sum(dy) / m

(istd = 1 / sqrt(var + eps)), the formula above with xh = (x - mu) * istd
expanded. Keeps a reference to x (no copy) and mu, istd (C,) for backward.
"""
import numpy as np

from ..kernels.batchnorm import moments_partials, dsums_partials, normalize, affine_backward
from .base import Layer


def _blocks(m):
    """Row blocks for the partial sums: a fixed number (not tied to the thread
    count, so the sums, added in block order, are the same on any machine)."""
    return max(1, min(m, 16))


class _BatchNorm(Layer):
    ndim = None

    cached = ("x2",)

    def __init__(self, channels, momentum=0.1, eps=1e-5, freeze_scale=False,
                 freeze_shift=False, scale_init=1.0, dtype=np.float32, name=None):
        super().__init__(name)
        if not isinstance(channels, (int, np.integer)) or channels < 1:
            raise ValueError(f"{self.name}: channels must be a positive int, got {channels!r}")
        if not 0 <= momentum <= 1:
            raise ValueError(f"{self.name}: momentum must be in [0, 1], got {momentum!r}")
        self.C, self.momentum, self.eps = channels, momentum, eps
        self.add_param("gamma", np.full(channels, scale_init, dtype=dtype))
        self.add_param("beta", np.zeros(channels, dtype=dtype))
        self.buffers["running_mean"] = np.zeros(channels, dtype=dtype)
        self.buffers["running_var"] = np.ones(channels, dtype=dtype)
        if freeze_scale:
            self.frozen.add("gamma")
        if freeze_shift:
            self.frozen.add("beta")

    def __repr__(self):
        return f"{self.name}({self.C}, frozen={sorted(self.frozen)})"

    def flops(self, input_shape):
        return 4 * int(np.prod(input_shape))

    def forward(self, x, training=False):
        self.check_input(x, ndim=self.ndim, channels=self.C)
        if x.dtype != self.params["gamma"].dtype:
            raise TypeError(f"{self.name}: input dtype {x.dtype} does not match parameter dtype "
                            f"{self.params['gamma'].dtype}")
        gamma, beta = self.params["gamma"], self.params["beta"]
        x2 = np.ascontiguousarray(x).reshape(-1, self.C)               # (m, C)
        m = x2.shape[0]
        self.training = training
        if training:
            if m < 2:
                raise ValueError(f"{self.name}: training mode needs more than one value per "
                                 f"channel to normalise, got input shape {x.shape}")
            shift = x2[0].astype(np.float64)
            S = moments_partials(x2, shift, np.empty((_blocks(m), 2, self.C))).sum(axis=0)
            mu = shift + S[0] / m                                       # float64 (C,)
            var = np.maximum(S[1] - S[0] * S[0] / m, 0.0) / m
            rm, rv, mom = self.buffers["running_mean"], self.buffers["running_var"], self.momentum
            rm[...] = (1 - mom) * rm + mom * mu
            rv[...] = (1 - mom) * rv + mom * var * m / (m - 1)
        else:
            mu = self.buffers["running_mean"].astype(np.float64)
            var = self.buffers["running_var"].astype(np.float64)
        self.mu, self.istd = mu, 1.0 / np.sqrt(var + self.eps)           # float64 (C,)
        dt = x.dtype
        y2 = np.empty_like(x2)
        normalize(x2, mu.astype(dt), (gamma * self.istd).astype(dt), beta.astype(dt), y2)
        self.x2, self.x_shape = x2, x.shape
        return y2.reshape(x.shape)

    def backward(self, dy):
        self.check_backward(dy, self.x_shape)
        x2, dt = self.x2, self.x2.dtype
        dy2 = np.ascontiguousarray(dy, dtype=dt).reshape(-1, self.C)
        m = x2.shape[0]
        p = self.params["gamma"] * self.istd                              # float64 (C,)
        need = [k for k in ("beta", "gamma") if k not in self.frozen]
        if self.training or need:
            S = dsums_partials(x2, dy2, self.mu, np.empty((_blocks(m), 2, self.C))).sum(axis=0)
            if "beta" in need:
                self.grads["beta"][...] = S[0]                           # sum dy
            if "gamma" in need:
                self.grads["gamma"][...] = S[1] * self.istd              # sum dy * xh
        if self.training:
            q = -p * self.istd ** 2 * S[1] / m
            r = -p * S[0] / m
        else:                                     # eval: a fixed affine map, dx = p * dy
            q = r = np.zeros(self.C)
        dx2 = np.empty_like(dy2)
        affine_backward(x2, dy2, self.mu.astype(dt), p.astype(dt), q.astype(dt), r.astype(dt), dx2)
        return dx2.reshape(self.x_shape)


class BatchNorm2D(_BatchNorm):
    """Batch norm for NHWC images (N, H, W, C): statistics over N, H, W."""
    ndim = 4


class BatchNorm1D(_BatchNorm):
    """Batch norm for features (N, C): statistics over N."""
    ndim = 2
