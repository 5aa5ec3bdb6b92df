"""Direct convolution (stride 1, NHWC, float32): numba drivers and the NumPy twins.

No im2col matrix at all: each image is copied once into a zero-bordered
scratch buffer x_pad (OH + KH - 1, OW + KW - 1, C), small enough to stay in the
core's L2 cache, and the register-blocked tiles of microkernel.py / tiles.py
read it in place:

    forward:      y[n, oh, ow, f] = sum_{kh, kw, c} x_pad[oh + kh, ow + kw, c] * W[kh, kw, c, f]
    weight grad:  dW[kh, kw, c, f] += sum_{oh, ow}  x_pad[oh + kh, ow + kw, c] * dy[n, oh, ow, f]

and dx (stride 1) is the forward pass on dy with the flipped, transposed
kernel (fast/conv.py). Both drivers work on a range of images [n0, n1), so
the caller can hand whole images to each core (fast/parallel.py).

conv_images: a tile is P = 3 output pixels of one row x FB = 32 output
channels (or 4 x 24, 4 x 16; 4 x 64 or 8 x 32 on AVX-512: tile_width,
conv_direct.forward_tile_pixels), summed over the
KH*KW taps and C input channels. The weights are first packed as W_packed[F/FB, KH*KW*C, FB]
(``pack_weights``): each tile then reads one contiguous FB-float row per step.
Why pack: read in place, the rows of W[..., f0:f0+32] are F floats apart (256 bytes
when F = 64), and rows at such a stride map onto a quarter of the L1 cache sets,
where they evict each other (docs/performance.md, "Register tiles").

A row whose width is not a multiple of P ends with a tile shifted left to OW - P,
which recomputes a column or two instead of needing a second kernel. Taps that
read padding rows (the kernel rows above the first and below the last image row)
are left out of the sum; the padding columns cannot be, as they are shared by a
tile's pixels.

weight_grad_images: a tile is 4 input channels x 16 output channels (4 x 32 on
AVX-512, fast/vectors.py) of one kernel tap, summed over the pixels of DW_ROWS = 2
output rows, then added to dW; rows and pixels whose tap reads padding are left out
of the sum (they add zero). With few input channels (RGB), a tile row is one (tap
column, channel) of a kernel row instead, 8 of them per AVX-512 tile.
Two rows at a time keep the data of every tile pass in L1 (a tile that sums over
a whole image is slower: docs/performance.md, "Register tiles").

Memory: x_pad per thread, (OH + KH - 1) * (OW + KW - 1) * C floats, and the
packed weights; nothing of the size of the batch.
"""
import numba
import numpy as np
from numba import njit

from .tiles import tile_3x32, tile_4x16, tile_4x24, tile_4x32, tile_4x64, tile_8x32
from ..vectors import vector_unit

DW_ROWS = 2              # output rows summed per dW tile call
WINDOW_ROWS_UP_TO = 16   # dW of KW * C up to this: a tile row per (kw, c) (weight_grad_images)


def direct_conv_reference(x, W, pad_top, pad_left, OH, OW):
    """y (N, OH, OW, F) as a sum over taps of shifted images times W[kh, kw] (plain NumPy)."""
    N, H, Wd, C = x.shape                                 # Wd: the image width
    KH, KW = W.shape[:2]
    x_pad = np.zeros((N, OH + KH - 1, OW + KW - 1, C), dtype=x.dtype)
    x_pad[:, pad_top:pad_top + H, pad_left:pad_left + Wd] = x
    return sum(x_pad[:, kh:kh + OH, kw:kw + OW] @ W[kh, kw]
               for kh in range(KH) for kw in range(KW))


