"""GELU kernels (numba, parallel, any shape via a flat view).

exact form:  GELU(x) = x * Phi(x),       Phi(x) = (1 + erf(x / sqrt 2)) / 2 = erfc(-x / sqrt 2) / 2
             GELU'(x) = Phi(x) + x * phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)

tanh form:   GELU(x) ~ x * s(x),   s(x) = (1 + tanh(u)) / 2 = 1 / (1 + exp(-2u)),
             u = sqrt(2/pi) (x + 0.044715 x^3)
             GELU'(x) ~ s(x) + 2 x s(x) (1 - s(x)) sqrt(2/pi) (1 + 3 * 0.044715 x^2)

The reference code is in minicnn/nn/activations.py.

float64 (gradient checks) uses libm's math.erfc / math.exp: exact to rounding
(erfc rather than 1 + erf, and the sigmoid rather than 1 + tanh, which cancel
for x << 0).
float32 (training) must be fast, and a libm call per element is not
(docs/performance.md, "GELU"): its kernels compute in float64 with polynomials
only, which LLVM vectorizes (4 lanes of AVX2), and round once:

    Phi(-a) = exp(-z^2) * erfcx(z) / 2,   z = a / sqrt 2,  a = |x|,  Phi(x) = 1 - Phi(-x)
    erfcx(z) ~ P12((z - 3) / (z + 3))         relative error < 5e-11 on [0, sqrt 128]
    exp(-t)  = E(-t / 256)^(2^8)              E = degree-8 fit of exp on [-0.5, 0], error
                                              < 5e-14, so < 2e-11 after the 8 squarings

with exp(-t) taken as 0 for t = z^2 >= 128 (exp(-128) ~ 3e-56: the float32
result is 0 there anyway). The coefficients are least-squares Chebyshev fits
(numpy.polynomial.Chebyshev.fit, weights 1/f, against scipy.special.erfcx and
numpy.exp on Chebyshev nodes), converted to monomials; Estrin's scheme
evaluates them (independent pairs of FMAs instead of one long Horner chain).
The float32 output is within 0.501 ulp of the exact value (tested: within
0.51 ulp, i.e. correctly rounded or off by one in the last bit). No
temporaries: one read of x (and dy), one write.
"""
import math

import numpy as np
from numba import njit, prange

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
INV_SQRT_2 = 1.0 / math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
A = 0.044715                 # the cubic coefficient of the tanh form

# lowest degree first; see the module docstring for how they were fitted
ERFCX_COEF = (0.17900115118370427, -0.32623356013171023, 0.24560380154858383,
              -0.1501159315957116, 0.07166583792576357, -0.02439257426689481,
              0.004269144422149487, 0.0007082435809089605, -0.0005970776565162478,
              4.358636393564052e-05, 6.378846995539302e-05, -1.0001958326972963e-05,
              -6.883943935783095e-06)
EXP_COEF = (0.9999999999999594, 0.9999999999872896, 0.49999999934585465,
            0.16666665359890911, 0.0416665350201345, 0.008332583506705852,
            0.0013863608991549006, 0.00019338746292756436, 1.928091505992877e-05)


# ---- float32 building blocks: polynomials only, float64 arithmetic -------------
@njit(inline="always")
def exp_neg(t):
    """exp(-t) for 0 <= t <= 128: E(-t/256) squared 8 times."""
    c = EXP_COEF
    s = t * (-1.0 / 256.0)
    s2 = s * s
    s4 = s2 * s2
    p = ((c[0] + c[1] * s) + (c[2] + c[3] * s) * s2) + \
        ((c[4] + c[5] * s) + (c[6] + c[7] * s) * s2) * s4 + c[8] * (s4 * s4)
    for _ in range(8):
        p = p * p
    return p


@njit(inline="always")
def erfcx_poly(y):
    """erfcx(z) with y = (z - 3) / (z + 3), degree 12, Estrin's scheme."""
    c = ERFCX_COEF
    y2 = y * y
    y4 = y2 * y2
    y8 = y4 * y4
    lo = ((c[0] + c[1] * y) + (c[2] + c[3] * y) * y2) + ((c[4] + c[5] * y) + (c[6] + c[7] * y) * y2) * y4
    hi = ((c[8] + c[9] * y) + (c[10] + c[11] * y) * y2) + c[12] * y4
    return lo + hi * y8


