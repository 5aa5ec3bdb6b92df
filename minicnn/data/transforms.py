"""Preprocessing (channel statistics, standardisation, a stratified split) and augmentation.

Augmentation works on float32 NHWC batches x (N, H, W, C) and takes its randomness from a
np.random.Generator passed in, so a seed fixes every crop and flip. All of it runs through one
numba kernel, `crop_flip` (one pass, parallel over images); `crop_flip_reference` is its
plain-NumPy twin (np.pad + slicing, one image at a time) that the tests compare it with.

Crop = random translation: pad each image by `pad` pixels on every side, then cut an HxW
window at a random offset (0..2*pad in each direction). mode="reflect" (the default, as in
airbench) mirrors the image without repeating the edge pixel, like np.pad(mode="reflect");
mode="zero" pads with 0, which after standardisation is the mean colour.
"""
import numpy as np
from numba import njit, prange

MODES = ("reflect", "zero")


def _check_images(x, who, dtype=None):
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        got = x.shape if isinstance(x, np.ndarray) else type(x).__name__
        raise ValueError(f"{who}: expected images (N, H, W, C), got {got}")
    if dtype is not None and x.dtype != dtype:
        raise ValueError(f"{who}: expected dtype {np.dtype(dtype)}, got {x.dtype}")


# ---------------------------------------------------------------- preprocessing
def channel_stats(x, chunk=2048):
    """Per-channel mean and std of pixel/255 over a uint8 image set (use the training split only).

    x: (N, H, W, C) uint8. Returns mean (C,), std (C,) float32 (population std, ddof=0).
    Exact: it counts how often each of the 256 values occurs per channel (a (C, 256) histogram,
    built chunk images at a time), then mean = sum(h * v) / n, var = sum(h * v^2) / n - mean^2.
    """
    _check_images(x, "channel_stats", np.uint8)
    C = x.shape[-1]
    offset = 256 * np.arange(C)                                  # channel c -> bins 256c..
    counts = np.zeros(256 * C, np.int64)
    for i in range(0, len(x), chunk):
        v = x[i:i + chunk].reshape(-1, C).astype(np.intp) + offset  # (chunk*H*W, C)
        counts += np.bincount(v.ravel(), minlength=256 * C)
    h = counts.reshape(C, 256)
    v = np.arange(256) / 255.0
    n = max(h.sum(axis=1)[0], 1)
    mean = h @ v / n
    std = np.sqrt(np.maximum(h @ v**2 / n - mean**2, 0.0))
    return mean.astype(np.float32), std.astype(np.float32)


def standardize(x, mean, std):
    """(x / 255 - mean) / std per channel. x: (N, H, W, C) uint8 -> (N, H, W, C) float32."""
    _check_images(x, "standardize", np.uint8)
    mean = np.asarray(mean, np.float32)
    std = np.asarray(std, np.float32)
    if mean.shape != (x.shape[-1],) or std.shape != (x.shape[-1],):
        raise ValueError(f"standardize: expected mean and std of shape ({x.shape[-1]},), "
                         f"got {mean.shape} and {std.shape}")
    if np.any(std <= 0):
        raise ValueError(f"standardize: std must be > 0, got {std}")
    out = x.astype(np.float32)
    out *= 1.0 / (255.0 * std)       # x / 255 / std
    out -= mean / std
    return out


def train_val_split(x, y, val_size=5000, seed=0):
    """Seeded split stratified by class: each class keeps its share in both parts.

    x: (N, ...), y: (N,). Returns x_train, y_train, x_val, y_val (each part in original order).
    val_size=0 returns an empty validation part.
    """
    from sklearn.model_selection import train_test_split
    if len(x) != len(y):
        raise ValueError(f"train_val_split: x has {len(x)} examples but y has {len(y)}")
    if not 0 <= val_size < len(y):
        raise ValueError(f"train_val_split: val_size must be in 0..{len(y) - 1}, got {val_size}")
    if val_size == 0:
        return x, y, x[:0], y[:0]
    tr, va = train_test_split(np.arange(len(y)), test_size=val_size, random_state=seed,
                              stratify=y)
    tr, va = np.sort(tr), np.sort(va)
    return x[tr], y[tr], x[va], y[va]


# ---------------------------------------------------------------- augmentation
@njit(parallel=True, cache=True)
def _crop_flip_kernel(x, dy, dx, flip, pad, reflect):
    """out[n, i, j] = padded(x[n])[dy[n] + i, dx[n] + j'], j' = W-1-j if flip[n] else j.

    x: (N, H, W, C); dy, dx: (N,) int64; flip: (N,) bool. A source index of -1 means padding
    (zero mode); in reflect mode every index is mirrored back inside the image.
    """
    N, H, W, C = x.shape
    out = np.empty_like(x)
    for n in prange(N):
        cols = np.empty(W, np.int64)            # source column of each output column
        for j in range(W):
            sj = (W - 1 - j if flip[n] else j) + dx[n] - pad
            if reflect:
                sj = -sj if sj < 0 else (2 * (W - 1) - sj if sj >= W else sj)
            cols[j] = sj if 0 <= sj < W else -1
        for i in range(H):
            si = i + dy[n] - pad
            if reflect:
                si = -si if si < 0 else (2 * (H - 1) - si if si >= H else si)
            for j in range(W):
                sj = cols[j]
                if 0 <= si < H and sj >= 0:
                    for c in range(C):
                        out[n, i, j, c] = x[n, si, sj, c]
                else:
                    for c in range(C):
                        out[n, i, j, c] = 0
    return out


