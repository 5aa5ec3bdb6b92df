"""Direct convolution (stride 1, NHWC, float32): numba drivers and the NumPy twin.

No im2col matrix at all: each image is copied once into a zero-bordered
scratch buffer xp (Hp, Wp, C), Hp = OH + KH - 1, Wp = OW + KW - 1, small enough
to stay in the core's L2 cache, and the register-blocked tiles of
microkernel.py / tiles.py read it in place:

    y[n, oh, ow, f] = sum_{kh, kw, c} xp[oh + kh, ow + kw, c] * W[kh, kw, c, f]      (forward)
    dW[kh, kw, c, f] += sum_{oh, ow}  xp[oh + kh, ow + kw, c] * dy[n, oh, ow, f]      (weight grad)

and dx (stride 1) is the forward pass on dy with the flipped, transposed
kernel (layers/conv.py). Both drivers work on a range of images [n0, n1), so
the caller can hand whole images to each core (kernels/parallel.py).

conv_images: a tile is P = 3 output pixels of one row x FB = 32 output
channels (or 4 x 24, 4 x 16: tile_width), summed over the KH*KW taps and C input channels. The
weights are first packed as Wp[F/FB, KH*KW*C, FB] (``pack_weights``): each
tile then reads one contiguous 128-byte row per step. (Reading W[..., f0:f0+32]
in place strides 256 bytes when F = 64 and maps onto a quarter of the L1
cache sets: 62 instead of 86 GFLOP/s on 64->64 @16x16, measured.) A row whose
width is not a multiple of P ends with a tile shifted left to OW - P, which
recomputes a column or two instead of needing a second kernel. Taps that
read padding rows (the kernel rows above the first and below the last image
row) are left out of the sum; the padding columns cannot be, as they are
shared by a tile's pixels.

weight_grad_images: a tile is 4 input channels x 16 output channels of one
kernel tap, summed over the pixels of two output rows, then added to dW; rows
and pixels whose tap reads padding are left out of the sum (they add zero). Two
rows at a time keep the data of every tile pass in L1 (80 GFLOP/s per core on
32->32 @32x32, against 55 when each tile summed over a whole image).

Memory: xp per thread, (OH + KH - 1) * (OW + KW - 1) * C floats, and the
packed weights; nothing of the size of the batch.
"""
import numba
import numpy as np
from numba import njit

from .tiles import tile_3x32, tile_4x16, tile_4x24

DW_ROWS = 2              # output rows summed per dW tile call


def conv_reference(x, W, pad_top, pad_left, OH, OW):
    """y (N, OH, OW, F) as a sum over taps of shifted images times W[kh, kw] (plain NumPy)."""
    N, H, Wd, C = x.shape
    KH, KW = W.shape[:2]
    xp = np.zeros((N, OH + KH - 1, OW + KW - 1, C), dtype=x.dtype)
    xp[:, pad_top:pad_top + H, pad_left:pad_left + Wd] = x
    return sum(xp[:, kh:kh + OH, kw:kw + OW] @ W[kh, kw] for kh in range(KH) for kw in range(KW))


def weight_grad_reference(x, dy, KH, KW, pad_top, pad_left):
    """dW (KH, KW, C, F): for every tap, the shifted image contracted with dy over (n, oh, ow)."""
    N, OH, OW, F = dy.shape
    H, Wd, C = x.shape[1:]
    xp = np.zeros((N, OH + KH - 1, OW + KW - 1, C), dtype=x.dtype)
    xp[:, pad_top:pad_top + H, pad_left:pad_left + Wd] = x
    over_pixels = ([0, 1, 2], [0, 1, 2])                                      # (n, oh, ow)
    return np.stack([np.stack([np.tensordot(xp[:, kh:kh + OH, kw:kw + OW], dy, axes=over_pixels)
                               for kw in range(KW)]) for kh in range(KH)])


def slp_vectorizer_on():
    """True when numba compiles with LLVM's SLP vectorizer, which the tiles need."""
    return bool(numba.config.SLP_VECTORIZE)


