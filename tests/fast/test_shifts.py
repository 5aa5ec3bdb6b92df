"""The shifted-window path (fast/conv_shifts.py): one matrix product per kernel tap."""
import numba
import numpy as np
import pytest

import minicnn.fast.conv_shifts as shifts
from minicnn.fast.conv_shifts import (shifted_forward, shifted_weight_grad, tap_order,
                                      tap_window)
from minicnn.fast.rules import conv_paths
from minicnn.nn import Conv2D
from minicnn.nn.conv import conv2d_backward, conv2d_forward

# (N, H, W, C, F, K, padding (top, bottom, left, right)): "same" 3x3 on 3x3 and 3x4 maps, a
# 2x2 kernel with one-sided padding, a 1x1 kernel, a 5x5 on a 3x3 map (taps reading only
# padding), padding 2 of a 3x3 kernel (outputs larger than the input), no padding
CASES = [(3, 3, 3, 5, 7, (3, 3), (1, 1, 1, 1)), (2, 3, 4, 6, 4, (3, 3), (1, 1, 1, 1)),
         (2, 4, 3, 3, 5, (2, 2), (0, 1, 0, 1)), (2, 3, 3, 4, 3, (1, 1), (0, 0, 0, 0)),
         (2, 3, 3, 3, 2, (5, 5), (2, 2, 2, 2)), (1, 2, 3, 2, 3, (3, 3), (2, 2, 2, 2)),
         (2, 5, 4, 3, 4, (3, 2), (0, 0, 0, 0))]


