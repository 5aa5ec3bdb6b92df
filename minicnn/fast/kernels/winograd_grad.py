"""The weight gradient of a 3x3 convolution by Winograd, F(3x3, 4x4): kernel and NumPy twin.

dW[kh, kw, c, f] = sum over images and output pixels (i, j) of
x_pad[i + kh, j + kw, c] * dy[i, j, f]. Cut the output into 4x4 tiles: each
adds the correlation of its 6x6 input block d with its 4x4 dy block e, a 3x3
result. That is the forward problem turned around (3 outputs from a 4-tap
filter instead of 4 outputs from a 3-tap one), and the same matrices do it.
The forward pass computes, per tile, y = A^T [(G g G^T) (.) (B^T d B)] A; read
as the sum  sum_ij e[i, j] y[i, j] = sum_k (G g G^T)_k (B^T d B)_k (A e A^T)_k,
its derivative in g is

    dW_tile = G^T [ (B^T d B) (.) (A e A^T) ] G        (A = (A^T)^T, 6 x 4)

and the sum over tiles moves inside, to the 36 positions k:

    V_k = (B^T d B)_k     (tiles, C)   the forward pass's input transform of x
    E_k = (A e A^T)_k     (tiles, F)   rows of A: e0; e0+e1+e2+e3; e0-e1+e2-e3;
                                       e0+2e1+4e2+8e3; e0-2e1+4e2-8e3; e3
    M_k = V_k^T @ E_k     (C, F)       summed over every tile of the batch
    dW  = G^T M G         per (c, f), once at the end (float64)

The 36 products are (C x tiles) @ (tiles x F), the same shape as the direct
dW's, on the register tiles of P input x FB output channels (4 x 16 on AVX2; 8 x 32
on AVX-512, or 4 x 32 when 8 does not divide C; a: V_k read channel-wise, a_ps = 1,
a_ks = the tile stride: C, or C + DW_ROW_PAD for wide layers, see winograd_grad_rows).
A quarter of the direct sum's multiply-adds (36 per 16 pixels instead of 144).
The dy transform works like the forward pass's input transform (winograd.py):
a band of 4 dy rows stored in 4 phases (column w at phase w % 4, position
w // 4; tiles do not overlap here), then one-output loops over whole tile rows:
A along the columns (partial_E), then along the rows (E; one run per tile when
the tiles lie apart).
"""
import numpy as np
from numba import njit, uint64

from .tiles import tile_4x16, tile_4x32, tile_8x32
from .winograd import AT, BT, G, input_transform_row


