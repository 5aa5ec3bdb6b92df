"""Elementwise activations. Any input shape; output has the input's shape and dtype.

ReLU       y = max(x, 0)                 dx = dy * [x > 0]
LeakyReLU  y = x if x > 0 else a*x       dx = dy * (1 if x > 0 else a)
GELU       y = x * Phi(x)                dx = dy * (Phi(x) + x * phi(x))
           (exact, with erf; or the tanh approximation — see kernels/gelu.py)

Each keeps its input x for backward (the same array the previous layer returned,
made contiguous) and runs a parallel numba kernel over the flat data
(kernels/relu.py, kernels/gelu.py): one read, one write, no temporaries.
"""
import numpy as np

from ..kernels.gelu import gelu_forward, gelu_backward
from ..kernels.relu import relu_forward, relu_backward, leaky_relu_forward, leaky_relu_backward
from .base import Layer


class _Elementwise(Layer):
    """forward/backward through flat kernels ``fwd(x, y, *args)``, ``bwd(x, dy, dx, *args)``."""
    cached = ("x",)

    def _forward(self, x, fwd, *args):
        self.check_input(x)
        self.x = np.ascontiguousarray(x)
        y = np.empty_like(self.x)
        fwd(self.x.reshape(-1), y.reshape(-1), *args)
        return y

    def _backward(self, dy, bwd, *args):
        self.check_backward(dy, self.x.shape)
        dy = np.ascontiguousarray(dy, dtype=self.x.dtype)
        dx = np.empty_like(dy)
        bwd(self.x.reshape(-1), dy.reshape(-1), dx.reshape(-1), *args)
        return dx


class ReLU(_Elementwise):
    def forward(self, x, training=False):
        return self._forward(x, relu_forward)

    def forward_fused(self, y):
        """The previous layer already returned y = max(x, 0) (Conv2D.forward(relu=True)):
        keep y for backward, where [y > 0] == [x > 0], and pass it on unchanged."""
        self.check_input(y)
        self.x = y
        return y

    def backward(self, dy):
        return self._backward(dy, relu_backward)


class LeakyReLU(_Elementwise):
    def __init__(self, alpha=0.01, name=None):
        super().__init__(name)
        if not 0 <= alpha < 1:
            raise ValueError(f"{self.name}: alpha must be in [0, 1), got {alpha!r}")
        self.alpha = alpha

    def __repr__(self):
        return f"{self.name}(alpha={self.alpha})"

    def forward(self, x, training=False):
        self.check_input(x)
        return self._forward(x, leaky_relu_forward, x.dtype.type(self.alpha))

    def backward(self, dy):
        return self._backward(dy, leaky_relu_backward, self.x.dtype.type(self.alpha))


class GELU(_Elementwise):
    """GELU(x) = x * Phi(x). ``approximate=False`` (default) uses the exact erf
    form; ``approximate=True`` the tanh form of Hendrycks & Gimpel (2016)."""

    def __init__(self, approximate=False, name=None):
        super().__init__(name)
        self.approximate = bool(approximate)

    def __repr__(self):
        return f"{self.name}({'tanh' if self.approximate else 'exact'})"

    def forward(self, x, training=False):
        return self._forward(x, gelu_forward, self.approximate)

    def backward(self, dy):
        return self._backward(dy, gelu_backward, self.approximate)
