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
(docs/performance.md, "GELU"). The exact form computes in float32 with
polynomials only, which LLVM vectorizes at the host's width (8 lanes of AVX2,
16 of AVX-512):

    Phi(-a) = exp(-a^2 / 2) * erfcx(z) / 2,   a = |x|, z = a / sqrt 2,  Phi(x) = 1 - Phi(-x)
    erfcx(z) ~ P10((z - 3) / (z + 3))           relative error < 2e-9 for 0 <= a <= 14.5
    exp(-t) = 2^-k * exp(r),  t = a^2 / 2,  k = round(t / ln 2),  r = k ln 2 - t,  |r| <= ln(2) / 2
    exp(r)  ~ Q6(r)                             relative error < 2e-9

t and r are computed in float64 (a float32 squared is exact there; in float32 its
rounding would cost up to t * 6e-8 of relative error in exp(-t)), everything
else in float32. 2^-k is made by writing k into a float's exponent bits
(`exp2_int`), as 2^-k1 * 2^-k2 with k1 + k2 = k so that neither factor
underflows, and the two factors are applied last, so that only the final
product rounds into float32's subnormal range. Past a = 14.5, Phi(-a) is
taken as 0 (x Phi(x) rounds to 0 in float32 there). The output is within 8 ulp
of the exact value (tested; the largest error seen is about 6 ulp, the mean
under 1 ulp), and dx within 4e-7 of |dy| (Phi(x) + |x phi(x)|).

The tanh form (no bundled net uses it) keeps float64 polynomials, 4 lanes:

    exp(-t) = E(-t / 256)^(2^8)     E = degree-8 fit of exp on [-0.5, 0], error < 5e-14

The coefficients are least-squares Chebyshev fits (numpy.polynomial.Chebyshev.fit,
weights 1/f, against scipy.special.erfcx and numpy.exp on Chebyshev nodes),
converted to monomials; Estrin's scheme evaluates them (independent pairs of
FMAs instead of one long Horner chain). No temporaries: one read of x (and dy),
one write.
"""
import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
INV_SQRT_2 = 1.0 / math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
A = 0.044715                 # the cubic coefficient of the tanh form
LOG2_E, LN_2 = 1.0 / math.log(2.0), math.log(2.0)

# lowest degree first; see the module docstring for how they were fitted
ERFCX_COEF_F32 = tuple(np.float32(c) for c in (
    0.17900115131175812, -0.3262335628180128, 0.24560379206199223, -0.15011581268264998,
    0.07166594663716269, -0.02439394366554473, 0.004268544123140877, 0.000714612401388681,
    -0.0005944254386869577, 3.0445174093420484e-05, 5.6731414909182636e-05))
EXP_COEF_F32 = tuple(np.float32(c) for c in (
    1.0000000005920209, 1.0000000361258996, 0.4999999149302901, 0.1666642083211272,
    0.04166835803507635, 0.008374771520536247, 0.001382942047486085))
EXP_COEF = (0.9999999999999594, 0.9999999999872896, 0.49999999934585465,
            0.16666665359890911, 0.0416665350201345, 0.008332583506705852,
            0.0013863608991549006, 0.00019338746292756436, 1.928091505992877e-05)

# float32 constants: a Python float would turn float32 arithmetic into float64
TAIL_END = np.float32(14.5)                # Phi(-a) is taken as 0 past a = TAIL_END
INV_SQRT_2_F32, INV_SQRT_2PI_F32 = np.float32(INV_SQRT_2), np.float32(INV_SQRT_2PI)
ZERO, HALF, ONE, THREE = np.float32(0), np.float32(0.5), np.float32(1), np.float32(3)


# ---- exact form, float32 arithmetic ------------------------------------------------
@intrinsic
def exp2_int(typingctx, k):
    """2.0 ** k for a float32 k holding an integer in [-126, 127]: (k + 127) written
    into the exponent bits (bits 23-30) of a float32, the sign and mantissa bits 0."""
    if k != types.float32:
        return None

    def codegen(context, builder, signature, args):
        int32 = ir.IntType(32)
        biased = builder.add(builder.fptosi(args[0], int32), ir.Constant(int32, 127))
        bits = builder.shl(biased, ir.Constant(int32, 23))
        return builder.bitcast(bits, ir.FloatType())
    return types.float32(types.float32), codegen


@njit(inline="always")
def exp_neg_half_square(a):
    """exp(-a^2 / 2) = m * s1 * s2 for a float32 0 <= a <= 14.5, as (m, s1, s2):
    m = exp(r) ~ Q6(r) with |r| <= ln(2) / 2, and s1 * s2 = 2^-k."""
    t = 0.5 * np.float64(a) * np.float64(a)              # exact
    k = np.floor(t * LOG2_E + 0.5)
    r = np.float32(k * LN_2 - t)
    c = EXP_COEF_F32
    r2 = r * r
    m = (c[0] + c[1] * r) + (c[2] + c[3] * r) * r2 + ((c[4] + c[5] * r) + c[6] * r2) * (r2 * r2)
    k_f32 = np.float32(k)
    k1 = np.floor(k_f32 * HALF)                          # k = k1 + (k - k1), both <= 76
    return m, exp2_int(-k1), exp2_int(k1 - k_f32)


@njit(inline="always")
def erfcx_f32(z):
    """erfcx(z) = exp(z^2) erfc(z) ~ P10(y), y = (z - 3) / (z + 3), Estrin's scheme."""
    c = ERFCX_COEF_F32
    y = (z - THREE) / (z + THREE)
    y2 = y * y
    y4 = y2 * y2
    lo = ((c[0] + c[1] * y) + (c[2] + c[3] * y) * y2) + ((c[4] + c[5] * y) + (c[6] + c[7] * y) * y2) * y4
    hi = (c[8] + c[9] * y) + c[10] * y2
    return lo + hi * (y4 * y4)


