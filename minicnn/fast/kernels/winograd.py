"""Winograd F(4x4, 3x3) convolution (stride 1, NHWC, float32): the kernel and its NumPy twin.

Each 4x4 block of outputs comes from a 6x6 block d of the zero-padded input
(Lavin & Gray 2016, the points 0, 1, -1, 2, -2), with 36 multiplications per
(input channel, output channel) instead of 4*4*9 = 144:

    U = G g G^T      (6, 6) per (c, f), from the 3x3 kernel g = W[:, :, c, f]
    V = B^T d B      (6, 6) per (tile, c)
    M_k = V_k @ U_k  for each of the 36 positions k: (tiles, C) @ (C, F)
    Y = A^T M A      (4, 4) outputs per (tile, f)

    B^T = [[4, 0, -5, 0, 1, 0],       G = [[ 1/4,     0,    0],     A^T = [[1, 1,  1, 1,  1, 0],
           [0, -4, -4, 1, 1, 0],            [-1/6, -1/6, -1/6],            [0, 1, -1, 2, -2, 0],
           [0, 4, -4, -1, 1, 0],            [-1/6,  1/6, -1/6],            [0, 1,  1, 4,  4, 0],
           [0, -2, -1, 2, 1, 0],            [1/24, 1/12,  1/6],            [0, 1, -1, 8, -8, 1]]
           [0, 2, -1, -2, 1, 0],            [1/24, -1/12, 1/6],
           [0, 4, 0, -5, 0, 1]]             [   0,    0,    1]]

A quarter of the direct method's multiply-adds go through the products. (The
F(2x2, 3x3) kernel this replaced, 36 -> 16 per 2x2 outputs, in git history
before 2026-11-24, only paid on wide layers: on 32- and 64-channel layers its
transforms cost as much as it saved.) The price: float32 results differ from
the direct sum by ~1e-5 relative (the transforms multiply by up to 8 and the
weight transform divides by 24), where F(2x2) stayed at ~1e-7; training is not
hurt by it (README: accuracy of the main job before and after).

How ``winograd_rows`` keeps the transforms fast. A transform is six-term sums
like 4 d0 - 5 d2 + d4 over the channels of six pixels. Written per tile, those
are loops of 32 or 64 channels that write six outputs at once, which LLVM does
not vectorize (it cannot rule out that the arrays overlap; measured: the
transforms took 80% of the time). Here every transform is a loop with one
output over a whole tile row (TW tiles x C channels, contiguous), so each loop
vectorizes with a cheap overlap check:

  * the input band of 6 rows is stored in 4 "phases", column w at phase w % 4,
    position w // 4: the j-th column of every tile in the row (tx: 4 tx + j)
    is then one contiguous run, phase j % 4 from position j // 4;
  * step 1 (B^T along the columns): hrow[s, i] = sum_j B^T[s, j] column_j of row i
  * step 2 (B^T along the rows):    V[6 r + s] = sum_i B^T[r, i] hrow[s, i]
  * products:                       M_k = V_k @ U_k (the 3x32 tiles of tiles.py)
  * step 3 (A^T along the rows):    q[r, j]   = sum_i A^T[r, i] M[6 i + j]
  * step 4 (A^T along the columns): Y[r, s]   = sum_j A^T[s, j] q[r, j]
    then each output pixel (4 ty + r, 4 tx + s) gets its bias (and ReLU) and is
    put in place; tiles that stick out of the map are computed on zeros and cropped.

Two details that matter (measured per core, 32->32 @32x32, batch 128): the
constants must be float32 (a Python 4.0 turns every loop into float64
arithmetic: 20.9 ms instead of 17.3), and the six start offsets go to the loops
through a small array (``offs``): written as o, o + n, o + 2n, ... LLVM saw
how they relate and stopped vectorizing steps 2-4 (39.5 ms instead of 15.9).
Where the time goes then: products 7.6 ms (80 GFLOP/s), band copy 1.4,
steps 1-4 1.5 + 1.7 + 1.9 + 0.7, bias and put-in-place 1.3.
"""
import numpy as np
from numba import njit, uint64

from .tiles import tile_3x32

BT = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
               [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float64)
G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float64)
AT = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
               [0, 1, -1, 8, -8, 1]], np.float64)