def case_arrays(N, H, W, C, F, K, pads, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    Wt = rng.standard_normal(K + (C, F)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    OH, OW = H + pads[0] + pads[1] - K[0] + 1, W + pads[2] + pads[3] - K[1] + 1
    dy = rng.standard_normal((N, OH, OW, F)).astype(dtype)
    return x, Wt, b, dy


@pytest.mark.parametrize("k,pad,out,size,want", [(0, 1, 3, 3, (1, 3)), (1, 1, 3, 3, (0, 3)),
                                                 (2, 1, 3, 3, (0, 2)), (0, 0, 2, 4, (0, 2)),
                                                 (0, 2, 2, 2, (2, 2)), (4, 2, 3, 3, (0, 1))])
def test_tap_window_is_where_the_tap_reads_the_image(k, pad, out, size, want):
    assert tap_window(k, pad, out, size) == want
    o0, o1 = tap_window(k, pad, out, size)
    inside = [o for o in range(out) if 0 <= o + k - pad < size]
    assert list(range(o0, o1)) == inside


def test_tap_order_puts_the_covering_tap_first_and_leaves_out_padding_taps():
    taps = tap_order(3, 3, 1, 1, 3, 3, 3, 3)
    assert [t[:2] for t in taps] == [(1, 1), (0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0),
                                     (2, 1), (2, 2)]
    assert taps[0][2:] == ((0, 3), (0, 3))
    five = tap_order(5, 5, 2, 2, 2, 2, 2, 2)          # 5x5 on 2x2: rows/cols 0 and 4 read padding
    assert {t[:2] for t in five} == {(kh, kw) for kh in (1, 2, 3) for kw in (1, 2, 3)}


@pytest.mark.parametrize("dtype,tol", [(np.float32, 2e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("N,H,W,C,F,K,pads", CASES)
def test_shifted_passes_match_the_reference(N, H, W, C, F, K, pads, dtype, tol):
    """y, dx (the flipped tap matrices) and dW against nn/conv.py's tap-by-tap sums on a
    padded copy, in float64."""
    x, Wt, b, dy = case_arrays(N, H, W, C, F, K, pads, dtype)
    x64, W64, dy64 = (a.astype(np.float64) for a in (x, Wt, dy))
    want_y = conv2d_forward(x64, W64, b.astype(np.float64), 1, pads)
    want_dx, want_dW, _ = conv2d_backward(dy64, x64, W64, 1, pads)
    OH, OW = want_y.shape[1:3]
    y = shifted_forward(x, Wt, b, pads[0], pads[2], OH, OW)
    dx = shifted_forward(dy, Wt, None, K[0] - 1 - pads[0], K[1] - 1 - pads[2], H, W,
                         flipped=True)
    dW = shifted_weight_grad(x, dy, K[0], K[1], pads[0], pads[2])
    for got, want in ((y, want_y), (dx, want_dx), (dW, want_dW)):
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())


def test_a_tap_reading_only_padding_gets_a_zero_gradient():
    x, Wt, b, dy = case_arrays(2, 2, 2, 3, 4, (5, 5), (2, 2, 2, 2), np.float32)
    dW = shifted_weight_grad(x, dy, 5, 5, 2, 2)
    assert not dW[0].any() and not dW[:, 4].any() and dW[2, 2].any()


def test_weight_grad_over_several_blocks_and_the_same_bits_on_any_thread_count(monkeypatch):
    """dW sums each tap over fixed blocks of images (DW_BLOCK_ROWS), whichever thread
    runs the tap: one thread and all threads give the same bits; the blocked sum
    matches the reference."""
    monkeypatch.setattr(shifts, "DW_BLOCK_ROWS", 20)                 # 2 images of 3x3 a block
    x, Wt, b, dy = case_arrays(7, 3, 3, 8, 16, (3, 3), (1, 1, 1, 1), np.float32, seed=3)
    all_threads = shifted_weight_grad(x, dy, 3, 3, 1, 1)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one_thread = shifted_weight_grad(x, dy, 3, 3, 1, 1)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one_thread, all_threads)
    _, want, _ = conv2d_backward(dy.astype(np.float64), x.astype(np.float64),
                                 Wt.astype(np.float64), 1, (1, 1, 1, 1))
    np.testing.assert_allclose(all_threads, want, rtol=2e-5, atol=2e-5 * np.abs(want).max())


class _NaNEmpty:
    """numpy, except that empty() returns float arrays full of NaN."""
    def __getattr__(self, name):
        return getattr(np, name)

    def empty(self, shape, dtype=float):
        return np.full(shape, np.nan, dtype) if np.dtype(dtype).kind == "f" else np.empty(shape, dtype)


@pytest.mark.parametrize("K,pads", [((3, 3), (1, 1, 1, 1)), ((3, 3), (2, 2, 2, 2))])
def test_no_buffer_is_read_before_it_is_written(K, pads, monkeypatch):
    """y and the scratch come from np.empty: filled with NaN they give the same bits,
    whether a tap covers every output (y written first) or none does (y zeroed)."""
    monkeypatch.setattr(shifts, "BLOCK_ROWS", 20)                    # several blocks
    x, Wt, b, dy = case_arrays(5, 3, 3, 4, 6, K, pads, np.float32, seed=5)
    OH, OW = dy.shape[1:3]
    want = shifted_forward(x, Wt, b, pads[0], pads[2], OH, OW)
    want_dW = shifted_weight_grad(x, dy, *K, pads[0], pads[2])
    monkeypatch.setattr(shifts, "np", _NaNEmpty())
    got = shifted_forward(x, Wt, b, pads[0], pads[2], OH, OW)
    got_dW = shifted_weight_grad(x, dy, *K, pads[0], pads[2])
    assert np.isfinite(got).all() and np.isfinite(got_dW).all()
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_dW, want_dW)


def test_bad_inputs_are_named():
    x = np.zeros((2, 3, 3, 4), np.float32)
    with pytest.raises(ValueError, match=r"x \(N, H, W, 5\).*got x \(2, 3, 3, 4\)"):
        shifted_forward(x, np.zeros((3, 3, 5, 2), np.float32), None, 1, 1, 3, 3)
    with pytest.raises(ValueError, match="float64.*float32"):
        shifted_forward(x, np.zeros((3, 3, 4, 2), np.float64), None, 1, 1, 3, 3)
    with pytest.raises(ValueError, match=r"0 <= padding < kernel size.*\(3, 1\) for a 3x3"):
        shifted_forward(x, np.zeros((3, 3, 4, 2), np.float32), None, 3, 1, 7, 3)


@pytest.mark.parametrize("forced", [False, True])
def test_conv2d_on_the_shifts_path_matches_its_reference(forced):
    """A whole Conv2D (bias, ReLU fused) on 3x3 maps, every pass on shifts (the rule's
    choice for 256 x 256; forced for a small layer), against the layer's NumPy reference."""
    rng = np.random.default_rng(11)
    C, F = (16, 24) if forced else (256, 256)
    layer = Conv2D(C, F, 3, rng=0)
    layer.params["b"][...] = rng.standard_normal(F)
    x = rng.standard_normal((5, 3, 3, C)).astype(np.float32)
    if forced:
        layer.forced_paths = {"forward": "shifts", "dx": "shifts", "dW": "shifts"}
    assert conv_paths(layer, x.shape) == {"forward": "shifts", "dx": "shifts", "dW": "shifts"}
    layer.needs_input_grad = True
    y = layer.forward(x, True, relu=True)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy * (y > 0))
    dW, db = layer.grads["W"].copy(), layer.grads["b"].copy()
    want_y = layer.forward_reference(x, True, relu=True)
    want_dx = layer.backward_reference(dy * (want_y > 0))
    tol = 1e-5 * np.sqrt(C)
    np.testing.assert_allclose(y, want_y, rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, want_dx, rtol=tol, atol=tol)
    np.testing.assert_allclose(dW, layer.grads["W"], rtol=tol, atol=tol * 10)
    np.testing.assert_allclose(db, layer.grads["b"], rtol=1e-6, atol=1e-5)


def test_the_rule_takes_shifts_on_the_smallest_maps_only():
    """dW on 3x3 and 4x4 maps (40% and 31% padding); forward and dx on 3x3 maps of a
    256 x 256 layer only (docs/performance.md, "Shifted windows")."""
    same3 = Conv2D(256, 256, 3, rng=0)
    assert set(conv_paths(same3, (8, 3, 3, 256)).values()) == {"shifts"}
    assert conv_paths(same3, (8, 4, 4, 256)) == {"forward": "taps", "dx": "taps",
                                                 "dW": "shifts"}
    assert "shifts" not in conv_paths(same3, (8, 5, 5, 256), np.float64).values()   # 25%
    narrow = Conv2D(128, 128, 3, rng=0)
    assert conv_paths(narrow, (8, 3, 3, 128)) == {"forward": "taps", "dx": "taps",
                                                  "dW": "shifts"}
    strided = Conv2D(256, 256, 3, stride=2, rng=0)
    assert "shifts" not in conv_paths(strided, (8, 3, 3, 256)).values()
    wide_pad = Conv2D(256, 256, 3, padding=3, rng=0)                 # padding >= the kernel
    assert "shifts" not in conv_paths(wide_pad, (8, 3, 3, 256)).values()
