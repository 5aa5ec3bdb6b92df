"""The direct convolution (fast/kernels/direct.py, fast/conv_direct.py): against its NumPy
twins and against Conv2D's im2col path, and where Conv2D's fast backend calls it."""
import numpy as np
import pytest

import minicnn.fast.conv as fast_conv
from minicnn.fast import vectors
from minicnn.fast.conv_direct import direct_forward, direct_weight_grad
from minicnn.fast.kernels.direct import (direct_conv_reference, direct_weight_grad_reference,
                                         pack_weights, tile_width)
from minicnn.fast.kernels.im2col import im2col_reference
from minicnn.nn import Conv2D

from helpers import forward_backward, rel_err, spy


def test_direct_conv_reference_matches_im2col_reference():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 7, 3))
    W = rng.standard_normal((3, 2, 3, 5))
    OH, OW = 6 + 2 - 3 + 1, 7 + 1 - 2 + 1           # pad (1, 1) top/bottom, (1, 0) left/right
    y = direct_conv_reference(x, W, 1, 1, OH, OW)
    cols = im2col_reference(x, 3, 2, 1, 1, 1, OH, OW)
    np.testing.assert_allclose(y, (cols @ W.reshape(-1, 5)).reshape(2, OH, OW, 5), rtol=1e-12)


def test_pack_weights_layout():
    W = np.arange(3 * 3 * 2 * 64, dtype=np.float32).reshape(3, 3, 2, 64)
    p = pack_weights(W, 32)
    assert p.shape == (2, 18, 32) and p.flags.c_contiguous
    np.testing.assert_array_equal(p[1, 5], W.reshape(18, 64)[5, 32:])


def test_tile_widths_of_the_avx2_tiles():
    """The AVX2 unit's choices (test_vector_units.py checks the AVX-512 unit's)."""
    previous = vectors.use_vector_unit("avx2")
    try:
        check_avx2_tile_widths()
    finally:
        vectors.use_vector_unit(previous)


def check_avx2_tile_widths():
    assert tile_width(64, 32) == 32 and tile_width(64, 31) == 32 and tile_width(64, 15) == 32
    assert tile_width(64, 16) == 16                       # 16 columns in 4s, not 18 in 3s
    assert tile_width(48, 16) == 24 and tile_width(16, 32) == 16 and tile_width(40, 32) == 0


# (N, H, W, C, F, KH, KW, pad_top, pad_left, pad_bottom, pad_right): widths that are and are
# not multiples of the 3- and 4-pixel tiles, 24- and 32-channel tiles, odd kernels and paddings
FORWARD_CASES = [(3, 5, 5, 4, 32, 3, 3, 1, 1, 1, 1), (2, 4, 7, 3, 64, 3, 3, 1, 1, 1, 1),
                 (2, 6, 6, 5, 24, 3, 3, 0, 0, 0, 0), (1, 5, 9, 8, 48, 2, 3, 1, 0, 0, 2),
                 (2, 3, 3, 2, 32, 1, 1, 0, 0, 0, 0), (1, 8, 6, 3, 96, 5, 5, 2, 2, 2, 2),
                 (5, 4, 13, 7, 32, 3, 3, 2, 1, 0, 1), (2, 6, 16, 8, 64, 3, 3, 1, 1, 1, 1),
                 (2, 5, 8, 4, 16, 3, 3, 3, 1, 3, 1)]     # the last: whole rows of padding