def winograd_weight_grad_reference(x, dy, pad_top, pad_left):
    """dW (3, 3, C, F) by F(3x3, 4x4), tile by tile, in float64 (twin of winograd_grad_rows)."""
    N, H, Wd, C = x.shape
    OH, OW, F = dy.shape[1:]
    TH, TW = -(-OH // 4), -(-OW // 4)
    x_pad = np.zeros((N, 4 * TH + 2, 4 * TW + 2, C))                 # the tiles' 6x6 inputs
    h_in, w_in = min(H, 4 * TH + 2 - pad_top), min(Wd, 4 * TW + 2 - pad_left)  # rows, cols read
    x_pad[:, pad_top:pad_top + h_in, pad_left:pad_left + w_in] = x[:, :h_in, :w_in]
    dy_pad = np.zeros((N, 4 * TH, 4 * TW, F))                         # dy, cropped tiles padded
    dy_pad[:, :OH, :OW] = dy
    M = np.zeros((6, 6, C, F))
    for ty in range(TH):
        for tx in range(TW):
            d = x_pad[:, 4 * ty:4 * ty + 6, 4 * tx:4 * tx + 6]                # (N, 6, 6, C)
            e = dy_pad[:, 4 * ty:4 * ty + 4, 4 * tx:4 * tx + 4]               # (N, 4, 4, F)
            V = np.einsum("ai,nijc,bj->nabc", BT, d, BT)
            E = np.einsum("ia,nijf,jb->nabf", AT, e, AT)                    # A e A^T
            M += np.einsum("nabc,nabf->abcf", V, E)
    return np.einsum("ai,abcf,bj->ijcf", G, M, G)


def weight_grad_output_transform(M, dtype):
    """dW (3, 3, C, F) = G^T M G from the summed M (36, C, F), in float64."""
    M_6x6 = M.astype(np.float64).reshape(6, 6, *M.shape[1:])                      # (6, 6, C, F)
    GT_M = [sum(G[a, i] * M_6x6[a] for a in range(6)) for i in range(3)]          # (6, C, F) each
    return np.stack([np.stack([sum(G[b, j] * r[b] for b in range(6)) for j in range(3)])
                     for r in GT_M]).astype(dtype)


CHANNELS_PER_PASS = 8   # weight_grad_output_transform_into: input channels read together


@njit(nogil=True, cache=True, boundscheck=False)
def weight_grad_output_transform_into(M_groups, G, dW, c0, c1):
    """dW[:, :, c, :] = G^T M G for the input channels c0 <= c < c1, where M (36, C, F) is
    the sum of M_groups (n_groups, 36, C, F) over its groups: the compiled twin of
    weight_grad_output_transform(M_groups.sum(axis=0, dtype=np.float64), dW.dtype).
    The same float64 sums in the same order (the groups one after the other; then a,
    then b, as the NumPy twin does), so the two agree to the last bit and the result
    does not depend on how the channels are shared out among threads.

    CHANNELS_PER_PASS channels at a time, so that each read of M_groups and each write
    of dW is a run of channels x F floats (channel by channel, the 36 x n_groups rows
    of F floats one channel reads lie C x F floats apart, a power of two that maps them
    all to the same few cache sets). Scratch: M_pass (channels, 36, F), the summed M of
    the pass's channels; dW_pass (3, 3, channels, F); GT_M (3, 6, F) = (G^T M)[i, b]."""
    n_groups, F = M_groups.shape[0], M_groups.shape[3]
    M_pass = np.empty((CHANNELS_PER_PASS, 36, F))
    dW_pass = np.empty((3, 3, CHANNELS_PER_PASS, F))
    GT_M = np.empty((3, 6, F))
    for pass_c0 in range(c0, c1, CHANNELS_PER_PASS):
        n_c = min(CHANNELS_PER_PASS, c1 - pass_c0)
        for k in range(36):                           # the groups, summed in order
            for g in range(n_groups):
                for cc in range(n_c):
                    for f in range(F):
                        value = np.float64(M_groups[g, k, pass_c0 + cc, f])
                        M_pass[cc, k, f] = value if g == 0 else M_pass[cc, k, f] + value
        for cc in range(n_c):
            M_c = M_pass[cc]
            for i in range(3):                        # G^T M: (G^T M)[i, b] = sum_a G[a, i] M[a, b]
                for b in range(6):
                    for f in range(F):
                        total = G[0, i] * M_c[b, f]
                        for a in range(1, 6):
                            total += G[a, i] * M_c[6 * a + b, f]
                        GT_M[i, b, f] = total
            for i in range(3):                        # (G^T M) G:
                for j in range(3):                    # dW[i, j] = sum_b G[b, j] (G^T M)[i, b]
                    for f in range(F):
                        total = G[0, j] * GT_M[i, 0, f]
                        for b in range(1, 6):
                            total += G[b, j] * GT_M[i, b, f]
                        dW_pass[i, j, cc, f] = total
        for i in range(3):                            # the pass's channels, one run each (i, j)
            for j in range(3):
                for cc in range(n_c):
                    for f in range(F):
                        dW[i, j, pass_c0 + cc, f] = dW_pass[i, j, cc, f]
    return dW


@njit(nogil=True, inline="always", boundscheck=False, fastmath={"contract"})
def a_row(p, src, o, dst, dst_start, n):
    """dst[dst_start : dst_start+n] = row p of A [e_0 .. e_3], e_j = src[o[j] : o[j]+n]."""
    two, four, eight = np.float32(2.0), np.float32(4.0), np.float32(8.0)
    o0, o1, o2, o3 = o[0], o[1], o[2], o[3]                         # where e_0 .. e_3 start
    if p == 0:
        for i in range(n):
            dst[dst_start + i] = src[o0 + i]
    elif p == 1:
        for i in range(n):
            dst[dst_start + i] = src[o0 + i] + src[o1 + i] + src[o2 + i] + src[o3 + i]
    elif p == 2:
        for i in range(n):
            dst[dst_start + i] = src[o0 + i] - src[o1 + i] + src[o2 + i] - src[o3 + i]
    elif p == 3:
        for i in range(n):
            dst[dst_start + i] = (src[o0 + i] + two * src[o1 + i] + four * src[o2 + i]
                                  + eight * src[o3 + i])
    elif p == 4:
        for i in range(n):
            dst[dst_start + i] = (src[o0 + i] - two * src[o1 + i] + four * src[o2 + i]
                                  - eight * src[o3 + i])
    else:
        for i in range(n):
            dst[dst_start + i] = src[o3 + i]


@njit(nogil=True, cache=True, boundscheck=False, fastmath={"contract"})
def winograd_grad_rows(x, dy, row0, row1, pad_top, pad_left, M_acc, band, partial_V, V, dy_band,
                       partial_E, E, V_tile_stride, E_tile_stride, P, FB, accumulate, dy_arg, OH,
                       OW):
    """M_acc (36, C, F) += M_k = V_k^T E_k over tile rows row0 .. row1-1 (tile row
    n * TH + ty, TH = ceil(OH / 4)); M_acc = M_k, its old contents ignored, when
    ``accumulate`` is False.

    x (N, H, W, C), dy (N, OH, OW, F), both C-contiguous float32; the product tiles
    are P input x FB output channels: 4 x 16, or on AVX-512 4 x 32 or 8 x 32 (C % P == 0,
    F % FB == 0). Scratch (flat float32), TW = ceil(OW / 4), T = (row1 - row0) * TW:
    band >= 24*(TW+1)*C and partial_V >= 36*TW*C (x's transform, as in winograd.py),
    V >= 36*T*V_tile_stride, dy_band >= 16*TW*F (4 dy rows in 4 phases),
    partial_E >= 24*TW*F (A along the columns), E >= 36*T*E_tile_stride.
    V_tile_stride, E_tile_stride: from one tile's values in V (E) to the next tile's,
    C (F) or more. A product tile reads T rows of V_k and E_k a tile stride apart; with
    C = F = 256 those rows are 1 KB apart and fall into the same few sets of the L1
    cache, evicting each other: DW_ROW_PAD floats more per row spread them out
    (conv_winograd.py).
    OH, OW: dy's rows and columns, dy.shape[1:3], unless dy_arg (int8, dy's shape) is not
    empty: then dy is a 2x2, stride-2 max-pool's gradient and the dy read is that pool's
    backward, OH x OW (each value at its argmax tap, zeros elsewhere; not written)."""
    N, H, W, C = x.shape
    PH, PW, F = dy.shape[1], dy.shape[2], dy.shape[3]  # dy's rows and columns (pooled or not)
    unpool = dy_arg.size > 0
    dy_arg_flat = dy_arg.reshape(dy_arg.size)
    no_arg = np.empty(0, np.int8)                     # x is read as it is
    TH, TW = (OH + 3) // 4, (OW + 3) // 4
    T = (row1 - row0) * TW
    x_flat, dy_flat, M_flat = x.reshape(x.size), dy.reshape(dy.size), M_acc.reshape(M_acc.size)
    one_tap = np.zeros(1, np.int64)                   # the tiles' tap offsets: one tap, at 0
    offs = np.zeros(6, np.uint64)                     # where the inputs of a transform start
    zero = np.float32(0.0)
    F_u, row_len = uint64(F), uint64(TW * F)          # unsigned F; row_len: TW tiles x F
    V_k_stride, E_k_stride = uint64(T * V_tile_stride), uint64(T * E_tile_stride)   # one k
    runs, run_len = (1, row_len) if E_tile_stride == F else (TW, F_u)   # E's tiles apart or not
    for row in range(row0, row1):
        n, ty = row // TH, row % TH
        input_transform_row(x_flat, H, W, C, n, ty, TW, pad_top, pad_left, band, partial_V, offs,
                            V, V_k_stride, uint64((row - row0) * TW * V_tile_stride),
                            V_tile_stride, no_arg, H, W)
        # the twin of the input band copy in winograd.py, written out for the same reason
        for a in range(4):                            # the dy band: 4 rows, in phases
            oh = 4 * ty + a
            for w in range(4 * TW):
                band_start = uint64((((w % 4) * 4 + a) * TW + w // 4) * F)
                if oh < OH and w < OW and not unpool:
                    src = uint64(((n * OH + oh) * OW + w) * F)
                    for f in range(F_u):
                        dy_band[band_start + f] = dy_flat[src + f]
                elif oh < OH and w < OW and oh // 2 < PH and w // 2 < PW:
                    src = uint64(((n * PH + oh // 2) * PW + w // 2) * F)   # its pooled pixel
                    tap = np.int8((oh % 2) * 2 + w % 2)
                    for f in range(F_u):
                        at_tap = dy_arg_flat[src + f] == tap
                        dy_band[band_start + f] = dy_flat[src + f] if at_tap else zero
                else:
                    for f in range(F_u):
                        dy_band[band_start + f] = zero
        for a in range(4):                            # A along the columns
            for b in range(4):
                offs[b] = uint64(b * 4 + a) * row_len
            for p in range(6):
                a_row(p, dy_band, offs, partial_E, uint64(p * 4 + a) * row_len, row_len)
        tile_start = uint64((row - row0) * TW * E_tile_stride)   # this row's first tile in E
        for p in range(6):                            # A along the rows -> E
            for run in range(runs):                   # all TW tiles at once, or tile by tile
                for a in range(4):
                    offs[a] = uint64(p * 4 + a) * row_len + uint64(run) * run_len
                start = tile_start + uint64(run) * uint64(E_tile_stride)
                for r in range(6):
                    a_row(r, partial_E, offs, E, uint64(6 * r + p) * E_k_stride + start, run_len)
    a_ks, b_ks = V_tile_stride, E_tile_stride         # from one tile (step k) to the next
    for k in range(36):                               # M_acc_k (+)= V_k^T @ E_k
        for c0 in range(0, C, P):
            for f0 in range(0, F, FB):
                # tile arguments: a = V_k from channel c0, p = channel (stride 1), k = tile
                # (stride a_ks); b = E_k from channel f0, k stride b_ks; T steps
                a_start = k * T * V_tile_stride + c0
                b_start = k * T * E_tile_stride + f0
                if P == 8:
                    tile_8x32(V, a_start, one_tap, 1, a_ks, E, b_start, one_tap, b_ks,
                              T, M_flat, (k * C + c0) * F + f0, F, accumulate)
                elif FB == 32:
                    tile_4x32(V, a_start, one_tap, 1, a_ks, E, b_start, one_tap, b_ks,
                              T, M_flat, (k * C + c0) * F + f0, F, accumulate)
                else:
                    tile_4x16(V, a_start, one_tap, 1, a_ks, E, b_start, one_tap, b_ks,
                              T, M_flat, (k * C + c0) * F + f0, F, accumulate)
    return M_acc
