"""ReLU and LeakyReLU kernels (numba, parallel, flat 1-D arrays) and NumPy twins.

ReLU       y = max(x, 0)                 dx = dy * [x > 0]
LeakyReLU  y = x if x > 0 else a*x       dx = dy if x > 0 else a*dy

Memory-bound: one read of x (and dy), one write, no temporaries (np.where
builds a boolean mask and a broadcast zero first). NaN in x passes through
the forward pass, as with np.maximum; its gradient is 0.
"""
import numpy as np
from numba import njit, prange


# ---- reference twins ----------------------------------------------------------
def relu_reference(x):
    return np.maximum(x, 0)


def relu_grad_reference(x, dy):
    return np.where(x > 0, dy, 0).astype(dy.dtype)


def leaky_relu_reference(x, alpha):
    return np.where(x > 0, x, x * x.dtype.type(alpha))


def leaky_relu_grad_reference(x, dy, alpha):
    return np.where(x > 0, dy, dy * dy.dtype.type(alpha))


# ---- numba kernels --------------------------------------------------------------
@njit(parallel=True, cache=True)
def relu_forward(x, y):
    for i in prange(x.size):
        v = x[i]
        y[i] = 0.0 if v <= 0.0 else v          # NaN is not <= 0: it passes through
    return y


@njit(parallel=True, cache=True)
def relu_backward(x, dy, dx):
    for i in prange(x.size):
        dx[i] = dy[i] if x[i] > 0.0 else 0.0
    return dx


@njit(parallel=True, cache=True)
def leaky_relu_forward(x, y, alpha):
    for i in prange(x.size):                   # pass alpha as a scalar of x's dtype
        v = x[i]
        y[i] = v if v > 0.0 else v * alpha
    return y


@njit(parallel=True, cache=True)
def leaky_relu_backward(x, dy, dx, alpha):
    for i in prange(x.size):
        g = dy[i]
        dx[i] = g if x[i] > 0.0 else g * alpha
    return dx
