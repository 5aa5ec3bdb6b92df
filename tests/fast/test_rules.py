"""The dispatch rule (fast/rules.py): which algorithm runs each pass of a Conv2D.

Each test function of the rule's table is checked on the shapes that decided its
thresholds; ``shape(layer, size)`` is the layer applied to a batch of size x size maps,
so the map a test reads (the output for forward and dW, the input for dx) is size wide
with "same" padding."""
import numpy as np
import pytest

import minicnn.fast.rules as rules
from minicnn.fast.rules import (CONV2D_RULE, conv_path, conv_paths, conv_shape,
                                direct_dW_fits, direct_dx_fits, direct_forward_fits,
                                taps_forward_fits, winograd_dW_fits, winograd_dx_fits,
                                winograd_forward_fits)
from minicnn.nn import Conv2D


def shape(layer, H, W=None, dtype=np.float32, need_dW=True):
    """The ConvShape of ``layer`` on a batch of 2 inputs H x W (W = H by default)."""
    return conv_shape(layer, (2, H, H if W is None else W, layer.C), dtype, need_dW)


def test_direct_rule():
    layer = Conv2D(32, 32, 3, rng=0)
    assert direct_forward_fits(layer, shape(layer, 32))
    assert direct_dW_fits(layer, shape(layer, 32))
    assert not direct_forward_fits(layer, shape(layer, 32, dtype=np.float64))  # gradient checks: im2col
    assert not direct_forward_fits(layer, shape(layer, 7))                     # small map: tap classes
    wide, wide_dx = Conv2D(32, 256, 3, rng=0), Conv2D(256, 32, 3, rng=0)
    assert not direct_forward_fits(wide, shape(wide, 32))                      # wide: OpenBLAS
    assert not direct_dx_fits(wide_dx, shape(wide_dx, 32))                     # (dx: C outputs)
    forty = Conv2D(32, 40, 3, rng=0)
    assert not direct_forward_fits(forty, shape(forty, 32))                    # no tile fits 40 channels
    sixteen, sixteen_dx = Conv2D(32, 16, 3, rng=0), Conv2D(16, 32, 3, rng=0)
    assert direct_forward_fits(sixteen, shape(sixteen, 16))                    # 16 wide, 16 channels
    assert direct_dx_fits(sixteen_dx, shape(sixteen_dx, 16))
    strided = Conv2D(32, 32, 3, stride=2, rng=0)
    assert not direct_forward_fits(strided, shape(strided, 64))                # output 32 wide, stride 2
    rgb = Conv2D(3, 32, 3, rng=0)
    assert direct_dW_fits(rgb, shape(rgb, 32))                  # C = 3 runs padded to 4
    layer.allow_direct = False
    assert not direct_forward_fits(layer, shape(layer, 32))


def test_direct_path_off_without_slp_vectorizer(monkeypatch):
    monkeypatch.setattr(rules, "slp_vectorizer_on", lambda: False)
    layer = Conv2D(32, 32, 3, rng=0)
    assert not direct_forward_fits(layer, shape(layer, 32))


def test_winograd_rule(monkeypatch):
    simple = Conv2D(32, 64, 3, rng=0)
    assert winograd_forward_fits(simple, shape(simple, 16)) and winograd_dx_fits(simple, shape(simple, 16))
    assert winograd_forward_fits(simple, shape(simple, 7)) and not winograd_forward_fits(simple, shape(simple, 6))
    narrow = Conv2D(32, 8, 3, rng=0)
    assert not winograd_dx_fits(narrow, shape(narrow, 16))                     # dx: 8 inputs
    assert not winograd_forward_fits(simple, shape(simple, 16, dtype=np.float64))  # gradient checks
    rgb = Conv2D(3, 32, 3, rng=0)
    assert not winograd_forward_fits(rgb, shape(rgb, 32))                      # 3 input channels
    first = Conv2D(24, 64, 3, rng=0)
    assert winograd_forward_fits(first, shape(first, 31)) and winograd_dx_fits(first, shape(first, 31))
    sixteen = Conv2D(16, 64, 3, rng=0)                                        # dx: 16 of 32 used
    assert winograd_forward_fits(sixteen, shape(sixteen, 31)) and not winograd_dx_fits(sixteen, shape(sixteen, 31))
    f48 = Conv2D(32, 48, 3, rng=0)
    assert winograd_forward_fits(f48, shape(f48, 16))                          # 48 of 64 used
    f40 = Conv2D(32, 40, 3, rng=0)
    assert not winograd_forward_fits(f40, shape(f40, 16))                      # 40 of 64
    five = Conv2D(64, 256, 5, rng=0)
    assert not winograd_forward_fits(five, shape(five, 15))
    strided = Conv2D(64, 256, 3, stride=2, rng=0)
    assert not winograd_forward_fits(strided, shape(strided, 30))              # output 15 x 15
    wide = Conv2D(256, 256, 3, rng=0)
    assert not winograd_forward_fits(wide, shape(wide, 3))                     # 3x3 maps
    monkeypatch.setattr(rules, "slp_vectorizer_on", lambda: False)
    assert not winograd_forward_fits(simple, shape(simple, 16))


