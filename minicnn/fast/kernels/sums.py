"""Per-channel sums over the rows of an (m, C) matrix, in float64, on every core.

    sums[c] = sum_r x[r, c]            (the bias gradient: db = sums of dy over
                                        its m = N * OH * OW rows, for a conv)

NumPy's ``x.sum(axis=0)`` does this on one core, and slowly when C is small (32
channels: a few milliseconds for a 128-image batch of 32 x 32 maps, a good part of
a layer's backward pass). Here the rows are cut into ``sum_blocks(m)`` fixed blocks,
each summed row after row into its own float64 partial sums (C values, in L1) by
the threads in parallel; the partials are then added in block order. The blocks do
not depend on the thread count, so the result is the same on any machine.
"""
import numpy as np
from numba import njit, prange


def sum_blocks(m):
    """Row blocks for the partial sums: a fixed number (not tied to the thread
    count, so the sums, added in block order, are the same on any machine)."""
    return max(1, min(m, 16))


@njit(parallel=True, cache=True)
def column_sum_partials(x2, partials):
    """partials[b, c] = sum of x2[r, c] over block b's rows, b*m//B <= r < (b+1)*m//B."""
    m, C = x2.shape
    B = partials.shape[0]
    for b in prange(B):
        s = partials[b]
        s[:] = 0.0
        for r in range(b * m // B, (b + 1) * m // B):
            row = x2[r]
            for c in range(C):
                s[c] += np.float64(row[c])
    return partials


def column_sums(x2):
    """(C,) float64: the sums of the (m, C) matrix x2 over its rows (module docstring)."""
    m, C = x2.shape
    return column_sum_partials(x2, np.empty((sum_blocks(m), C))).sum(axis=0)
