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
Keeps xh (same size as x) for backward.
"""
import numpy as np

from .base import Layer


class _BatchNorm(Layer):
    ndim = None

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
        x2 = x.reshape(-1, self.C)                                     # (m, C)
        self.training = training
        if training:
            m = x2.shape[0]
            if m < 2:
                raise ValueError(f"{self.name}: training mode needs more than one value per "
                                 f"channel to normalise, got input shape {x.shape}")
            mu = x2.mean(axis=0, dtype=np.float64)
            xc = x2 - mu.astype(x.dtype)
            var = np.einsum("ij,ij->j", xc, xc, dtype=np.float64) / m
            invstd = (1.0 / np.sqrt(var + self.eps)).astype(x.dtype)
            self.xh = xc * invstd
            rm, rv, mom = self.buffers["running_mean"], self.buffers["running_var"], self.momentum
            rm[...] = (1 - mom) * rm + mom * mu
            rv[...] = (1 - mom) * rv + mom * var * m / (m - 1)
            self.invstd = invstd
            y = self.xh * gamma + beta
        else:
            invstd = (1.0 / np.sqrt(self.buffers["running_var"] + self.eps)).astype(x.dtype)
            self.xh = (x2 - self.buffers["running_mean"]) * invstd
            self.invstd = invstd
            y = self.xh * gamma + beta
        self.x_shape = x.shape
        return y.reshape(x.shape)

    def backward(self, dy):
        self.check_backward(dy, self.x_shape)
        dy2 = dy.reshape(-1, self.C)
        xh = self.xh
        if "beta" not in self.frozen:
            self.grads["beta"][...] = dy2.sum(axis=0)
        if "gamma" not in self.frozen:
            self.grads["gamma"][...] = np.einsum("ij,ij->j", dy2, xh)
        scale = self.params["gamma"] * self.invstd
        if not self.training:
            return (dy2 * scale).reshape(self.x_shape)
        m = dy2.shape[0]
        mean_dy = dy2.sum(axis=0, dtype=np.float64) / m
        mean_dy_xh = np.einsum("ij,ij->j", dy2, xh, dtype=np.float64) / m
        dx = (dy2 - mean_dy.astype(dy.dtype) - xh * mean_dy_xh.astype(dy.dtype)) * scale
        return dx.reshape(self.x_shape)


class BatchNorm2D(_BatchNorm):
    """Batch norm for NHWC images (N, H, W, C): statistics over N, H, W."""
    ndim = 4


class BatchNorm1D(_BatchNorm):
    """Batch norm for features (N, C): statistics over N."""
    ndim = 2
