"""Inverted dropout.

training:  m ~ Bernoulli(1 - p) per element,  y = x * m / (1 - p),  dx = dy * m / (1 - p)
eval:      y = x,  dx = dy   (the 1/(1-p) scaling at train time keeps E[y] = x)
"""
import numpy as np

from .layer import Layer
from .init import as_rng


class Dropout(Layer):
    cached = ("mask",)

    def __init__(self, p=0.5, rng=None, name=None):
        super().__init__(name)
        if not 0 <= p < 1:
            raise ValueError(f"{self.name}: drop probability p must be in [0, 1), got {p!r}")
        self.p = p
        self.rng = as_rng(rng)

    def __repr__(self):
        return f"{self.name}(p={self.p})"

    def forward(self, x, training=False):
        self.check_input(x)
        if not training or self.p == 0:
            self.mask = None
            return x
        keep = x.dtype.type(1.0 / (1.0 - self.p))
        self.mask = (self.rng.random(x.shape, dtype=x.dtype) >= self.p) * keep
        return x * self.mask

    def backward(self, dy):
        if self.mask is None:
            return dy
        self.check_backward(dy, self.mask.shape)
        return dy * self.mask