def test_winograd_weight_grad_rule():
    def dW(C, F, size, dtype=np.float32):
        layer = Conv2D(C, F, 3, rng=0)
        return winograd_dW_fits(layer, shape(layer, size, dtype=dtype))
    assert dW(32, 32, 16)
    assert dW(24, 64, 31)
    assert not dW(3, 32, 32)                                              # C % 4
    assert not dW(32, 24, 16)                                             # F % 16
    assert not dW(32, 32, 6)
    assert not dW(32, 32, 16, np.float64)
    assert dW(64, 256, 15)
    assert not dW(256, 256, 7)                                            # 2 images: 8 tiles
    big = Conv2D(256, 256, 3, padding="same", rng=0)                      # a wide dW:
    for N, fits in ((8, False), (15, False), (16, True), (128, True), (2000, True)):  # >= 64 tiles
        assert winograd_dW_fits(big, conv_shape(big, (N, 7, 7, 256), np.float32, True)) == fits
    frozen = Conv2D(32, 32, 3, rng=0)                                     # W frozen: db alone
    assert not winograd_dW_fits(frozen, shape(frozen, 16, need_dW=False))


def test_conv_takes_the_tap_path_on_small_maps_only():
    conv = Conv2D(4, 4, 3)
    assert taps_forward_fits(conv, shape(conv, 7)) and taps_forward_fits(conv, shape(conv, 3))
    assert not taps_forward_fits(conv, shape(conv, 31)) and not taps_forward_fits(conv, shape(conv, 32))


def test_table_order_and_forced_paths():
    """The table tries the algorithms in the documented order; the first that holds runs;
    ``forced_paths`` overrides it for one pass."""
    assert {p: [name for name, _ in rows] for p, rows in CONV2D_RULE.items()} == {
        "forward": ["winograd", "direct", "shifts", "taps", "im2col"],
        "dx": ["winograd", "direct", "shifts", "taps", "im2col", "col2im"],
        "dW": ["winograd", "direct", "shifts", "taps", "im2col"]}
    layer = Conv2D(32, 64, 3, rng=0)
    assert conv_paths(layer, (2, 16, 16, 32)) == {"forward": "winograd", "dx": "winograd",
                                                  "dW": "winograd"}
    assert conv_paths(layer, (2, 16, 16, 32), np.float64) == {"forward": "taps", "dx": "col2im",
                                                              "dW": "taps"}      # 12% padding
    assert conv_paths(layer, (2, 32, 32, 32), np.float64) == {"forward": "im2col", "dx": "col2im",
                                                              "dW": "im2col"}    # 6% padding
    layer.forced_paths = {"forward": "taps"}
    assert conv_path(layer, "forward", shape(layer, 16)) == "taps"
    assert conv_path(layer, "dx", shape(layer, 16)) == "winograd"


@pytest.mark.parametrize("k,padding", [(1, 1), (3, 3)])
def test_padding_wider_than_the_kernel_keeps_dx_off_the_tiles(k, padding):
    """dx of a stride-1 conv is the flipped kernel over dy padded by k-1-p: negative when
    p > k-1, which the direct and Winograd kernels cannot do."""
    layer = Conv2D(32, 32, k, padding=padding, rng=1)
    assert conv_paths(layer, (2, 12, 12, 32))["dx"] not in ("winograd", "direct")


def test_flipped_kernel_dx_rows_hold_only_at_stride_1_and_narrowing_layers():
    """The taps and im2col rows of dx compute the flipped-kernel convolution: they must not
    hold where it does not exist (stride 2) or costs more than col2im (F > C)."""
    strided, widening = Conv2D(8, 4, 3, stride=2, rng=0), Conv2D(4, 8, 3, rng=0)
    for layer in (strided, widening):
        s = shape(layer, 9, dtype=np.float64)
        assert not rules.flipped_dx_fits(layer, s) and not rules.taps_dx_fits(layer, s)
        assert conv_path(layer, "dx", s) == "col2im"
    narrowing = Conv2D(8, 4, 3, rng=0)
    assert conv_path(narrowing, "dx", shape(narrowing, 9, dtype=np.float64)) in ("taps", "im2col")
