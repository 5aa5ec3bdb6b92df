"""Elementwise activations. Any input shape; output has the input's shape and dtype.

ReLU       y = max(x, 0)                 dx = dy * [x > 0]
LeakyReLU  y = x if x > 0 else a*x       dx = dy * (1 if x > 0 else a)
GELU       y = x * Phi(x)                dx = dy * (Phi(x) + x * phi(x))
           (exact, with erf; or the tanh approximation — see kernels/gelu.py)

Each keeps its input x for backward (the same array the previous layer returned).
"""
import numpy as np

from ..kernels.gelu import gelu_forward, gelu_backward
from .base import Layer


class ReLU(Layer):
    def forward(self, x, training=False):
        self.check_input(x)
        self.x = x
        return np.maximum(x, 0, dtype=x.dtype)

    def backward(self, dy):
        self.check_backward(dy, self.x.shape)
        return np.where(self.x > 0, dy, 0).astype(dy.dtype, copy=False)


class LeakyReLU(Layer):
    def __init__(self, alpha=0.01, name=None):
        super().__init__(name)
        if not 0 <= alpha < 1:
            raise ValueError(f"{self.name}: alpha must be in [0, 1), got {alpha!r}")
        self.alpha = alpha

    def __repr__(self):
        return f"{self.name}(alpha={self.alpha})"

    def forward(self, x, training=False):
        self.check_input(x)
        self.x = x
        return np.where(x > 0, x, x * x.dtype.type(self.alpha))

    def backward(self, dy):
        self.check_backward(dy, self.x.shape)
        return np.where(self.x > 0, dy, dy * dy.dtype.type(self.alpha))


class GELU(Layer):
    """GELU(x) = x * Phi(x). ``approximate=False`` (default) uses the exact erf
    form; ``approximate=True`` the tanh form of Hendrycks & Gimpel (2016)."""

    def __init__(self, approximate=False, name=None):
        super().__init__(name)
        self.approximate = bool(approximate)

    def __repr__(self):
        return f"{self.name}({'tanh' if self.approximate else 'exact'})"

    def forward(self, x, training=False):
        self.check_input(x)
        self.x = np.ascontiguousarray(x)
        y = np.empty_like(self.x)
        gelu_forward(self.x.reshape(-1), y.reshape(-1), self.approximate)
        return y

    def backward(self, dy):
        self.check_backward(dy, self.x.shape)
        dy = np.ascontiguousarray(dy, dtype=self.x.dtype)
        dx = np.empty_like(dy)
        gelu_backward(self.x.reshape(-1), dy.reshape(-1), dx.reshape(-1), self.approximate)
        return dx
