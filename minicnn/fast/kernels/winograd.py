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

A quarter of the direct method's multiply-adds go through the products. The
price: float32 results differ from the direct sum by ~1e-5 relative (the
transforms multiply by up to 8 and the weight transform divides by 24).

Names: TH x TW tiles per image (TH = ceil(OH / 4), TW = ceil(OW / 4)); a tile row
is the TW tiles of one row of one image, numbered n * TH + ty in the batch. V and
M hold position k's (tiles, C) and (tiles, F) matrices one after the other.

How ``winograd_rows`` keeps the transforms fast. A transform is six-term sums
like 4 d0 - 5 d2 + d4 over the channels of six pixels. Written per tile, those
are loops of 32 or 64 channels that write six outputs at once, which LLVM does
not vectorize (it cannot rule out that the arrays overlap). Here every transform
is a loop with one output over a whole tile row (TW tiles x C channels,
contiguous), so each loop vectorizes with a cheap overlap check:

  * the input band of 6 rows is stored in 4 "phases", column w at phase w % 4,
    position w // 4: the j-th column of every tile in the row (tx: 4 tx + j)
    is then one contiguous run, phase j % 4 from position j // 4;
  * step 1 (B^T along the columns): partial_V[s, i] = sum_j B^T[s, j] column_j of row i
  * step 2 (B^T along the rows):    V[6 r + s]      = sum_i B^T[r, i] partial_V[s, i]
  * products:                       M_k = V_k @ U_k (the register tiles of tiles.py)
  * step 3 (A^T along the rows):    partial_Y[r, j] = sum_i A^T[r, i] M[6 i + j]
  * step 4 (A^T along the columns): Y[r, s]         = sum_j A^T[s, j] partial_Y[r, j]
    then each output pixel (4 ty + r, 4 tx + s) gets its bias (and ReLU) and is
    put in place; tiles that stick out of the map are computed on zeros and cropped.

