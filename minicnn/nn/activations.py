"""Elementwise activations. Any input shape; output has the input's shape and dtype.

Each output depends on its own input only, so the chain rule is a product per element:

ReLU       y = max(x, 0)                 dx = dy * [x > 0]
LeakyReLU  y = x if x > 0 else a*x       dx = dy * (1 if x > 0 else a)
GELU       y = x * Phi(x)                dx = dy * (Phi(x) + x * phi(x))
           Phi, phi: the standard normal CDF and density; Phi(x) = erfc(-x / sqrt 2) / 2
GELU tanh  y = x * s(x),  s = sigmoid(2u),  u = sqrt(2/pi) (x + 0.044715 x^3)
           dx = dy * (s + 2 x s (1 - s) sqrt(2/pi) (1 + 3 * 0.044715 x^2))
           (Hendrycks & Gimpel 2016's approximation)

Each keeps its input x for backward. The fast backend runs one numba kernel over
the flat data (fast/kernels/relu.py, gelu.py): one read, one write, no temporaries.
"""
import math

import numpy as np
from scipy.special import erfc, expit

from .. import backend
from .layer import Layer, check_fraction

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
INV_SQRT_2 = 1.0 / math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
GELU_TANH_A = 0.044715


# ---- reference: the formulas in NumPy ------------------------------------------------
def relu(x):
    return np.maximum(x, 0)


def relu_backward(x, dy):
    return np.where(x > 0, dy, 0).astype(dy.dtype)


def leaky_relu(x, alpha):
    return np.where(x > 0, x, x * x.dtype.type(alpha))


def leaky_relu_backward(x, dy, alpha):
    return np.where(x > 0, dy, dy * dy.dtype.type(alpha))


def gelu(x, approximate=False):
    """erfc(-t) rather than 1 + erf(t), and a sigmoid rather than 1 + tanh: both stay
    accurate for x << 0, where the other forms cancel."""
    if approximate:
        y = x * expit(2 * SQRT_2_OVER_PI * (x + GELU_TANH_A * x ** 3))
    else:
        y = 0.5 * x * erfc(-x * INV_SQRT_2)
    return y.astype(x.dtype)


def gelu_backward(x, dy, approximate=False):
    if approximate:
        u = SQRT_2_OVER_PI * (x + GELU_TANH_A * x ** 3)
        s, one_minus_s = expit(2 * u), expit(-2 * u)
        slope = s + 2 * x * s * one_minus_s * SQRT_2_OVER_PI * (1 + 3 * GELU_TANH_A * x ** 2)
    else:
        cdf = 0.5 * erfc(-x * INV_SQRT_2)                 # Phi(x)
        pdf = np.exp(-0.5 * x * x) * INV_SQRT_2PI         # phi(x)
        slope = cdf + x * pdf
    return (dy * slope).astype(dy.dtype)


class Elementwise(Layer):
    """An activation: forward keeps x, both passes check shapes and go to the backend."""
    cached = ("x",)
    x = None

    def forward(self, x, training=False):
        self.check_input(x)
        return backend.run(self, "forward", np.ascontiguousarray(x))

    def backward(self, dy):
        self.check_forward_ran(self.x)
        dy = self.check_backward(dy, self.x.shape, self.x.dtype)
        return backend.run(self, "backward", dy)


class ReLU(Elementwise):
    def forward_fused(self, y):
        """The previous layer already returned y = max(x, 0) (Conv2D.forward(relu=True)):
        keep y for backward, where [y > 0] == [x > 0], and pass it on unchanged."""
        self.check_input(y)
        self.x = y
        self.ran_on = backend.current_backend()
        return y

    def forward_reference(self, x):
        self.x = x
        return relu(x)

    def backward_reference(self, dy):
        return relu_backward(self.x, dy)


class LeakyReLU(Elementwise):
    def __init__(self, alpha=0.01, name=None):
        super().__init__(name)
        self.alpha = check_fraction(self.name, "alpha", alpha)

    def __repr__(self):
        return f"{self.name}(alpha={self.alpha})"

    def forward_reference(self, x):
        self.x = x
        return leaky_relu(x, self.alpha)

    def backward_reference(self, dy):
        return leaky_relu_backward(self.x, dy, self.alpha)


# LeakyReLU and GELU each validate one option and show it in repr: the same few lines,
# kept in each class so that every activation reads on its own.
class GELU(Elementwise):
    """GELU(x) = x * Phi(x). ``approximate=False`` (default) uses the exact erf
    form; ``approximate=True`` the tanh form. Only a bool is taken: a string such as
    "none" or "tanh" would otherwise count as True."""

    def __init__(self, approximate=False, name=None):
        super().__init__(name)
        if not isinstance(approximate, (bool, np.bool_)):
            raise ValueError(f"{self.name}: approximate must be True (tanh form) or False "
                             f"(exact erf form), got {approximate!r}")
        self.approximate = bool(approximate)

    def __repr__(self):
        return f"{self.name}({'tanh' if self.approximate else 'exact'})"

    def forward_reference(self, x):
        self.x = x
        return gelu(x, self.approximate)

    def backward_reference(self, dy):
        return gelu_backward(self.x, dy, self.approximate)