@njit(inline="always")
def normal_tail_f32(v):
    """Phi(-|v|) and phi(v), each as  value = part * s1 * s2:  (tail, pdf, s1, s2).
    The caller multiplies by s1 * s2 last (see the module docstring)."""
    a = min(abs(v), TAIL_END)
    m, s1, s2 = exp_neg_half_square(a)
    m = m if abs(v) <= TAIL_END else ZERO
    return HALF * m * erfcx_f32(a * INV_SQRT_2_F32), m * INV_SQRT_2PI_F32, s1, s2


@njit(inline="always")
def gelu_exact_f32(v):
    """GELU(v) for a float32 v:  v Phi(v) = v (1 - Phi(-v)) for v >= 0,  v Phi(-|v|) for v < 0."""
    tail, _, s1, s2 = normal_tail_f32(v)
    return (v * tail) * s1 * s2 if v < ZERO else v * (ONE - tail * s1 * s2)


@njit(inline="always")
def gelu_exact_backward_f32(v, d):
    """d * GELU'(v) = d (Phi(v) + v phi(v)) for float32 v and d, Phi(v) = 1 - Phi(-v) for v >= 0."""
    tail, pdf, s1, s2 = normal_tail_f32(v)
    return (d * (tail + v * pdf)) * s1 * s2 if v < ZERO else d * (ONE - (tail - v * pdf) * s1 * s2)


# ---- tanh form, float64 arithmetic -------------------------------------------------
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
    """y = GELU(x):  x Phi(x) = x (1 - Phi(-x)) for x >= 0,  x Phi(-|x|) for x < 0."""
    if approximate:                            # one loop per form: no branch inside
        for i in prange(x.size):
            v = np.float64(x[i])
            y[i] = v * sigmoid_2u(v)[0]
    else:
        for i in prange(x.size):
            y[i] = gelu_exact_f32(x[i])
    return y


@njit(parallel=True, cache=True, fastmath={"contract"})
def gelu_backward_f32(x, dy, dx, approximate):
    """dx = dy (Phi(x) + x phi(x)), with Phi(x) = 1 - Phi(-x) for x >= 0."""
    if approximate:
        for i in prange(x.size):
            v = np.float64(x[i])
            s, s1 = sigmoid_2u(v)
            dx[i] = dy[i] * (s + 2.0 * v * s * s1 * SQRT_2_OVER_PI * (1.0 + 3.0 * A * v * v))
    else:
        for i in prange(x.size):
            dx[i] = gelu_exact_backward_f32(x[i], dy[i])
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
