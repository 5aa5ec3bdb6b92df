"""GELU kernels (numba, parallel, any shape via a flat view) and NumPy twins.

exact form:  GELU(x) = x * Phi(x),       Phi(x) = (1 + erf(x / sqrt 2)) / 2
             GELU'(x) = Phi(x) + x * phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)

tanh form:   GELU(x) ~ x * s(x),   s(x) = (1 + tanh(u)) / 2,  u = sqrt(2/pi) (x + 0.044715 x^3)
             GELU'(x) ~ s(x) + x * (1 - tanh(u)^2) / 2 * sqrt(2/pi) (1 + 3 * 0.044715 x^2)
"""
import math

import numpy as np
from numba import njit, prange

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
INV_SQRT_2 = 1.0 / math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
A = 0.044715


# ---- reference twins ----------------------------------------------------------
def gelu_reference(x, approximate):
    if approximate:
        t = np.tanh(SQRT_2_OVER_PI * (x + A * x ** 3))
        return 0.5 * x * (1 + t)
    from scipy.special import erf   # only the tests use the twins
    return 0.5 * x * (1 + erf(x * INV_SQRT_2))


def gelu_grad_reference(x, dy, approximate):
    if approximate:
        t = np.tanh(SQRT_2_OVER_PI * (x + A * x ** 3))
        du = SQRT_2_OVER_PI * (1 + 3 * A * x ** 2)
        return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du)
    from scipy.special import erf
    cdf = 0.5 * (1 + erf(x * INV_SQRT_2))
    pdf = np.exp(-0.5 * x * x) * INV_SQRT_2PI
    return dy * (cdf + x * pdf)


# ---- numba kernels: flat 1-D arrays in, flat arrays out -----------------------
@njit(parallel=True, cache=True, fastmath=True)
def gelu_forward(x, y, approximate):
    for i in prange(x.size):
        v = x[i]
        if approximate:
            y[i] = 0.5 * v * (1.0 + math.tanh(SQRT_2_OVER_PI * (v + A * v * v * v)))
        else:
            y[i] = 0.5 * v * (1.0 + math.erf(v * INV_SQRT_2))
    return y


@njit(parallel=True, cache=True, fastmath=True)
def gelu_backward(x, dy, dx, approximate):
    for i in prange(x.size):
        v = x[i]
        if approximate:
            t = math.tanh(SQRT_2_OVER_PI * (v + A * v * v * v))
            du = SQRT_2_OVER_PI * (1.0 + 3.0 * A * v * v)
            dx[i] = dy[i] * (0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * du)
        else:
            cdf = 0.5 * (1.0 + math.erf(v * INV_SQRT_2))
            pdf = math.exp(-0.5 * v * v) * INV_SQRT_2PI
            dx[i] = dy[i] * (cdf + v * pdf)
    return dx
