"""Inverted dropout.

training:  m ~ Bernoulli(1 - p) per element,  y = x * m / (1 - p),  dx = dy * m / (1 - p)
eval:      y = x,  dx = dy   (the 1/(1-p) scaling at train time keeps E[y] = x)
"""
import numpy as np

from .layer import Layer, check_fraction
from .init import as_rng


class Dropout(Layer):
    """Keeps ``mask`` (None in eval mode or for p = 0: y = x) and the input's shape;
    ``release`` drops both, so a backward after it cannot mistake it for eval mode."""
    cached = ("mask", "x_shape")
    mask = None
    x_shape = None                                 # the input's shape, kept by forward

    def __init__(self, p=0.5, rng=None, name=None):
        super().__init__(name)
        self.p = check_fraction(self.name, "drop probability p", p)
        self.rng = as_rng(rng)

    def __repr__(self):
        return f"{self.name}(p={self.p})"

    def forward(self, x, training=False):
        self.check_input(x)
        self.x_shape, self.x_dtype = x.shape, x.dtype
        if not training or self.p == 0:
            self.mask = None
            return x
        keep = x.dtype.type(1.0 / (1.0 - self.p))
        self.mask = (self.rng.random(x.shape, dtype=x.dtype) >= self.p) * keep
        return x * self.mask

    def backward(self, dy):
        self.check_forward_ran(self.x_shape)
        dy = self.check_backward(dy, self.x_shape, self.x_dtype)
        return dy if self.mask is None else dy * self.mask
