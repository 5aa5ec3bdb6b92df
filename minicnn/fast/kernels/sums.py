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


@njit(parallel=True, cache=True)
def unpooled_column_sum_partials(dy_pooled, arg, OH, OW, partials):
    """column_sum_partials of the (N * OH * OW, C) rows of a 2x2, stride-2 max-pool's
    backward, without writing it: row (n, oh, ow) holds dy_pooled[n, oh // 2, ow // 2]
    on the channels whose argmax is its tap (oh % 2) * 2 + ow % 2, zero elsewhere and
    where no window reaches. The same blocks, rows and additions (zeros included) as
    column_sum_partials on that map, so the same bits."""
    N, PH, PW, C = dy_pooled.shape
    m = N * OH * OW
    B = partials.shape[0]
    for b in prange(B):
        s = partials[b]
        s[:] = 0.0
        for r in range(b * m // B, (b + 1) * m // B):
            n, pixel = r // (OH * OW), r % (OH * OW)
            oh, ow = pixel // OW, pixel % OW
            if oh // 2 < PH and ow // 2 < PW:
                row, taps = dy_pooled[n, oh // 2, ow // 2], arg[n, oh // 2, ow // 2]
                tap = np.int8((oh % 2) * 2 + ow % 2)
                for c in range(C):
                    s[c] += np.float64(row[c]) if taps[c] == tap else 0.0
            else:
                for c in range(C):
                    s[c] += 0.0
    return partials


def unpooled_column_sums(dy_pooled, arg, OH, OW):
    """(C,) float64: column_sums of the max-pool backward of dy_pooled (N, OH // 2, OW // 2,
    C) through its argmax ``arg``, as rows of an (N * OH * OW, C) matrix."""
    m, C = dy_pooled.shape[0] * OH * OW, dy_pooled.shape[3]
    return unpooled_column_sum_partials(dy_pooled, arg, OH, OW,
                                        np.empty((sum_blocks(m), C))).sum(axis=0)