def tile_width(F, OW):
    """Output channels per forward tile, FB, for F output channels on rows OW pixels wide
    (0: no tile fits). The widest that divides F (32, then 24, then 16), unless a
    narrower one's 4-pixel rows fit OW so much better that it computes >= 10% fewer
    columns: 64 channels at 16 pixels take 4 x 16 (16 columns instead of 18; 90 against
    86 GFLOP/s per core, measured), at 32 or 31 pixels 3 x 32 (33 columns)."""
    fits = [FB for FB in (32, 24, 16) if F % FB == 0]
    if not fits:
        return 0
    columns = lambda FB: -(-OW // tile_pixels(FB)) * tile_pixels(FB)
    best = min(fits, key=columns)
    return best if columns(best) * 1.1 <= columns(fits[0]) else fits[0]


@njit(cache=True)
def tile_pixels(FB):
    """Output pixels per forward tile: 3 x 32, 4 x 24 or 4 x 16 (microkernel.SHAPES)."""
    return 3 if FB == 32 else 4


def pack_weights(W, FB):
    """W (KH, KW, C, F) -> (F/FB, KH*KW*C, FB), C-contiguous: one block per FB channels."""
    KH, KW, C, F = W.shape
    return np.ascontiguousarray(W.reshape(KH * KW * C, F // FB, FB).transpose(1, 0, 2))


@njit(nogil=True, cache=True, boundscheck=False)
def conv_images(x, n0, n1, pad_top, pad_left, wpack, KH, KW, b, relu, y, xp):
    """y[n0:n1] = conv(x[n0:n1], W) + b, then max(y, 0) if relu. x (N, H, W, C); wpack
    from pack_weights; b (F,) or an empty array for no bias; y (N, OH, OW, F); xp scratch
    (OH+KH-1, OW+KW-1, C), zero outside the image area (its interior is overwritten here).
    Bias and ReLU are applied to each image right after its tiles, while it is in cache."""
    N, H, Wd, C = x.shape
    OH, OW, F = y.shape[1], y.shape[2], y.shape[3]
    nfb, K, FB = wpack.shape
    P = tile_pixels(FB)
    Wp = xp.shape[1]
    aoffs = np.empty(KH * KW, np.int64)
    boffs = np.empty(KH * KW, np.int64)
    for kh in range(KH):
        for kw in range(KW):
            aoffs[kh * KW + kw] = (kh * Wp + kw) * C
            boffs[kh * KW + kw] = (kh * KW + kw) * C * FB
    xpf, wf, yf = xp.reshape(xp.size), wpack.reshape(wpack.size), y.reshape(y.size)
    for n in range(n0, n1):
        xp[pad_top:pad_top + H, pad_left:pad_left + Wd, :] = x[n]
        for fb in range(nfb):
            for oh in range(OH):
                kh0 = max(0, pad_top - oh)                 # taps kh < kh0 or >= kh1 would
                kh1 = max(kh0, min(KH, pad_top + H - oh))  # read padding rows: skipped
                ta, tb = aoffs[kh0 * KW:kh1 * KW], boffs[kh0 * KW:kh1 * KW]
                for ow in range(0, OW, P):
                    ow0 = min(ow, OW - P)            # last tile shifted left (needs OW >= P)
                    abase = (oh * Wp + ow0) * C
                    obase = ((n * OH + oh) * OW + ow0) * F + fb * FB
                    if FB == 32:
                        tile_3x32(xpf, abase, ta, C, 1, wf, fb * K * FB, tb, FB, C,
                                  yf, obase, F, False)
                    elif FB == 24:
                        tile_4x24(xpf, abase, ta, C, 1, wf, fb * K * FB, tb, FB, C,
                                  yf, obase, F, False)
                    else:
                        tile_4x16(xpf, abase, ta, C, 1, wf, fb * K * FB, tb, FB, C,
                                  yf, obase, F, False)
        if b.size or relu:
            yn = y[n].reshape(OH * OW, F)
            for i in range(OH * OW):
                for f in range(F):
                    v = yn[i, f] + b[f] if b.size else yn[i, f]
                    yn[i, f] = max(v, 0.0) if relu else v
    return y


@njit(nogil=True, cache=True, boundscheck=False)
def weight_grad_images(x, dy, n0, n1, pad_top, pad_left, KH, KW, dW, xp):
    """dW (KH, KW, C, F) += sum over images n0..n1-1 of x_pad (*) dy. Needs C % 4 == 0
    and F % 16 == 0; xp scratch as in conv_images."""
    N, H, Wd, C = x.shape
    OH, OW, F = dy.shape[1], dy.shape[2], dy.shape[3]
    Wp = xp.shape[1]
    aoffs = np.empty(DW_ROWS, np.int64)
    boffs = np.empty(DW_ROWS, np.int64)
    xpf, dyf, dWf = xp.reshape(xp.size), dy.reshape(dy.size), dW.reshape(dW.size)
    for n in range(n0, n1):
        xp[pad_top:pad_top + H, pad_left:pad_left + Wd, :] = x[n]
        for oh0 in range(0, OH, DW_ROWS):
            rows = min(DW_ROWS, OH - oh0)
            for r in range(rows):
                aoffs[r] = (oh0 + r) * Wp * C
                boffs[r] = ((n * OH + oh0 + r) * OW) * F
            for kh in range(KH):                   # rows r0..r1-1 read image rows for tap kh
                r0 = max(0, pad_top - kh - oh0)
                r1 = min(rows, pad_top + H - kh - oh0)
                if r1 <= r0:
                    continue
                for kw in range(KW):               # pixels s..e-1 read image columns for kw
                    s = max(0, pad_left - kw)
                    e = min(OW, pad_left + Wd - kw)
                    if e <= s:
                        continue
                    for c0 in range(0, C, 4):
                        for f0 in range(0, F, 16):
                            tile_4x16(xpf, (kh * Wp + kw + s) * C + c0, aoffs[r0:r1], 1, C,
                                      dyf, s * F + f0, boffs[r0:r1], F, e - s,
                                      dWf, ((kh * KW + kw) * C + c0) * F + f0, F, True)
    return dW
