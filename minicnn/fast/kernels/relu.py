"""ReLU and LeakyReLU kernels (numba, parallel, flat 1-D arrays).

ReLU       y = max(x, 0)                 dx = dy * [x > 0]
LeakyReLU  y = x if x > 0 else a*x       dx = dy if x > 0 else a*dy

The reference code is in minicnn/nn/activations.py. Memory-bound: one read of x
(and dy), one write, no temporaries (np.where builds a boolean mask and a
broadcast zero first). NaN in x passes through the forward pass, as with
np.maximum; its gradient is 0.
"""
from numba import njit, prange


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
        g = dy[i]                              # dy of element i
        dx[i] = g if x[i] > 0.0 else g * alpha
    return dx