@pytest.mark.parametrize("case", FORWARD_CASES)
@pytest.mark.parametrize("bias", [False, True])
def test_direct_forward_matches_reference(case, bias):
    N, H, W, C, F, KH, KW, pt, pl, pb, pr = case
    rng = np.random.default_rng(sum(case))
    x = rng.standard_normal((N, H, W, C)).astype(np.float32)
    Wt = rng.standard_normal((KH, KW, C, F)).astype(np.float32)
    b = rng.standard_normal(F).astype(np.float32) if bias else None
    OH, OW = H + pt + pb - KH + 1, W + pl + pr - KW + 1
    y = direct_forward(x, Wt, b, pt, pl, OH, OW)
    ref = direct_conv_reference(x.astype(np.float64), Wt.astype(np.float64), pt, pl, OH, OW)
    if bias:
        ref = ref + b
    assert y.dtype == np.float32 and y.shape == (N, OH, OW, F)
    assert rel_err(y, ref) < 1e-5


def test_direct_forward_refuses_maps_narrower_than_a_tile():
    x = np.zeros((1, 4, 2, 3), np.float32)
    with pytest.raises(ValueError, match="OW >= 3"):
        direct_forward(x, np.zeros((1, 1, 3, 32), np.float32), None, 0, 0, 4, 2)


# (N, H, W, C, F, KH, KW, pad_top, pad_left, pad_bottom, pad_right); odd OH leaves a last
# group of one row (DW_ROWS = 2); C = 1, 2, 3, 4 with KW * (C up to a multiple of 4) <= 16:
# a tile row per (kw, c) (8 + 4 rows, 8, 4 + 4), C = 3 and 5 at KW * C above that: zero
# channels up to 4 and 8 on the per-tap tiles
DW_CASES = [(2, 9, 10, 3, 32, 3, 3, 1, 1, 1, 1), (3, 6, 7, 4, 32, 3, 2, 0, 1, 2, 0),
            (2, 5, 8, 2, 16, 3, 3, 3, 1, 3, 1), (2, 6, 9, 1, 64, 4, 4, 1, 2, 2, 1),
            (2, 6, 9, 3, 32, 3, 5, 1, 2, 1, 2), (2, 6, 6, 5, 16, 3, 3, 1, 1, 1, 1),
            (3, 5, 5, 4, 16, 3, 3, 1, 1, 1, 1), (2, 7, 6, 8, 32, 3, 3, 1, 1, 1, 1),
            (4, 4, 9, 24, 64, 3, 3, 0, 0, 0, 0), (1, 6, 5, 12, 48, 2, 3, 1, 0, 0, 2),
            (5, 3, 3, 4, 16, 1, 1, 0, 0, 0, 0), (2, 4, 6, 4, 16, 3, 3, 3, 4, 3, 2)]


@pytest.mark.parametrize("case", DW_CASES)
def test_direct_weight_grad_matches_reference(case):
    N, H, W, C, F, KH, KW, pt, pl, pb, pr = case
    rng = np.random.default_rng(sum(case))
    x = rng.standard_normal((N, H, W, C)).astype(np.float32)
    OH, OW = H + pt + pb - KH + 1, W + pl + pr - KW + 1
    dy = rng.standard_normal((N, OH, OW, F)).astype(np.float32)
    dW = direct_weight_grad(x, dy, KH, KW, pt, pl, 4)
    ref = direct_weight_grad_reference(x.astype(np.float64), dy.astype(np.float64), KH, KW, pt, pl)
    assert dW.dtype == np.float32 and dW.shape == (KH, KW, C, F)
    assert rel_err(dW, ref) < 1e-5
    np.testing.assert_array_equal(dW, direct_weight_grad(x, dy, KH, KW, pt, pl, 4))


@pytest.mark.parametrize("C,F,H,padding,N", [(32, 32, 14, "same", 3), (24, 64, 13, "same", 3),
                                             (64, 48, 12, 1, 3), (8, 32, 16, "valid", 3),
                                             (32, 24, 12, "same", 1), (16, 48, 12, "same", 2),
                                             (3, 32, 16, "same", 2), (6, 16, 13, 1, 2)])