Two details that matter (docs/performance.md, "Winograd", has the figures): the
constants must be float32 (a Python 4.0 turns every loop into float64
arithmetic), and the six start offsets go to the loops through a small array
(``offs``): written as o, o + n, o + 2n, ... LLVM sees how they relate and
stops vectorizing steps 2-4.
"""
import numpy as np
from numba import njit, uint64

from .tiles import tile_3x32, tile_4x64, tile_8x32

BT = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
               [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float64)
G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float64)
AT = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
               [0, 1, -1, 8, -8, 1]], np.float64)


def weight_transform(W, FB=32):
    """U (36, F/FB, C, FB) = G g G^T per (c, f), packed in FB-channel blocks for the tiles
    (FB = 32, or 64 for the AVX-512 tile; F must be a multiple of FB).

    In NumPy this is np.einsum("ai,ijcf,bj->abcf", G, W, G) (winograd_reference). Here it
    is a compiled loop in float64 (weight_transform_into), faster than the same sums over
    NumPy slices (weight_transform_over_slices; measured in docs/performance.md,
    "Winograd"); and no matrix product, on purpose: a small multi-threaded OpenBLAS call
    would leave its threads spinning and take a core from every layer that follows
    (docs/performance.md, "One-thread BLAS blocks")."""
    C, F = W.shape[2:]
    U = np.empty((36, F // FB, C, FB), W.dtype)
    weight_transform_into(np.ascontiguousarray(W), G, U, 0, C)
    return U


def weight_transform_over_slices(W, FB=32):
    """weight_transform in NumPy: the same float64 sums in the same order, over whole
    (C, F) slices (its twin; the tests check they agree to the last bit)."""
    C, F = W.shape[2:]
    g = W.astype(np.float64)
    Gg = [sum(G[a, i] * g[i] for i in range(3)) for a in range(6)]     # G g: (3, C, F) each
    U = np.stack([sum(G[b, j] * Gg[a][j] for j in range(3)) for a in range(6) for b in range(6)])
    U = U.astype(W.dtype).reshape(36, C, F // FB, FB).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(U)


CHANNELS_PER_PASS = 8   # weight_transform_into: input channels whose U rows are written together


@njit(nogil=True, cache=True, boundscheck=False)
def weight_transform_into(W, G, U, c0, c1):
    """U[6a + b, f // FB, c, f % FB] = sum_j G[b, j] (sum_i G[a, i] W[i, j, c, f]) for the
    input channels c0 <= c < c1, in float64, summed in that order (i, then j), so the
    result does not depend on how the loops are vectorized or the channels shared out
    among threads.

    CHANNELS_PER_PASS channels at a time: first Gg = G g (6, 3, F) for each of them,
    then U position by position, each write a run of channels x FB floats. (Channel by
    channel, the 36 x F/FB runs of FB floats one channel writes lie C x FB floats
    apart, a power of two that maps them all to the same few cache sets.)"""
    C, F = W.shape[2], W.shape[3]
    n_blocks, FB = U.shape[1], U.shape[3]
    W_flat, U_flat = W.reshape(W.size), U.reshape(U.size)
    Gg = np.empty(CHANNELS_PER_PASS * 18 * F)     # (channel of the pass, a, j, f), float64
    F_u, FB_u = uint64(F), uint64(FB)
    for pass_c0 in range(c0, c1, CHANNELS_PER_PASS):
        pass_c1 = min(pass_c0 + CHANNELS_PER_PASS, c1)
        for c in range(pass_c0, pass_c1):         # Gg[a, j] = sum_i G[a, i] W[i, j, c]
            for a in range(6):
                for j in range(3):
                    w0 = uint64((j * C + c) * F)              # W[0, j, c, :]
                    w1 = uint64(((3 + j) * C + c) * F)        # W[1, j, c, :]
                    w2 = uint64(((6 + j) * C + c) * F)        # W[2, j, c, :]
                    gg = uint64((((c - pass_c0) * 6 + a) * 3 + j) * F)
                    for f in range(F_u):
                        Gg[gg + f] = (G[a, 0] * np.float64(W_flat[w0 + f])
                                      + G[a, 1] * np.float64(W_flat[w1 + f])
                                      + G[a, 2] * np.float64(W_flat[w2 + f]))
        for a in range(6):                        # U[6a + b] = sum_j G[b, j] Gg[a, j]
            for b in range(6):
                for block in range(n_blocks):
                    for c in range(pass_c0, pass_c1):
                        gg0 = uint64(((c - pass_c0) * 6 + a) * 3 * F + block * FB)
                        gg1, gg2 = gg0 + F_u, gg0 + 2 * F_u
                        u = uint64((((6 * a + b) * n_blocks + block) * C + c) * FB)
                        for q in range(FB_u):
                            U_flat[u + q] = (G[b, 0] * Gg[gg0 + q] + G[b, 1] * Gg[gg1 + q]
                                             + G[b, 2] * Gg[gg2 + q])


def winograd_reference(x, W, b, pad_top, pad_left, OH, OW):
    """The whole F(4x4, 3x3) convolution in NumPy, tile by tile (twin of winograd_rows)."""
    N, H, Wd, C = x.shape
    F = W.shape[3]
    TH, TW = -(-OH // 4), -(-OW // 4)
    x_pad = np.zeros((N, 4 * TH + 2, 4 * TW + 2, C))                 # the tiles' 6x6 inputs
    h_in, w_in = min(H, 4 * TH + 2 - pad_top), min(Wd, 4 * TW + 2 - pad_left)  # rows, cols read
    x_pad[:, pad_top:pad_top + h_in, pad_left:pad_left + w_in] = x[:, :h_in, :w_in]
    U = np.einsum("ai,ijcf,bj->abcf", G, W.astype(np.float64), G)
    y = np.zeros((N, 4 * TH, 4 * TW, F))
    for ty in range(TH):
        for tx in range(TW):
            d = x_pad[:, 4 * ty:4 * ty + 6, 4 * tx:4 * tx + 6]
            V = np.einsum("ai,nijc,bj->nabc", BT, d, BT)
            M = np.einsum("nabc,abcf->nabf", V, U)
            y[:, 4 * ty:4 * ty + 4, 4 * tx:4 * tx + 4] = np.einsum("ia,nabf,jb->nijf", AT, M, AT)
    y = y[:, :OH, :OW] + (0 if b is None else b)
    return y.astype(x.dtype)


@njit(nogil=True, inline="always", boundscheck=False, fastmath={"contract"})
def bt_row(r, src, o, dst, dst_start, n):
    """dst[dst_start : dst_start+n] = row r of B^T [d_0 .. d_5], d_j = src[o[j] : o[j]+n].
    (Flat float32 arrays, uint64 offsets, float32 constants: one output per loop,
    so each loop vectorizes, 8 lanes.)"""
    two, four, five = np.float32(2.0), np.float32(4.0), np.float32(5.0)
    o0, o1, o2, o3, o4, o5 = o[0], o[1], o[2], o[3], o[4], o[5]     # where d_0 .. d_5 start
    if r == 0:
        for i in range(n):
            dst[dst_start + i] = four * src[o0 + i] - five * src[o2 + i] + src[o4 + i]
    elif r == 1:
        for i in range(n):
            dst[dst_start + i] = src[o3 + i] + src[o4 + i] - four * (src[o1 + i] + src[o2 + i])
    elif r == 2:
        for i in range(n):
            dst[dst_start + i] = four * (src[o1 + i] - src[o2 + i]) - src[o3 + i] + src[o4 + i]
    elif r == 3:
        for i in range(n):
            dst[dst_start + i] = two * (src[o3 + i] - src[o1 + i]) - src[o2 + i] + src[o4 + i]
    elif r == 4:
        for i in range(n):
            dst[dst_start + i] = two * (src[o1 + i] - src[o3 + i]) - src[o2 + i] + src[o4 + i]
    else:
        for i in range(n):
            dst[dst_start + i] = four * src[o1 + i] - five * src[o3 + i] + src[o5 + i]


@njit(nogil=True, inline="always", boundscheck=False, fastmath={"contract"})
def at_row(r, src, o, dst, dst_start, n):
    """dst[dst_start : dst_start+n] = row r of A^T [m_0 .. m_5], m_j = src[o[j] : o[j]+n]."""
    two, four, eight = np.float32(2.0), np.float32(4.0), np.float32(8.0)
    o0, o1, o2, o3, o4, o5 = o[0], o[1], o[2], o[3], o[4], o[5]     # where m_0 .. m_5 start
    if r == 0:
        for i in range(n):
            dst[dst_start + i] = (src[o0 + i] + src[o1 + i] + src[o2 + i] + src[o3 + i]
                                  + src[o4 + i])
    elif r == 1:
        for i in range(n):
            dst[dst_start + i] = src[o1 + i] - src[o2 + i] + two * (src[o3 + i] - src[o4 + i])
    elif r == 2:
        for i in range(n):
            dst[dst_start + i] = src[o1 + i] + src[o2 + i] + four * (src[o3 + i] + src[o4 + i])
    else:
        for i in range(n):
            dst[dst_start + i] = (src[o1 + i] - src[o2 + i]
                                  + eight * (src[o3 + i] - src[o4 + i]) + src[o5 + i])


@njit(nogil=True, inline="always", boundscheck=False, fastmath={"contract"})
def input_transform_row(x_flat, H, W, C, n, ty, TW, pad_top, pad_left, band, partial_V, offs, V,
                        V_k_stride, tile_start, tile_stride, arg_flat, PH, PW):
    """V[k][tiles of row (n, ty)] = (B^T d B)[k] for its TW tiles, written at
    V[k * V_k_stride + tile_start ...]: the band of 6 input rows in 4 phases, then
    steps 1 and 2 (module docstring). x_flat: x (N, H, W, C) flat; band (4 phases x
    6 rows x (TW+1) positions x C), partial_V (36 x TW x C), offs (6): scratch;
    V_k_stride (one position k of V), tile_start (this row's first tile): uint64;
    tile_stride: from one tile's C values in V to the next tile's, C (side by side)
    or more (padded apart, as winograd_grad.py's wide layers want them): tile tx of the
    row goes to V[k * V_k_stride + tile_start + tx * tile_stride ...].

    arg_flat, when not empty: x_flat is a 2x2, stride-2 max-pool's gradient (N, PH, PW, C)
    and arg_flat its argmax (int8, same shape), and the input read is that pool's
    backward, (N, H, W, C): each pooled value at its window's argmax tap, zero at the
    other taps and where no window reaches (what maxpool_backward writes, not written)."""
    zero = np.float32(0.0)
    unpool = arg_flat.size > 0
    phase_len = TW + 1                                # positions per phase of the band
    C_u, row_len = uint64(C), uint64(TW * C)          # row_len: TW tiles x C channels
    # The band copy below has a twin in winograd_grad.py (the dy band): a shared inline
    # helper made both kernels slower per core (docs/performance.md), so each is written out.
    for i in range(6):                                # the band: 6 input rows, in phases
        ih = 4 * ty - pad_top + i                     # input row
        for w in range(4 * TW + 2):
            band_start = uint64((((w % 4) * 6 + i) * phase_len + w // 4) * C)
            iw = w - pad_left                         # input column
            if 0 <= ih < H and 0 <= iw < W and not unpool:
                src = uint64(((n * H + ih) * W + iw) * C)
                for c in range(C_u):
                    band[band_start + c] = x_flat[src + c]
            elif 0 <= ih < H and 0 <= iw < W and ih // 2 < PH and iw // 2 < PW:
                src = uint64(((n * PH + ih // 2) * PW + iw // 2) * C)   # its pooled pixel
                tap = np.int8((ih % 2) * 2 + iw % 2)
                for c in range(C_u):
                    band[band_start + c] = x_flat[src + c] if arg_flat[src + c] == tap else zero
            else:
                for c in range(C_u):
                    band[band_start + c] = zero
    for i in range(6):                                # step 1: B^T along the columns
        for j in range(6):                            # column j: phase j % 4, from position j // 4
            offs[j] = uint64((((j % 4) * 6 + i) * phase_len + j // 4) * C)
        for s in range(6):
            bt_row(s, band, offs, partial_V, uint64(s * 6 + i) * row_len, row_len)
    # step 2 writes one run of the row's TW tiles, or one run per tile when they lie apart
    runs, run_len = (1, row_len) if tile_stride == C else (TW, C_u)
    for s in range(6):                                # step 2: B^T along the rows -> V
        for run in range(runs):
            for i in range(6):
                offs[i] = uint64(s * 6 + i) * row_len + uint64(run) * run_len
            start = tile_start + uint64(run) * uint64(tile_stride)
            for r in range(6):
                bt_row(r, partial_V, offs, V, uint64(6 * r + s) * V_k_stride + start, run_len)


@njit(nogil=True, inline="always", boundscheck=False)
def put_pooled_rows(y_tiles, TW, F, b, relu, n, ty, pooled, arg, best, best_tap, bias_row, offs):
    """The 2x2, stride-2 max-pool of one tile row's 4x4 outputs (plus bias, then ReLU),
    written to pooled (N, OH // 2, OW // 2, F_out) and its argmax to arg (int8): the
    pooled rows 2 ty and 2 ty + 1, tiles' outputs (4 ty + r, 4 tx + s) in y_tiles at
    ((r * 4 + s) * TW + tx) * F. The taps are visited in maxpool_forward's order with
    its test (kernels/pooling.py): ties keep the first maximum, a NaN wins and stays.

    For each pooled row and column parity ps, the four taps of every window of the
    row are four runs of TW * F floats in y_tiles (one per (r, s)), so the max is one
    loop over the whole row (it vectorizes; a loop per pixel, F long, would be too
    short to): into best and best_tap (scratch, TW * F each), then copied out pixel by
    pixel. bias_row (TW * F): the bias repeated for each tile; offs (4): scratch."""
    POH, POW, F_out = pooled.shape[1], pooled.shape[2], pooled.shape[3]
    zero = np.float32(0.0)
    row_len = uint64(TW * F)
    has_bias = b.size > 0
    for pr in range(2):
        pi = 2 * ty + pr                              # pooled row
        if pi >= POH:
            continue
        for ps in range(2):                           # pooled columns 2 tx + ps
            for t in range(4):                        # tap t = kh * 2 + kw: output (r, s)
                r, s = 2 * pr + t // 2, 2 * ps + t % 2
                offs[t] = uint64(r * 4 + s) * row_len
            o0, o1, o2, o3 = offs[0], offs[1], offs[2], offs[3]
            for i in range(row_len):
                v0, v1, v2, v3 = y_tiles[o0 + i], y_tiles[o1 + i], y_tiles[o2 + i], y_tiles[o3 + i]
                if has_bias:
                    v0, v1 = v0 + bias_row[i], v1 + bias_row[i]
                    v2, v3 = v2 + bias_row[i], v3 + bias_row[i]
                if relu:
                    v0, v1, v2, v3 = max(v0, zero), max(v1, zero), max(v2, zero), max(v3, zero)
                value, tap = v0, zero
                wins = (not (v1 <= value)) & (value == value)
                tap, value = (np.float32(1.0), v1) if wins else (tap, value)
                wins = (not (v2 <= value)) & (value == value)
                tap, value = (np.float32(2.0), v2) if wins else (tap, value)
                wins = (not (v3 <= value)) & (value == value)
                tap, value = (np.float32(3.0), v3) if wins else (tap, value)
                best[i] = value
                best_tap[i] = tap
            for tx in range(TW):
                pj = 2 * tx + ps                      # pooled column
                if pj >= POW:
                    continue
                src = uint64(tx * F)
                for f in range(F_out):
                    pooled[n, pi, pj, f] = best[src + f]
                for f in range(F_out):
                    arg[n, pi, pj, f] = np.int8(best_tap[src + f])


@njit(nogil=True, cache=True, boundscheck=False, fastmath={"contract"})
def winograd_rows(x, row0, row1, pad_top, pad_left, U_packed, P, b, relu, y, band, partial_V, V,
                  M, partial_Y, y_tiles, pooled, arg, unpool_arg, H, W, mask):
    """Tile rows row0 .. row1-1 (tile row n * TH + ty, TH = ceil(OH / 4)) of
    y = conv3x3(x) + b (then max(., 0) if relu), by F(4x4, 3x3).

    x (N, H, W, C) C-contiguous; U_packed (36, F/FB, C, FB) from weight_transform; the
    products run on P x FB tiles: 3 x 32 (AVX2), 8 x 32 or 4 x 64 (AVX-512); b (F_out,)
    or empty; y (N, OH, OW, F_out) with F_out <= F: the first F_out of the F output
    channels (F_out < F when F was padded up to the tiles' width with zero filters).
    Scratch (flat float32 arrays), TW = ceil(OW / 4), T = (row1 - row0) * TW tiles:
    band >= 4*6*(TW+1)*C (the input rows, module docstring), partial_V >= 36*TW*C
    (step 1), V >= 36*max(T, P)*C, M >= 36*max(T, P)*F,
    partial_Y >= 24*TW*F (step 3), y_tiles >= 16*TW*F (step 4: the 4x4 outputs of one tile row).
    pooled (N, OH // 2, OW // 2, F_out) and arg (same shape, int8), when not empty: the
    output goes through a 2x2, stride-2 max-pool instead, written there (y is not
    written; put_pooled_rows). H, W: the input's rows and columns, x.shape[1:3], unless
    unpool_arg (int8, x's shape) is not empty: then x is a max-pool's gradient and the
    input is that pool's backward, H x W (input_transform_row). mask (y's shape), when
    not empty (b empty, relu False): y is written where mask > 0 and 0 elsewhere (dx
    through the ReLU whose output mask is, as kernels/relu.py's relu_backward writes it)."""
    N, C = x.shape[0], x.shape[3]
    PH, PW = x.shape[1], x.shape[2]                   # x's rows and columns (pooled or not)
    unpool_flat = unpool_arg.reshape(unpool_arg.size)
    OH, OW, F_out = y.shape[1], y.shape[2], y.shape[3]
    TH, TW = (OH + 3) // 4, (OW + 3) // 4
    T = (row1 - row0) * TW
    FB = U_packed.shape[3]                            # output channels per product tile
    F = U_packed.shape[1] * FB                        # the products' output channels
    T_padded = max(T, P)                              # the products take P tiles at a time
    n_channel_blocks = F // FB                        # U_packed's blocks of FB output channels
    x_flat, y_flat = x.reshape(x.size), y.reshape(y.size)
    mask_flat = mask.reshape(mask.size)
    U_flat = U_packed.reshape(U_packed.size)
    one_tap = np.zeros(1, np.int64)                   # the tiles' tap offsets: one tap, at 0
    offs = np.zeros(6, np.uint64)                     # where the six inputs of a transform start
    zero = np.float32(0.0)
    F_u, row_len = uint64(F_out), uint64(TW * F)      # channels kept; row_len: a tile row of M
    V_k_stride, M_k_stride = uint64(T_padded * C), uint64(T_padded * F)  # one position k of V, M
    if pooled.size:                                   # put_pooled_rows' scratch
        best = np.empty(TW * F, y_tiles.dtype)
        best_tap = np.empty(TW * F, y_tiles.dtype)
        bias_row = np.zeros(TW * F, y_tiles.dtype)
        for tx in range(TW):
            for f in range(b.size):
                bias_row[tx * F + f] = b[f]
    else:
        best = best_tap = bias_row = np.empty(0, y_tiles.dtype)
    for row in range(row0, row1):                     # input transform, row by row of tiles
        input_transform_row(x_flat, H, W, C, row // TH, row % TH, TW, pad_top, pad_left, band,
                            partial_V, offs, V, V_k_stride, uint64((row - row0) * TW * C), C,
                            unpool_flat, PH, PW)
    for k in range(36):                               # products M_k = V_k @ U_k
        for fb in range(n_channel_blocks):
            for t in range(0, T_padded, P):
                t_first = min(t, T_padded - P)        # last group shifted back (recomputes)
                # a = V_k from tile t_first, p = tile (stride C), k = input channel; b = block
                # fb of U_k, k stride FB; C steps; out = M_k from tile t_first, channel fb*FB
                if P == 8:
                    tile_8x32(V, k * T_padded * C + t_first * C, one_tap, C, 1, U_flat,
                              (k * n_channel_blocks + fb) * C * FB, one_tap, FB, C,
                              M, k * T_padded * F + t_first * F + fb * FB, F, False)
                elif FB == 32:
                    tile_3x32(V, k * T_padded * C + t_first * C, one_tap, C, 1, U_flat,
                              (k * n_channel_blocks + fb) * C * FB, one_tap, FB, C,
                              M, k * T_padded * F + t_first * F + fb * FB, F, False)
                else:
                    tile_4x64(V, k * T_padded * C + t_first * C, one_tap, C, 1, U_flat,
                              (k * n_channel_blocks + fb) * C * FB, one_tap, FB, C,
                              M, k * T_padded * F + t_first * F + fb * FB, F, False)
    for row in range(row0, row1):                     # output transform, row by row
        n, ty = row // TH, row % TH
        tile_start = uint64((row - row0) * TW * F)    # this row's first tile in M
        for j in range(6):                            # step 3: A^T along the rows
            for i in range(6):
                offs[i] = uint64(6 * i + j) * M_k_stride + tile_start
            for r in range(4):
                at_row(r, M, offs, partial_Y, uint64(r * 6 + j) * row_len, row_len)
        for r in range(4):                            # step 4: A^T along the columns
            for j in range(6):
                offs[j] = uint64(r * 6 + j) * row_len
            for s in range(4):
                at_row(s, partial_Y, offs, y_tiles, uint64(r * 4 + s) * row_len, row_len)
        if pooled.size:                               # bias, ReLU, 2x2 max-pool
            put_pooled_rows(y_tiles, TW, F, b, relu, n, ty, pooled, arg, best, best_tap,
                            bias_row, offs)
            continue
        for r in range(4):                            # bias, ReLU, put in place (cropped)
            oh = 4 * ty + r
            if oh >= OH:
                continue
            for ow in range(OW):
                src = uint64(((r * 4 + ow % 4) * TW + ow // 4) * F)
                dst = uint64(((n * OH + oh) * OW + ow) * F_out)
                if mask.size:                         # (dx: no bias, no ReLU of its own)
                    for f in range(F_u):
                        y_flat[dst + f] = y_tiles[src + f] if mask_flat[dst + f] > zero else zero
                    continue
                if b.size:
                    for f in range(F_u):
                        y_flat[dst + f] = y_tiles[src + f] + b[f]
                else:
                    for f in range(F_u):
                        y_flat[dst + f] = y_tiles[src + f]
                if relu:
                    for f in range(F_u):
                        y_flat[dst + f] = max(y_flat[dst + f], zero)
    return y