def weight_transform(W):
    """U (36, F/32, C, 32) = G g G^T per (c, f), packed in 32-channel blocks for the tiles.

    Computed in float64 as sums of whole (C, F) slices, not as a matrix product on
    purpose: a small two-thread OpenBLAS call here left its threads spinning for 0.1 s,
    which slowed every layer after it by up to 2x at 2 threads (measured)."""
    C, F = W.shape[2:]
    g = W.astype(np.float64)
    Gg = [sum(G[a, i] * g[i] for i in range(3)) for a in range(6)]              # (3, C, F) each
    U = np.stack([sum(G[b, j] * Gg[a][j] for j in range(3)) for a in range(6) for b in range(6)])
    U = U.astype(W.dtype).reshape(36, C, F // 32, 32).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(U)


def winograd_reference(x, W, b, pad_top, pad_left, OH, OW):
    """The whole F(4x4, 3x3) convolution in NumPy, tile by tile (twin of winograd_rows)."""
    N, H, Wd, C = x.shape
    F = W.shape[3]
    TH, TW = -(-OH // 4), -(-OW // 4)
    xp = np.zeros((N, 4 * TH + 2, 4 * TW + 2, C))
    h1, w1 = min(H, 4 * TH + 2 - pad_top), min(Wd, 4 * TW + 2 - pad_left)
    xp[:, pad_top:pad_top + h1, pad_left:pad_left + w1] = x[:, :h1, :w1]
    U = np.einsum("ai,ijcf,bj->abcf", G, W.astype(np.float64), G)
    y = np.zeros((N, 4 * TH, 4 * TW, F))
    for ty in range(TH):
        for tx in range(TW):
            d = xp[:, 4 * ty:4 * ty + 6, 4 * tx:4 * tx + 6]
            V = np.einsum("ai,nijc,bj->nabc", BT, d, BT)
            M = np.einsum("nabc,abcf->nabf", V, U)
            y[:, 4 * ty:4 * ty + 4, 4 * tx:4 * tx + 4] = np.einsum("ia,nabf,jb->nijf", AT, M, AT)
    y = y[:, :OH, :OW] + (0 if b is None else b)
    return y.astype(x.dtype)


@njit(nogil=True, inline="always", boundscheck=False, fastmath={"contract"})
def bt_row(r, s, o, dst, od, n):
    """dst[od : od+n] = row r of B^T [d_0 .. d_5], with d_j = s[o[j] : o[j]+n].
    (Flat float32 arrays, uint64 offsets, float32 constants: one output per loop,
    so each loop vectorizes, 8 lanes.)"""
    two, four, five = np.float32(2.0), np.float32(4.0), np.float32(5.0)
    o0, o1, o2, o3, o4, o5 = o[0], o[1], o[2], o[3], o[4], o[5]
    if r == 0:
        for e in range(n):
            dst[od + e] = four * s[o0 + e] - five * s[o2 + e] + s[o4 + e]
    elif r == 1:
        for e in range(n):
            dst[od + e] = s[o3 + e] + s[o4 + e] - four * (s[o1 + e] + s[o2 + e])
    elif r == 2:
        for e in range(n):
            dst[od + e] = four * (s[o1 + e] - s[o2 + e]) - s[o3 + e] + s[o4 + e]
    elif r == 3:
        for e in range(n):
            dst[od + e] = two * (s[o3 + e] - s[o1 + e]) - s[o2 + e] + s[o4 + e]
    elif r == 4:
        for e in range(n):
            dst[od + e] = two * (s[o1 + e] - s[o3 + e]) - s[o2 + e] + s[o4 + e]
    else:
        for e in range(n):
            dst[od + e] = four * s[o1 + e] - five * s[o3 + e] + s[o5 + e]


@njit(nogil=True, inline="always", boundscheck=False, fastmath={"contract"})
def at_row(r, s, o, dst, od, n):
    """dst[od : od+n] = row r of A^T [m_0 .. m_5], with m_j = s[o[j] : o[j]+n]."""
    two, four, eight = np.float32(2.0), np.float32(4.0), np.float32(8.0)
    o0, o1, o2, o3, o4, o5 = o[0], o[1], o[2], o[3], o[4], o[5]
    if r == 0:
        for e in range(n):
            dst[od + e] = s[o0 + e] + s[o1 + e] + s[o2 + e] + s[o3 + e] + s[o4 + e]
    elif r == 1:
        for e in range(n):
            dst[od + e] = s[o1 + e] - s[o2 + e] + two * (s[o3 + e] - s[o4 + e])
    elif r == 2:
        for e in range(n):
            dst[od + e] = s[o1 + e] + s[o2 + e] + four * (s[o3 + e] + s[o4 + e])
    else:
        for e in range(n):
            dst[od + e] = s[o1 + e] - s[o2 + e] + eight * (s[o3 + e] - s[o4 + e]) + s[o5 + e]


@njit(nogil=True, inline="always", boundscheck=False, fastmath={"contract"})
def input_transform_row(xf, H, W, C, n, ty, TW, pad_top, pad_left, band, hrow, offs, V, Vk, t0):
    """V[k][tiles of row (n, ty)] = (B^T d B)[k] for its TW tiles, written at V[k*Vk + t0 ...]:
    the band of 6 input rows in 4 phases, then steps 1 and 2 (module docstring).
    xf: x (N, H, W, C) flat; band, hrow, offs: scratch; Vk, t0: uint64."""
    zero = np.float32(0.0)
    P = TW + 1                                        # positions per phase of the band
    uC, nC = uint64(C), uint64(TW * C)
    for i in range(6):                                # the band: 6 input rows, in phases
        hh = 4 * ty - pad_top + i
        for w in range(4 * TW + 2):
            o = uint64((((w % 4) * 6 + i) * P + w // 4) * C)
            iw = w - pad_left
            if 0 <= hh < H and 0 <= iw < W:
                src = uint64(((n * H + hh) * W + iw) * C)
                for c in range(uC):
                    band[o + c] = xf[src + c]
            else:
                for c in range(uC):
                    band[o + c] = zero
    for i in range(6):                                # step 1: B^T along the columns
        for j in range(6):                            # column j: phase j % 4, from position j // 4
            offs[j] = uint64((((j % 4) * 6 + i) * P + j // 4) * C)
        for s in range(6):
            bt_row(s, band, offs, hrow, uint64(s * 6 + i) * nC, nC)
    for s in range(6):                                # step 2: B^T along the rows -> V
        for i in range(6):
            offs[i] = uint64(s * 6 + i) * nC
        for r in range(6):
            bt_row(r, hrow, offs, V, uint64(6 * r + s) * Vk + t0, nC)


@njit(nogil=True, cache=True, boundscheck=False, fastmath={"contract"})
def winograd_rows(x, g0, g1, pad_top, pad_left, Upk, b, relu, y, band, hrow, V, M, q, yrow):
    """Tile rows g0 .. g1-1 (row g = n * TH + ty, TH = ceil(OH / 4)) of
    y = conv3x3(x) + b (then max(., 0) if relu), by F(4x4, 3x3).

    x (N, H, W, C) C-contiguous; Upk (36, F/32, C, 32) from weight_transform; b (F,)
    or empty; y (N, OH, OW, F). Scratch (flat float32 arrays), TW = ceil(OW / 4),
    T = (g1 - g0) * TW tiles: band >= 4*6*(TW+1)*C, hrow >= 36*TW*C,
    V >= 36*max(T, 3)*C, M >= 36*max(T, 3)*F, q >= 24*TW*F, yrow >= 16*TW*F."""
    N, H, W, C = x.shape
    OH, OW, F = y.shape[1], y.shape[2], y.shape[3]
    TH, TW = (OH + 3) // 4, (OW + 3) // 4
    T = (g1 - g0) * TW
    Tp = max(T, 3)
    nfb = F // 32
    xf, yf = x.reshape(x.size), y.reshape(y.size)
    Uf = Upk.reshape(Upk.size)
    one_tap = np.zeros(1, np.int64)
    offs = np.zeros(6, np.uint64)                     # where the six inputs of a transform start
    zero = np.float32(0.0)
    uF, nF = uint64(F), uint64(TW * F)                # nF: one tile row of M, flat
    Vk, Mk = uint64(Tp * C), uint64(Tp * F)           # one position k of V, M
    for g in range(g0, g1):                           # input transform, row by row of tiles
        input_transform_row(xf, H, W, C, g // TH, g % TH, TW, pad_top, pad_left, band, hrow,
                            offs, V, Vk, uint64((g - g0) * TW * C))
    for k in range(36):                               # products M_k = V_k @ U_k
        for fb in range(nfb):
            for t in range(0, Tp, 3):
                ts = min(t, Tp - 3)                   # last group shifted back (recomputes)
                tile_3x32(V, k * Tp * C + ts * C, one_tap, C, 1, Uf, (k * nfb + fb) * C * 32,
                          one_tap, 32, C, M, k * Tp * F + ts * F + fb * 32, F, False)
    for g in range(g0, g1):                           # output transform, row by row
        n, ty = g // TH, g % TH
        t0 = uint64((g - g0) * TW * F)
        for j in range(6):                            # step 3: A^T along the rows
            for i in range(6):
                offs[i] = uint64(6 * i + j) * Mk + t0
            for r in range(4):
                at_row(r, M, offs, q, uint64(r * 6 + j) * nF, nF)
        for r in range(4):                            # step 4: A^T along the columns
            for j in range(6):
                offs[j] = uint64(r * 6 + j) * nF
            for s in range(4):
                at_row(s, q, offs, yrow, uint64(r * 4 + s) * nF, nF)
        for r in range(4):                            # bias, ReLU, put in place (cropped)
            oh = 4 * ty + r
            if oh >= OH:
                continue
            for ow in range(OW):
                src = uint64(((r * 4 + ow % 4) * TW + ow // 4) * F)
                dst = uint64(((n * OH + oh) * OW + ow) * F)
                if b.size:
                    for f in range(uF):
                        yf[dst + f] = yrow[src + f] + b[f]
                else:
                    for f in range(uF):
                        yf[dst + f] = yrow[src + f]
                if relu:
                    for f in range(uF):
                        yf[dst + f] = max(yf[dst + f], zero)
    return y