def _check_crop_args(x, dy, dx, flip, pad, mode, who):
    _check_images(x, who)
    N, H, W, _ = x.shape
    if mode not in MODES:
        raise ValueError(f"{who}: mode must be one of {MODES}, got {mode!r}")
    if pad < 0 or (mode == "reflect" and pad >= min(H, W)):
        raise ValueError(f"{who}: pad must be >= 0 (and < {min(H, W)} for reflect), got {pad}")
    dy, dx = np.asarray(dy, np.int64), np.asarray(dx, np.int64)
    flip = np.asarray(flip, np.bool_)
    for name, a in (("dy", dy), ("dx", dx), ("flip", flip)):
        if a.shape != (N,):
            raise ValueError(f"{who}: expected {name} of shape ({N},), got {a.shape}")
    if dy.size and (min(dy.min(), dx.min()) < 0 or max(dy.max(), dx.max()) > 2 * pad):
        raise ValueError(f"{who}: offsets must be in 0..{2 * pad}")
    return dy, dx, flip


def crop_flip(x, dy, dx, flip, pad=4, mode="reflect"):
    """Translate then horizontally flip each image, in one numba pass (the fast kernel).

    x: (N, H, W, C); dy, dx: (N,) ints in 0..2*pad, the window's top-left in the padded image;
    flip: (N,) bool. Returns a new array like x.
    """
    dy, dx, flip = _check_crop_args(x, dy, dx, flip, pad, mode, "crop_flip")
    return _crop_flip_kernel(x, dy, dx, flip, pad, mode == "reflect")


def crop_flip_reference(x, dy, dx, flip, pad=4, mode="reflect"):
    """Plain-NumPy twin of crop_flip (np.pad and slicing, one image at a time): for tests."""
    dy, dx, flip = _check_crop_args(x, dy, dx, flip, pad, mode, "crop_flip_reference")
    N, H, W, _ = x.shape
    out = np.empty_like(x)
    np_mode = "reflect" if mode == "reflect" else "constant"
    for n in range(N):
        p = np.pad(x[n], ((pad, pad), (pad, pad), (0, 0)), mode=np_mode)  # (H+2p, W+2p, C)
        win = p[dy[n]:dy[n] + H, dx[n]:dx[n] + W]
        out[n] = win[:, ::-1] if flip[n] else win
    return out


def draw_flip_mask(n, rng):
    """n random flip bits (bool (n,)), each True with probability 1/2."""
    return rng.random(n) < 0.5


def random_crop(x, rng, pad=4, mode="reflect"):
    """Random translation by up to pad pixels each way. x: (N, H, W, C) -> same shape."""
    dy, dx = rng.integers(0, 2 * pad + 1, size=(2, len(x)))
    return crop_flip(x, dy, dx, np.zeros(len(x), bool), pad, mode)


def random_flip(x, rng):
    """Flip each image horizontally with probability 1/2. x: (N, H, W, C) -> same shape."""
    zero = np.zeros(len(x), np.int64)
    return crop_flip(x, zero, zero, draw_flip_mask(len(x), rng), 0, "zero")


def alternating_flip(x, epoch, flip_mask):
    """airbench's alternating flip: flip image n iff flip_mask[n] XOR (epoch is odd).

    flip_mask: (N,) bool drawn once for the whole training set (draw_flip_mask); index it with
    the batch's example indices when x is a batch. Each image is thus seen unflipped and flipped
    in consecutive epochs.
    """
    zero = np.zeros(len(x), np.int64)
    return crop_flip(x, zero, zero, np.asarray(flip_mask, bool) ^ bool(epoch % 2), 0, "zero")


def random_crop_flip(x, rng, pad=4, mode="reflect", flip=None):
    """random_crop and a flip in one pass; flip: (N,) bool, or None to draw random bits."""
    dy, dx = rng.integers(0, 2 * pad + 1, size=(2, len(x)))
    flip = draw_flip_mask(len(x), rng) if flip is None else flip
    return crop_flip(x, dy, dx, flip, pad, mode)


class CropFlip:
    """Augmentation for BatchLoader: random crop plus a random or alternating flip.

    n: training-set size (for the alternating flip mask, drawn once from seed).
    flip: "alternating", "random" or "none". Called as aug(xb, rng, idx, epoch).
    """

    def __init__(self, n, pad=4, mode="reflect", flip="alternating", seed=0):
        if flip not in ("alternating", "random", "none"):
            raise ValueError(f"CropFlip: flip must be 'alternating', 'random' or 'none', "
                             f"got {flip!r}")
        self.pad, self.mode, self.flip = pad, mode, flip
        self.flip_mask = draw_flip_mask(n, np.random.default_rng(seed))   # (n,) bool

    def __call__(self, xb, rng, idx, epoch):
        if self.flip == "alternating":
            flip = self.flip_mask[idx] ^ bool(epoch % 2)
        elif self.flip == "random":
            flip = None
        else:
            flip = np.zeros(len(xb), bool)
        return random_crop_flip(xb, rng, self.pad, self.mode, flip)