def test_conv2d_direct_path_matches_im2col_path(monkeypatch, C, F, H, padding, N):
    """The whole layer, forward and backward, with the direct path (forward, dW and, when
    C allows, dx: checked by spies) and with the im2col paths only; C = 3 and 6 run dW
    on zero channels up to a multiple of 4."""
    rng = np.random.default_rng(C + F + H)
    x = rng.standard_normal((N, H, H, C)).astype(np.float32)
    fwd, dW = spy(monkeypatch, "direct_forward"), spy(monkeypatch, "direct_weight_grad")
    fast = forward_backward(C, F, H, padding, x, allow_winograd=False)
    assert len(fwd) >= 1
    assert dW == (["direct_weight_grad"] if F % 16 == 0 else [])   # C % 4: zero channels
    assert len(fwd) == 2 if C % 16 == 0 or C % 24 == 0 else len(fwd) == 1   # dx direct too
    plain = forward_backward(C, F, H, padding, x, allow_winograd=False, allow_direct=False)
    for got, want in zip(fast, plain):
        assert rel_err(got, want) < 1e-5


@pytest.mark.parametrize("frozen,skip", [({"W"}, False), ({"b"}, True)])
def test_direct_path_with_frozen_params_and_skipped_input_grad(frozen, skip):
    """needs_input_grad=False (what Sequential sets on its first layer): backward returns
    None; frozen params keep their gradient out; the rest as on the im2col path."""
    x = np.random.default_rng(0).standard_normal((2, 12, 12, 32)).astype(np.float32)
    outs = []
    for allow in (True, False):
        layer = Conv2D(32, 32, 3, rng=1)
        layer.allow_direct, layer.frozen, layer.needs_input_grad = allow, set(frozen), not skip
        y = layer.forward(x, training=True)
        dx = layer.backward(np.ones_like(y))
        outs.append((y, dx, layer.grads["W"].copy(), layer.grads["b"].copy()))
    assert (outs[0][1] is None) == skip
    for got, want in zip(outs[0], outs[1]):
        if got is not None:
            assert rel_err(got, want) < 1e-5


def test_direct_functions_refuse_shapes_they_cannot_do():
    x = np.zeros((1, 6, 6, 3), np.float32)
    with pytest.raises(ValueError, match="F a multiple of 16"):
        direct_weight_grad(x, np.zeros((1, 6, 6, 24), np.float32), 3, 3, 1, 1, 1)
    with pytest.raises(ValueError, match="must agree on C"):
        direct_forward(x, np.zeros((3, 3, 4, 32), np.float32), None, 1, 1, 6, 6)
    with pytest.raises(TypeError, match="float32 only"):
        direct_forward(x.astype(np.float64), np.zeros((3, 3, 3, 32)), None, 1, 1, 6, 6)
    with pytest.raises(ValueError, match="padding must be >= 0"):
        direct_forward(x, np.zeros((3, 3, 3, 32), np.float32), None, -1, 1, 6, 6)


def test_direct_path_is_taken(monkeypatch):
    """Conv2D calls the direct functions where the rule says so (and only there)."""
    calls = []
    real = fast_conv.direct_forward
    monkeypatch.setattr(fast_conv, "direct_forward",
                        lambda *a, **k: calls.append(a[1].shape) or real(*a, **k))
    x = np.zeros((2, 16, 16, 32), np.float32)
    Conv2D(32, 16, 3, rng=0).forward(x)                 # 16 of 32 tile channels: not Winograd
    Conv2D(32, 64, 3, rng=0).forward(x)                 # Winograd comes first
    no_winograd = Conv2D(32, 64, 3, rng=0)
    no_winograd.allow_winograd = False
    no_winograd.forward(x)
    Conv2D(32, 64, 5, rng=0).forward(x)                 # 5x5: direct, not Winograd
    Conv2D(32, 64, 3, rng=0).to(np.float64).forward(x.astype(np.float64))
    Conv2D(32, 256, 3, rng=0).forward(x)
    assert calls == [(3, 3, 32, 16), (3, 3, 32, 64), (5, 5, 32, 64)]
