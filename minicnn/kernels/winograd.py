"""Winograd F(2x2, 3x3) convolution (stride 1, NHWC, float32): the kernel and its NumPy twin.

A 3x3 convolution computes each 2x2 block of outputs from a 4x4 block d of the
zero-padded input. Winograd's minimal filtering (Lavin & Gray, "Fast Algorithms
for Convolutional Neural Networks", 2016) does it with 16 multiplications per
(input channel, output channel) instead of 2*2*9 = 36:

    U = G g G^T      (4, 4) per (c, f), from the 3x3 kernel g = W[:, :, c, f]
    V = B^T d B      (4, 4) per (tile, c), from the 4x4 input block d
    M = U (.) V      summed over c: for each of the 16 positions k = (a, b) one product
                     M_k (tiles, F) = V_k (tiles, C) @ U_k (C, F)
    Y = A^T M A      (2, 2) outputs per (tile, f)

    G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]

so 16/36 = 0.44 of the direct method's multiply-adds go through the products;
the transforms are additions. float32 results differ from the direct sum by a
few 1e-7 (relative). Maps of odd size get a last row/column of tiles half
outside the output: computed on zeros, then dropped.

``winograd_images`` works on a few images at a time, one k at a time, so that
everything it touches stays in the core's L2 cache (measured: materialising all
16 M_k of a 256-tile block, 4 MB per core, made the two cores fight over L3 and
the whole pass slower than without Winograd):

    for k = (a, b):   V_k[t]  = sum of the 4 signed input taps that B^T d B takes
                      M_k     = V_k @ U_k      (the 3x32 register tiles of tiles.py)
                      Yacc[t, (i, j)] += A^T[i, a] A^T[j, b] M_k[t]
    y = Yacc + bias, each tile's 2x2 outputs put in place (and cropped)
"""
import numpy as np
from numba import njit

from .tiles import tile_3x32

G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float32)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float32)


def weight_transform(W):
    """U (16, C, F) = G g G^T for every (c, f), g = W[:, :, c, f] (W: (3, 3, C, F)).

    G's rows are g0, (g0 + g1 + g2)/2, (g0 - g1 + g2)/2, g2: additions on whole (C, F)
    slices, applied over the kernel rows, then the columns. (Not a matrix product on
    purpose: a two-thread OpenBLAS call here left its threads spinning for 0.1 s, which
    slowed every layer after it by up to 2x at 2 threads, measured.)"""
    def g_rows(r0, r1, r2):                       # G @ [r0, r1, r2] for stacked slices
        return r0, (r0 + r1 + r2) * 0.5, (r0 - r1 + r2) * 0.5, r2
    rows = g_rows(W[0], W[1], W[2])                # (G g)[a] : (3, C, F), indexed by kw
    return np.stack([u for r in rows for u in g_rows(r[0], r[1], r[2])])   # (16, C, F)