def direct_weight_grad_reference(x, dy, KH, KW, pad_top, pad_left):
    """dW (KH, KW, C, F): for every tap, the shifted image contracted with dy over (n, oh, ow)."""
    N, OH, OW, F = dy.shape
    H, Wd, C = x.shape[1:]
    x_pad = np.zeros((N, OH + KH - 1, OW + KW - 1, C), dtype=x.dtype)
    x_pad[:, pad_top:pad_top + H, pad_left:pad_left + Wd] = x
    over_pixels = ([0, 1, 2], [0, 1, 2])                                      # (n, oh, ow)
    return np.stack([np.stack([np.tensordot(x_pad[:, kh:kh + OH, kw:kw + OW], dy,
                                            axes=over_pixels)
                               for kw in range(KW)]) for kh in range(KH)])


def slp_vectorizer_on():
    """True when numba compiles with LLVM's SLP vectorizer, which the tiles need."""
    return bool(numba.config.SLP_VECTORIZE)


def tile_width(F, OW):
    """Output channels per forward tile, FB, for F output channels on rows OW pixels wide
    (0: no tile fits). The widest that divides F (64 when the tiles are shaped for
    AVX-512, then 32, 24, 16), unless a narrower one's 4-pixel rows fit OW so much better
    that it computes >= 10% fewer columns: on AVX2, 64 channels at 16 pixels take 4 x 16
    (16 columns instead of 18), at 32 or 31 pixels 3 x 32 (33 columns).
    docs/performance.md has the measurement."""
    wide = vector_unit().forward_tile[1]
    fits = [FB for FB in sorted({wide, 32, 24, 16}, reverse=True) if F % FB == 0]
    if not fits:
        return 0
    columns = lambda FB: -(-OW // tile_pixels(FB)) * tile_pixels(FB)
    best = min(fits, key=columns)
    return best if columns(best) * 1.1 <= columns(fits[0]) else fits[0]


@njit(cache=True)
def tile_pixels(FB):
    """Output pixels per forward tile: 3 x 32, 4 x 24, 4 x 16 or 4 x 64 (microkernel.SHAPES)."""
    return 3 if FB == 32 else 4


def pack_weights(W, FB):
    """W (KH, KW, C, F) -> (F/FB, KH*KW*C, FB), C-contiguous: one block per FB channels."""
    KH, KW, C, F = W.shape
    return np.ascontiguousarray(W.reshape(KH * KW * C, F // FB, FB).transpose(1, 0, 2))


@njit(nogil=True, cache=True, boundscheck=False)
def conv_images(x, n0, n1, pad_top, pad_left, W_packed, KH, KW, b, relu, y, x_pad, P):
    """y[n0:n1] = conv(x[n0:n1], W) + b, then max(y, 0) if relu. x (N, H, W, C); W_packed
    from pack_weights; b (F,) or an empty array for no bias; y (N, OH, OW, F); x_pad scratch
    (OH+KH-1, OW+KW-1, C), zero outside the image area (its interior is overwritten here);
    P: output pixels per tile, tile_pixels(FB), or 8 with FB = 32 (the AVX-512 8 x 32 tile).
    Bias and ReLU are applied to each image right after its tiles, while it is in cache."""
    N, H, Wd, C = x.shape                              # Wd: the image width
    OH, OW, F = y.shape[1], y.shape[2], y.shape[3]
    n_channel_blocks, K, FB = W_packed.shape           # F/FB blocks of FB channels; K = KH*KW*C
    padded_width = x_pad.shape[1]
    # per tap t = kh * KW + kw, the tile's offsets: into x_pad, from the tile's first
    # pixel (pixel rows kh below, kw columns right); into a block of W_packed, its C rows
    tap_offsets_x = np.empty(KH * KW, np.int64)
    tap_offsets_W = np.empty(KH * KW, np.int64)
    for kh in range(KH):
        for kw in range(KW):
            tap_offsets_x[kh * KW + kw] = (kh * padded_width + kw) * C
            tap_offsets_W[kh * KW + kw] = (kh * KW + kw) * C * FB
    x_pad_flat, W_flat, y_flat = x_pad.reshape(x_pad.size), W_packed.reshape(W_packed.size), \
        y.reshape(y.size)
    for n in range(n0, n1):
        x_pad[pad_top:pad_top + H, pad_left:pad_left + Wd, :] = x[n]
        for fb in range(n_channel_blocks):             # output channels fb*FB .. fb*FB + FB-1
            for oh in range(OH):
                kh0 = max(0, pad_top - oh)                 # taps kh < kh0 or >= kh1 would
                kh1 = max(kh0, min(KH, pad_top + H - oh))  # read padding rows: skipped
                taps_x = tap_offsets_x[kh0 * KW:kh1 * KW]
                taps_W = tap_offsets_W[kh0 * KW:kh1 * KW]
                for ow in range(0, OW, P):
                    ow0 = min(ow, OW - P)            # last tile shifted left (needs OW >= P)
                    x_start = (oh * padded_width + ow0) * C            # x_pad[oh, ow0, 0]
                    y_start = ((n * OH + oh) * OW + ow0) * F + fb * FB  # y[n, oh, ow0, fb*FB]
                    # tile arguments: a = x_pad, p = output pixel (stride C), k = input
                    # channel (stride 1); b = block fb of W_packed (from fb*K*FB), k stride
                    # FB; C steps per tap; out = y, p stride F
                    if P == 8:
                        tile_8x32(x_pad_flat, x_start, taps_x, C, 1, W_flat, fb * K * FB, taps_W,
                                  FB, C, y_flat, y_start, F, False)
                    elif FB == 32:
                        tile_3x32(x_pad_flat, x_start, taps_x, C, 1, W_flat, fb * K * FB, taps_W,
                                  FB, C, y_flat, y_start, F, False)
                    elif FB == 64:
                        tile_4x64(x_pad_flat, x_start, taps_x, C, 1, W_flat, fb * K * FB, taps_W,
                                  FB, C, y_flat, y_start, F, False)
                    elif FB == 24:
                        tile_4x24(x_pad_flat, x_start, taps_x, C, 1, W_flat, fb * K * FB, taps_W,
                                  FB, C, y_flat, y_start, F, False)
                    else:
                        tile_4x16(x_pad_flat, x_start, taps_x, C, 1, W_flat, fb * K * FB, taps_W,
                                  FB, C, y_flat, y_start, F, False)
        if b.size or relu:
            y_image = y[n].reshape(OH * OW, F)
            for i in range(OH * OW):
                for f in range(F):
                    v = y_image[i, f] + b[f] if b.size else y_image[i, f]
                    y_image[i, f] = max(v, 0.0) if relu else v
    return y


@njit(nogil=True, cache=True, boundscheck=False)
def weight_grad_images(x, dy, n0, n1, pad_top, pad_left, KH, KW, dW, x_pad, FB):
    """dW (KH, KW, C, F) += sum over images n0..n1-1 of x_pad (*) dy, with tiles of 4 input
    x FB output channels (FB = 16, or 32 on AVX-512). x_pad scratch as in conv_images but
    with C channels, C >= x's channels and a multiple of 4: the extra channels stay zero
    (RGB runs as 4 channels) and their rows of dW come out zero. Needs F % FB == 0.

    Few channels (KW * C <= WINDOW_ROWS_UP_TO): one tile row per (kw, c) of a kernel row
    instead: in x_pad the KW taps of a pixel are KW * C consecutive floats, so tile row
    p = kw * C + c reads x_pad[oh + kh, ow + kw, c] at stride C along the row, every
    pixel of it (the padding columns are zeros and add nothing), 8 rows per tile where
    they fit (the 8 x 32 tile: twice the accumulators of 4 x 32)."""
    Cx = x.shape[3]                                    # x's channels; C: x_pad's
    N, H, Wd = x.shape[0], x.shape[1], x.shape[2]      # Wd: the image width
    C = x_pad.shape[2]
    OH, OW, F = dy.shape[1], dy.shape[2], dy.shape[3]
    padded_width = x_pad.shape[1]
    window_rows = KW * C <= WINDOW_ROWS_UP_TO
    # per output row r of the DW_ROWS summed by one tile call (the tile's "taps"):
    row_offsets_x = np.empty(DW_ROWS, np.int64)        # start of x_pad row oh0 + r
    row_offsets_dy = np.empty(DW_ROWS, np.int64)       # start of dy[n, oh0 + r]
    x_pad_flat, dy_flat, dW_flat = x_pad.reshape(x_pad.size), dy.reshape(dy.size), \
        dW.reshape(dW.size)
    for n in range(n0, n1):
        x_pad[pad_top:pad_top + H, pad_left:pad_left + Wd, :Cx] = x[n]
        for oh0 in range(0, OH, DW_ROWS):
            rows = min(DW_ROWS, OH - oh0)
            for r in range(rows):
                row_offsets_x[r] = (oh0 + r) * padded_width * C
                row_offsets_dy[r] = ((n * OH + oh0 + r) * OW) * F
            for kh in range(KH):                   # rows r0..r1-1 read image rows for tap kh
                r0 = max(0, pad_top - kh - oh0)
                r1 = min(rows, pad_top + H - kh - oh0)
                if r1 <= r0:
                    continue
                if window_rows:                    # tile rows p = kw * C + c, from p0
                    p0 = 0
                    while p0 < KW * C:
                        eight = FB == 32 and p0 + 8 <= KW * C
                        for f0 in range(0, F, FB):
                            a_start = kh * padded_width * C + p0
                            out_start = (kh * KW * C + p0) * F + f0
                            if eight:
                                tile_8x32(x_pad_flat, a_start, row_offsets_x[r0:r1], 1, C,
                                          dy_flat, f0, row_offsets_dy[r0:r1], F, OW,
                                          dW_flat, out_start, F, True)
                            elif FB == 32:
                                tile_4x32(x_pad_flat, a_start, row_offsets_x[r0:r1], 1, C,
                                          dy_flat, f0, row_offsets_dy[r0:r1], F, OW,
                                          dW_flat, out_start, F, True)
                            else:
                                tile_4x16(x_pad_flat, a_start, row_offsets_x[r0:r1], 1, C,
                                          dy_flat, f0, row_offsets_dy[r0:r1], F, OW,
                                          dW_flat, out_start, F, True)
                        p0 += 8 if eight else 4
                    continue
                for kw in range(KW):               # pixels ow0..ow1-1 read image columns for kw
                    ow0 = max(0, pad_left - kw)
                    ow1 = min(OW, pad_left + Wd - kw)
                    if ow1 <= ow0:
                        continue
                    # tile arguments: a = x_pad from (kh, kw + ow0, c0), p = input channel
                    # (stride 1), k = pixel along the row (stride C); b = dy from (ow0, f0),
                    # k stride F; ow1 - ow0 steps per row; out = dW[kh, kw, c0:c0+4, f0:f0+FB]
                    for c0 in range(0, C, 4):
                        for f0 in range(0, F, FB):
                            a_start = (kh * padded_width + kw + ow0) * C + c0
                            out_start = ((kh * KW + kw) * C + c0) * F + f0
                            if FB == 32:
                                tile_4x32(x_pad_flat, a_start, row_offsets_x[r0:r1], 1, C,
                                          dy_flat, ow0 * F + f0, row_offsets_dy[r0:r1], F,
                                          ow1 - ow0, dW_flat, out_start, F, True)
                            else:
                                tile_4x16(x_pad_flat, a_start, row_offsets_x[r0:r1], 1, C,
                                          dy_flat, ow0 * F + f0, row_offsets_dy[r0:r1], F,
                                          ow1 - ow0, dW_flat, out_start, F, True)
    return dW
