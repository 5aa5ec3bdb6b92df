"""Batch-norm kernels over a (m, C) matrix (numba, parallel) and NumPy twins of the sums.

The statistics and the backward reductions are per-channel sums over m rows.
Each is computed in one pass over row blocks run in parallel: every block
keeps its own float64 partial sums (an array (2, C), which stays in L1), and
the caller adds the partials. That replaces numpy's axis-0 reductions and the
full-size temporaries (x - mu, dy * xh, ...) with one read of the data.

moments:   S1[c] = sum_r (x[r, c] - k[c]),  S2[c] = sum_r (x[r, c] - k[c])^2
           with a shift k (the first row): mean = k + S1/m and
           var = (S2 - S1^2/m) / m stay accurate when |mean| >> std
           (the shifted-data algorithm; float64 accumulators).
normalize: y = (x - mu) * a + beta                 (a = gamma / std, per channel)
dsums:     S1[c] = sum_r dy[r, c],  S2[c] = sum_r dy[r, c] * (x[r, c] - mu[c])
backward:  dx = p * dy + q * (x - mu) + r          (p, q, r per channel; see fast/layers.py)

Followed by GELU (BatchNorm2D + GELU, one step of Sequential), the pair needs two
passes fewer each way, and GELU keeps nothing:
normalize_gelu:   y = GELU(z),  z = (x - mu) * a + beta        (z is never stored)
gelu_dsums:       dz = dy * GELU'(z), z recomputed from x; writes dz and sums
                  S1 = sum dz, S2 = sum dz * (x - mu)          (then backward on dz)

``partials`` is (B, 2, C) float64: B blocks of m/B rows (B >= the thread count).
normalize, dsums_partials and the pair's kernels let LLVM fuse a multiply and an add
into one FMA (fastmath "contract"), all alike: the pair gives the same bits fused or
not (z = fma(x - mu, a, beta) either way).
"""
import numpy as np
from numba import njit, prange

from .gelu import gelu_exact_backward_f32, gelu_exact_f32


# ---- reference twins ----------------------------------------------------------
def moments_reference(x2):
    """(mean, biased var) per channel of a (m, C) matrix, in float64."""
    x64 = x2.astype(np.float64)
    mu = x64.mean(axis=0)
    return mu, ((x64 - mu) ** 2).mean(axis=0)


def dsums_reference(x2, dy2, mu):
    """(sum dy, sum dy * (x - mu)) per channel, in float64."""
    dy64 = dy2.astype(np.float64)
    return dy64.sum(axis=0), (dy64 * (x2.astype(np.float64) - mu)).sum(axis=0)


# ---- numba kernels --------------------------------------------------------------
@njit(parallel=True, cache=True)
def moments_partials(x2, shift, partials):
    """partials[b] = (sum (x - shift), sum (x - shift)^2) over block b's rows."""
    m, C = x2.shape
    B = partials.shape[0]
    for b in prange(B):                  # block b: rows b*m//B .. (b+1)*m//B - 1
        s1, s2 = partials[b, 0], partials[b, 1]
        s1[:] = 0.0
        s2[:] = 0.0
        for r in range(b * m // B, (b + 1) * m // B):
            x_row = x2[r]
            for c in range(C):
                d = np.float64(x_row[c]) - shift[c]       # x - shift, in float64
                s1[c] += d
                s2[c] += d * d
    return partials


# dsums_partials walks the rows exactly as moments_partials does, with other sums: two
# short kernels read better than one with a mode flag tested per element.
@njit(parallel=True, cache=True, fastmath={"contract"})
def dsums_partials(x2, dy2, mu, partials):
    """partials[b] = (sum dy, sum dy * (x - mu)) over block b's rows (mu float64)."""
    m, C = x2.shape
    B = partials.shape[0]
    for b in prange(B):                  # block b: rows b*m//B .. (b+1)*m//B - 1
        s1, s2 = partials[b, 0], partials[b, 1]
        s1[:] = 0.0
        s2[:] = 0.0
        for r in range(b * m // B, (b + 1) * m // B):
            x_row, dy_row = x2[r], dy2[r]
            for c in range(C):
                g = np.float64(dy_row[c])
                s1[c] += g
                s2[c] += g * (np.float64(x_row[c]) - mu[c])
    return partials


@njit(parallel=True, cache=True, fastmath={"contract"})
def normalize(x2, mu, a, beta, y2):
    """y = (x - mu) * a + beta, row by row (all vectors of x's dtype)."""
    m, C = x2.shape
    for r in prange(m):
        x_row, y_row = x2[r], y2[r]
        for c in range(C):
            y_row[c] = (x_row[c] - mu[c]) * a[c] + beta[c]
    return y2


@njit(parallel=True, cache=True)
def affine_backward(x2, dy2, mu, p, q, r, dx2):
    """dx = p * dy + q * (x - mu) + r, row by row (all vectors of x's dtype)."""
    m, C = x2.shape
    for i in prange(m):
        x_row, dy_row, dx_row = x2[i], dy2[i], dx2[i]
        for c in range(C):
            dx_row[c] = p[c] * dy_row[c] + q[c] * (x_row[c] - mu[c]) + r[c]
    return dx2


# ---- BatchNorm + GELU as one step (float32, GELU's exact form) --------------------------
# normalize_gelu walks the rows as normalize does and adds GELU: as with the two sums
# kernels, two short kernels read better than one with a flag tested per element.
@njit(parallel=True, cache=True, fastmath={"contract"})
def normalize_gelu(x2, mu, a, beta, y2):
    """y = GELU((x - mu) * a + beta), row by row, without storing the normalised z."""
    m, C = x2.shape
    for r in prange(m):
        x_row, y_row = x2[r], y2[r]
        for c in range(C):
            y_row[c] = gelu_exact_f32((x_row[c] - mu[c]) * a[c] + beta[c])
    return y2


@njit(parallel=True, cache=True, fastmath={"contract"})
def gelu_dsums_partials(x2, dy2, mu, a, beta, mu64, partials, dz2):
    """dz = dy * GELU'(z) with z = (x - mu) * a + beta recomputed from x, written to
    dz2; and partials[b] = (sum dz, sum dz * (x - mu)) over block b's rows, in float64
    (the blocks of dsums_partials). mu, a, beta: float32 (as normalize_gelu used them);
    mu64: the float64 mean for the sums."""
    m, C = x2.shape
    B = partials.shape[0]
    for b in prange(B):
        s1, s2 = partials[b, 0], partials[b, 1]
        s1[:] = 0.0
        s2[:] = 0.0
        for r in range(b * m // B, (b + 1) * m // B):
            x_row, dy_row, dz_row = x2[r], dy2[r], dz2[r]
            for c in range(C):
                g = gelu_exact_backward_f32((x_row[c] - mu[c]) * a[c] + beta[c], dy_row[c])
                dz_row[c] = g
                g64 = np.float64(g)
                s1[c] += g64
                s2[c] += g64 * (np.float64(x_row[c]) - mu64[c])
    return partials
