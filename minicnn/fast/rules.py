"""The dispatch rule: which algorithm computes each pass of a Conv2D on the fast backend.

This file is the only place the rule is written. For each pass the table lists the
algorithms in the order they are tried; the first whose test holds runs:

    pass      tried in order
    forward   winograd -> direct -> shifts -> taps -> im2col
    dx        winograd -> direct -> shifts -> taps -> im2col -> col2im   (all but col2im:
                                                                 the flipped kernel, stride 1)
    dW        winograd -> direct -> shifts -> taps -> im2col   (db: the column sums of dy,
                                                                 whatever the dW path)

The algorithms (minicnn/fast/conv.py drives them):

* winograd — F(4x4, 3x3) for forward and dx, F(3x3, 4x4) for dW: 36 instead of 144
  multiplies per 4x4 block of outputs (fast/conv_winograd.py);
* direct   — register-blocked tiles that read the zero-bordered image in place, no
  im2col matrix (fast/conv_direct.py);
* shifts   — stride 1: one matrix product per kernel tap, over the outputs whose
  shifted input pixel lies in the image; on the smallest maps, where most windows
  reach into the padding (fast/conv_shifts.py);
* taps     — im2col products that leave out the taps reading padding, worth it on
  small maps where padding is a large share of the entries (fast/conv_taps.py);
* im2col   — a cache-sized block of im2col rows times the weight matrix, any shape
  and dtype (fast/conv.py); col2im for dx when the stride is not 1 or the layer
  widens (F > C), where the flipped-kernel product would be the larger one.

Each test is a short function below with the reason in one line. The thresholds
are the measured crossover points: docs/performance.md has the measurements and
the commands that produce them (benchmarks/bench_winograd.py, bench_direct.py,
bench_layers.py). ``Sequential.summary(paths=True)`` prints the chosen path of
every layer for a given input shape; ``conv_paths`` gives it for one layer.
"""
from collections import namedtuple

import numpy as np

from ..backend import fast_implementation
from ..nn.conv import Conv2D
from .conv_winograd import WIDE_DW_ABOVE, padded_width
from .kernels.direct import slp_vectorizer_on, tile_width
from .kernels.taps import padding_share

# -- thresholds ------------------------------------------------------------------------
MIN_WINOGRAD_SIDE = 7        # winograd: output map (forward, dW) or input map (dx) sides
MIN_WINOGRAD_CHANNELS = 16   # winograd: input channels of the product (C forward, F for dx)
MIN_WINOGRAD_CHANNEL_USE = 0.75  # winograd: of the product's output channels padded to a
                                 # multiple of 32 (padded_width), at least this share real
MIN_WIDE_WINOGRAD_DW_TILES = 64      # winograd dW with C * F above WIDE_DW_ABOVE: at
                                     # least this many 4x4 tiles in the batch
MIN_DIRECT_WIDTH = 12        # direct: maps at least this wide
MAX_DIRECT_CHANNELS = 64     # direct: the product's output channels at most this many
SHIFTS_DW_MIN_PADDING = 0.3  # shifts, dW: from this share of padding entries in im2col on
SHIFTS_MIN_PADDING = 0.35    # shifts, forward and dx: from this share of padding on ...
SHIFTS_MIN_PRODUCT = 256 * 256   # ... with C * F at least this (each tap's product large
                                 # enough to pay for its own call and copies)
TAPS_MIN_PADDING = 0.08      # taps: from this share of padding entries in im2col on

ConvShape = namedtuple("ConvShape", "N H W OH OW pad_top pad_left dtype need_dW")
ConvShape.__doc__ = """One Conv2D call: input N x H x W, output OH x OW, the top and left
zero borders, the dtype, and whether dW is wanted (False: W is frozen, db alone)."""


def conv_shape(layer, x_shape, dtype, need_dW=True):
    """The ConvShape of ``layer`` applied to an input of shape (N, H, W, C)."""
    N, H, W = x_shape[:3]
    OH, OW, pad_top, pad_left = layer.geometry(H, W)
    return ConvShape(N, H, W, OH, OW, pad_top, pad_left, np.dtype(dtype), need_dW)


# -- the tests ---------------------------------------------------------------------------
def tiles_can_run(layer, shape):
    """Winograd and direct run on the register tiles: float32, stride 1, and numba's
    SLP vectorizer on (without it the tiles run many times slower: fast/__init__.py,
    docs/performance.md)."""
    return shape.dtype == np.float32 and layer.stride == 1 and slp_vectorizer_on()