@njit(inline="always")
def normal_cdf_pdf(v):
    """(Phi(v), phi(v)) for a float64 v, from one exp_neg."""
    z = min(abs(v) * INV_SQRT_2, 11.313708498984761)      # sqrt(128)
    t = z * z
    e = exp_neg(t) if t < 128.0 else 0.0                   # exp(-v^2 / 2), 0 past the clamp
    tail = 0.5 * e * erfcx_poly((z - 3.0) / (z + 3.0))     # Phi(-|v|)
    return (tail if v < 0.0 else 1.0 - tail), e * INV_SQRT_2PI


@njit(inline="always")
def sigmoid_2u(v):
    """(s, 1 - s) with s = (1 + tanh(u)) / 2 = 1 / (1 + exp(-2u)), u as above."""
    u = SQRT_2_OVER_PI * (v + A * v * v * v)
    t = min(2.0 * abs(u), 128.0)
    E = exp_neg(t) if t < 128.0 else 0.0                   # exp(-2|u|), 0 past the clamp
    big, small = 1.0 / (1.0 + E), E / (1.0 + E)
    return (big, small) if u >= 0.0 else (small, big)


# ---- numba kernels: flat 1-D arrays in, flat arrays out -----------------------
@njit(parallel=True, cache=True, fastmath={"contract"})
def gelu_forward_f32(x, y, approximate):
    if approximate:                            # one loop per form: no branch inside
        for i in prange(x.size):
            v = np.float64(x[i])
            y[i] = v * sigmoid_2u(v)[0]
    else:
        for i in prange(x.size):
            v = np.float64(x[i])
            y[i] = v * normal_cdf_pdf(v)[0]
    return y


@njit(parallel=True, cache=True, fastmath={"contract"})
def gelu_backward_f32(x, dy, dx, approximate):
    if approximate:
        for i in prange(x.size):
            v = np.float64(x[i])
            s, s1 = sigmoid_2u(v)
            dx[i] = dy[i] * (s + 2.0 * v * s * s1 * SQRT_2_OVER_PI * (1.0 + 3.0 * A * v * v))
    else:
        for i in prange(x.size):
            v = np.float64(x[i])
            cdf, pdf = normal_cdf_pdf(v)
            dx[i] = dy[i] * (cdf + v * pdf)
    return dx


@njit(cache=True, inline="always")
def sigmoid_2u_libm(v):
    """sigmoid_2u with math.exp."""
    u = SQRT_2_OVER_PI * (v + A * v * v * v)
    E = math.exp(-2.0 * abs(u))
    big, small = 1.0 / (1.0 + E), E / (1.0 + E)
    return (big, small) if u >= 0.0 else (small, big)


@njit(parallel=True, cache=True)
def gelu_forward_exact(x, y, approximate):
    for i in prange(x.size):
        v = x[i]
        if approximate:
            y[i] = v * sigmoid_2u_libm(v)[0]
        else:
            y[i] = 0.5 * v * math.erfc(-v * INV_SQRT_2)
    return y


@njit(parallel=True, cache=True)
def gelu_backward_exact(x, dy, dx, approximate):
    for i in prange(x.size):
        v = x[i]
        if approximate:
            s, s1 = sigmoid_2u_libm(v)
            dx[i] = dy[i] * (s + 2.0 * v * s * s1 * SQRT_2_OVER_PI * (1.0 + 3.0 * A * v * v))
        else:
            cdf = 0.5 * math.erfc(-v * INV_SQRT_2)
            pdf = math.exp(-0.5 * v * v) * INV_SQRT_2PI
            dx[i] = dy[i] * (cdf + v * pdf)
    return dx


def gelu_forward(x, y, approximate):
    """y = GELU(x) for flat arrays of one dtype: polynomial kernel for float32, libm otherwise."""
    f = gelu_forward_f32 if x.dtype == np.float32 else gelu_forward_exact
    return f(x, y, approximate)


def gelu_backward(x, dy, dx, approximate):
    """dx = dy * GELU'(x) for flat arrays of one dtype (see gelu_forward)."""
    f = gelu_backward_f32 if x.dtype == np.float32 else gelu_backward_exact
    return f(x, dy, dx, approximate)