def pack_transformed(U):
    """(16, C, F) -> (16, F/32, C, 32): each 32-channel block contiguous, for the tiles."""
    _, C, F = U.shape
    return np.ascontiguousarray(U.reshape(16, C, F // 32, 32).transpose(0, 2, 1, 3))


def winograd_reference(x, W, b, pad_top, pad_left, OH, OW):
    """The whole F(2x2, 3x3) convolution in NumPy, tile by tile (twin of winograd_images)."""
    N, H, Wd, C = x.shape
    F = W.shape[3]
    TH, TW = -(-OH // 2), -(-OW // 2)
    xp = np.zeros((N, 2 * TH + 2, 2 * TW + 2, C))
    h1, w1 = min(H, 2 * TH + 2 - pad_top), min(Wd, 2 * TW + 2 - pad_left)
    xp[:, pad_top:pad_top + h1, pad_left:pad_left + w1] = x[:, :h1, :w1]
    U = weight_transform(W.astype(np.float64)).reshape(4, 4, C, F)
    y = np.zeros((N, 2 * TH, 2 * TW, F))
    for ty in range(TH):
        for tx in range(TW):
            d = xp[:, 2 * ty:2 * ty + 4, 2 * tx:2 * tx + 4]                 # (N, 4, 4, C)
            V = np.einsum("ai,nijc,bj->nabc", BT, d, BT)                    # B^T d B
            M = np.einsum("nabc,abcf->nabf", V, U)
            y[:, 2 * ty:2 * ty + 2, 2 * tx:2 * tx + 2] = np.einsum("ia,nabf,jb->nijf", AT, M, AT)
    y = y[:, :OH, :OW] + (0 if b is None else b)
    return y.astype(x.dtype)


@njit(nogil=True, cache=True, boundscheck=False, fastmath={"contract"})
def winograd_images(x, n0, n1, pad_top, pad_left, Upk, b, relu, y, xp, V, M, Yacc):
    """y[n0:n1] = conv3x3(x[n0:n1]) + b, then max(., 0) if relu, by F(2x2, 3x3).

    x (N, H, W, C); Upk (16, F/32, C, 32) from pack_transformed; b (F,) or empty;
    y (N, OH, OW, F). Scratch, T = (n1-n0) * TH * TW tiles, TH = ceil(OH/2):
    xp (>= n1-n0, 2TH+2, 2TW+2, C) zero outside the images, V (>= max(T, 3), C),
    M (same rows, F), Yacc (>= T, 4, F)."""
    N, H, W, C = x.shape
    OH, OW, F = y.shape[1], y.shape[2], y.shape[3]
    TH, TW = (OH + 1) // 2, (OW + 1) // 2
    nimg = n1 - n0
    T = nimg * TH * TW
    nfb = F // 32
    h1, w1 = min(H, xp.shape[1] - pad_top), min(W, xp.shape[2] - pad_left)
    for n in range(nimg):
        xp[n, pad_top:pad_top + h1, pad_left:pad_left + w1, :] = x[n0 + n, :h1, :w1, :]
    Yacc[:T] = 0.0
    one_tap = np.zeros(1, np.int64)
    Vf, Mf, Uf = V.reshape(V.size), M.reshape(M.size), Upk.reshape(Upk.size)
    for a in range(4):
        for bb in range(4):
            k = 4 * a + bb
            t = 0                                       # V_k: (B^T d B)[a, bb] of every tile
            for n in range(nimg):
                for ty in range(TH):
                    for tx in range(TW):
                        v = V[t]
                        v[:] = 0.0
                        for i in range(4):
                            for j in range(4):
                                s = BT[a, i] * BT[bb, j]
                                if s != 0.0:
                                    d = xp[n, 2 * ty + i, 2 * tx + j]
                                    for c in range(C):
                                        v[c] += s * d[c]
                        t += 1
            for fb in range(nfb):                       # M_k = V_k @ U_k, 3 tiles x 32 channels
                for t0 in range(0, max(T, 3), 3):
                    ts = min(t0, max(T, 3) - 3)         # last group shifted back (recomputes)
                    tile_3x32(Vf, ts * C, one_tap, C, 1, Uf, (k * nfb + fb) * C * 32, one_tap,
                              32, C, Mf, ts * F + fb * 32, F, False)
            for i in range(2):                          # Yacc[:, (i, j)] += A^T A^T M_k
                for j in range(2):
                    s = AT[i, a] * AT[j, bb]
                    if s != 0.0:
                        for t in range(T):
                            acc, m = Yacc[t, 2 * i + j], M[t]
                            for f in range(F):
                                acc[f] += s * m[f]
    t = 0
    for n in range(nimg):
        for ty in range(TH):
            for tx in range(TW):
                for i in range(2):
                    for j in range(2):
                        oh, ow = 2 * ty + i, 2 * tx + j
                        if oh < OH and ow < OW:
                            out, acc = y[n0 + n, oh, ow], Yacc[t, 2 * i + j]
                            for f in range(F):
                                v = acc[f] + b[f] if b.size else acc[f]
                                out[f] = max(v, 0.0) if relu else v
                t += 1
    return y