def winograd_common(layer, side):
    return (layer.allow_winograd and (layer.KH, layer.KW) == (3, 3)
            and side >= MIN_WINOGRAD_SIDE)


def winograd_width_fits(channels):
    """The product's output channels fill enough of the 32-wide tiles: 24 (of 32) do,
    16 do not (half the products would multiply zero filters)."""
    return channels >= MIN_WINOGRAD_CHANNEL_USE * padded_width(channels)


def winograd_forward_fits(layer, shape):
    """3x3, a product at least MIN_WINOGRAD_CHANNELS deep whose F fills the tiles."""
    return (tiles_can_run(layer, shape) and winograd_common(layer, min(shape.OH, shape.OW))
            and layer.C >= MIN_WINOGRAD_CHANNELS and winograd_width_fits(layer.F))


def flipped_padding(layer, shape):
    """(top, left): dy's zero borders when dx is the stride-1 convolution of dy with the
    flipped kernel, KH - 1 - pad_top and KW - 1 - pad_left."""
    return layer.KH - 1 - shape.pad_top, layer.KW - 1 - shape.pad_left


def flipped_kernel_fits(layer, shape):
    """dx as a convolution of dy needs dy's padding (flipped_padding) >= 0."""
    return layer.stride == 1 and min(flipped_padding(layer, shape)) >= 0


def winograd_dx_fits(layer, shape):
    """As winograd_forward_fits for the flipped kernel: F and C swap roles."""
    return (flipped_kernel_fits(layer, shape) and tiles_can_run(layer, shape)
            and winograd_common(layer, min(shape.H, shape.W))
            and layer.F >= MIN_WINOGRAD_CHANNELS and winograd_width_fits(layer.C))


def winograd_dW_fits(layer, shape):
    """4 x 16 tiles (C % 4, F % 16); at C * F above WIDE_DW_ABOVE (blocks of 128 tiles, one
    (36, C, F) accumulator of 9 MB at 256 x 256) only on enough tiles to pay for it:
    16 images of 7 x 7 maps on the Xeon, once its tail ran on every core."""
    tiles = shape.N * (-(-shape.OH // 4)) * (-(-shape.OW // 4))
    return (shape.need_dW and tiles_can_run(layer, shape)
            and winograd_common(layer, min(shape.OH, shape.OW))
            and layer.C % 4 == 0 and layer.F % 16 == 0
            and (layer.C * layer.F <= WIDE_DW_ABOVE or tiles >= MIN_WIDE_WINOGRAD_DW_TILES))


def direct_common(layer, shape, width):
    return layer.allow_direct and tiles_can_run(layer, shape) and width >= MIN_DIRECT_WIDTH


def direct_forward_fits(layer, shape):
    """Thin products: at most MAX_DIRECT_CHANNELS outputs, a tile width dividing F."""
    return (direct_common(layer, shape, shape.OW) and layer.F <= MAX_DIRECT_CHANNELS
            and tile_width(layer.F, shape.OW) > 0)


def direct_dx_fits(layer, shape):
    """As direct_forward_fits for the flipped kernel (C outputs, on the input's width)."""
    return (flipped_kernel_fits(layer, shape) and direct_common(layer, shape, shape.W)
            and layer.C <= MAX_DIRECT_CHANNELS and tile_width(layer.C, shape.W) > 0)


def direct_dW_fits(layer, shape):
    """4 x 16 tiles (F % 16; C runs padded with zero channels to a multiple of 4: the
    RGB input's 3 as 4), both at most MAX_DIRECT_CHANNELS."""
    return (shape.need_dW and direct_common(layer, shape, shape.OW)
            and layer.F % 16 == 0 and max(layer.C, layer.F) <= MAX_DIRECT_CHANNELS)


def shifts_padding(layer, shape, flipped=False):
    """The share of padding entries in im2col, for shifts: of the convolution itself, or
    (flipped) of the flipped-kernel convolution of dy that gives dx (OH x OW in, H x W
    out); -1 (never enough) where the path cannot run: stride > 1, or a padding not
    smaller than the kernel."""
    pad_top, pad_left = flipped_padding(layer, shape) if flipped else (shape.pad_top,
                                                                         shape.pad_left)
    if layer.stride != 1 or not (0 <= pad_top < layer.KH and 0 <= pad_left < layer.KW):
        return -1.0
    H, W, OH, OW = shape.H, shape.W, shape.OH, shape.OW
    if flipped:                          # dy (OH x OW) in, dx (H x W) out
        H, W, OH, OW = OH, OW, H, W
    return padding_share(H, W, layer.KH, layer.KW, 1, pad_top, pad_left, OH, OW)


def shifts_dW_fits(layer, shape):
    """At least SHIFTS_DW_MIN_PADDING of im2col would be padding (3x3 and 4x4 maps of a
    3x3 "same" convolution: 40% and 31%)."""
    return shifts_padding(layer, shape) >= SHIFTS_DW_MIN_PADDING


def shifts_forward_fits(layer, shape):
    """A layer of C * F >= SHIFTS_MIN_PRODUCT on maps where at least SHIFTS_MIN_PADDING of
    im2col would be padding (3x3 maps of a 3x3 "same" convolution)."""
    return (layer.C * layer.F >= SHIFTS_MIN_PRODUCT
            and shifts_padding(layer, shape) >= SHIFTS_MIN_PADDING)


def shifts_dx_fits(layer, shape):
    """shifts_forward_fits for the flipped-kernel convolution of dy."""
    return (layer.C * layer.F >= SHIFTS_MIN_PRODUCT
            and shifts_padding(layer, shape, flipped=True) >= SHIFTS_MIN_PADDING)


def taps_threshold(layer):
    return TAPS_MIN_PADDING if layer.taps_min_padding is None else layer.taps_min_padding


def taps_forward_fits(layer, shape):
    """At least TAPS_MIN_PADDING of the im2col entries would be padding zeros."""
    share = padding_share(shape.H, shape.W, layer.KH, layer.KW, layer.stride, shape.pad_top,
                          shape.pad_left, shape.OH, shape.OW)
    return share >= taps_threshold(layer)


def taps_dx_fits(layer, shape):
    """flipped_dx_fits, and taps_forward_fits for the flipped-kernel convolution of dy
    (OH x OW in, H x W out)."""
    if not flipped_dx_fits(layer, shape):
        return False
    share = padding_share(shape.OH, shape.OW, layer.KH, layer.KW, 1,
                          *flipped_padding(layer, shape), shape.H, shape.W)
    return share >= taps_threshold(layer)


def flipped_dx_fits(layer, shape):
    """dx as im2col(dy) @ Wflip: stride 1 (the flipped-kernel form exists) and F <= C (at
    F > C the product dy @ W.T of col2im is the smaller)."""
    return layer.stride == 1 and layer.F <= layer.C


def always(layer, shape):
    """Any shape, any dtype."""
    return True


# -- the table -----------------------------------------------------------------------------
CONV2D_RULE = {
    "forward": (("winograd", winograd_forward_fits), ("direct", direct_forward_fits),
                ("shifts", shifts_forward_fits), ("taps", taps_forward_fits), ("im2col", always)),
    "dx": (("winograd", winograd_dx_fits), ("direct", direct_dx_fits), ("shifts", shifts_dx_fits),
           ("taps", taps_dx_fits), ("im2col", flipped_dx_fits), ("col2im", always)),
    "dW": (("winograd", winograd_dW_fits), ("direct", direct_dW_fits),
           ("shifts", shifts_dW_fits), ("taps", taps_forward_fits), ("im2col", always)),
}


def conv_path(layer, pass_name, shape):
    """The algorithm that runs ``pass_name`` ("forward", "dx" or "dW") for ``shape``:
    the layer's ``forced_paths[pass_name]`` if set (benchmarks and tests force a path,
    which must then be able to run), else the first row of the table whose test holds."""
    if pass_name in layer.forced_paths:
        return layer.forced_paths[pass_name]
    for name, test in CONV2D_RULE[pass_name]:
        if test(layer, shape):
            return name
    raise AssertionError("the last row of every pass always holds")


def conv_paths(layer, x_shape, dtype=None):
    """{"forward": ..., "dx": ..., "dW": ...} for ``layer`` on an input (N, H, W, C)."""
    shape = conv_shape(layer, x_shape, dtype or layer.params["W"].dtype)
    return {p: conv_path(layer, p, shape) for p in CONV2D_RULE}


def layer_paths(layer, x_shape):
    """{"forward", "dx", "dW"} -> the code that runs each pass of any layer on the fast
    backend: the rule's choice for a Conv2D; for other layers "numba" or "blas" (their
    registered fast passes, fast/layers.py), or "numpy" (the same code on both backends)."""
    if isinstance(layer, Conv2D) and fast_implementation(type(layer), "forward") is not None:
        return conv_paths(layer, x_shape)
    impl = fast_implementation(type(layer), "forward")
    where = getattr(impl, "path_name", "numpy")
    return {"forward": where, "dx": where, "dW": where}
