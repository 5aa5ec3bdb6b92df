"""Conv2D on the fast backend (fast/conv.py): the blocked im2col and tap-class paths against
one big product, and the whole layer wherever the rule sends a pass."""
import numpy as np
import pytest

from minicnn.fast.conv import MIN_BLOCK_ROWS, block_rows
from minicnn.fast.kernels.im2col import col2im_reference, im2col_reference
from minicnn.nn import Conv2D

from helpers import rel_err

DTYPES = [np.float32, np.float64]
TOL = {np.float32: 1e-5, np.float64: 1e-12}


@pytest.mark.parametrize("taps", [False, True], ids=["im2col", "taps"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(12))
def test_conv2d_blocked_paths_match_one_big_product(dtype, seed, taps):
    """Conv2D's cache-sized blocks, thread groups and flipped-kernel dx -- on the plain
    im2col path and on the tap-class path -- against the textbook: all of im2col at
    once, one matrix product, col2im."""
    rng = np.random.default_rng(100 + seed)
    N, H, W, C, F = (int(v) for v in rng.integers(1, 7, 5))
    k, S = int(rng.integers(1, 4)), int(rng.integers(1, 3))
    padding = ["same", "valid", int(rng.integers(0, k))][seed % 3]
    layer = Conv2D(C, F, k, stride=S, padding=padding, rng=seed, dtype=dtype,
                   max_chunk_bytes=int(rng.integers(1, 2000)))   # many blocks
    layer.taps_min_padding = 0.0 if taps else 2.0                   # force the path
    H, W = H + k, W + k                              # even 'valid' has an output
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    y = layer.forward(x, True)
    OH, OW, pt, pl = layer.geometry(H, W)
    cols = im2col_reference(x, k, k, S, pt, pl, OH, OW)
    Wm = layer.params["W"].reshape(-1, F)
    np.testing.assert_allclose(y.reshape(-1, F), cols @ Wm + layer.params["b"],
                               rtol=TOL[dtype], atol=TOL[dtype])
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = layer.backward(dy)
    dy2 = dy.reshape(-1, F)
    np.testing.assert_allclose(layer.grads["W"].reshape(-1, F), cols.T @ dy2,
                               rtol=TOL[dtype], atol=TOL[dtype])
    np.testing.assert_allclose(layer.grads["b"], dy2.sum(axis=0), rtol=TOL[dtype], atol=TOL[dtype])
    np.testing.assert_allclose(dx, col2im_reference(dy2 @ Wm.T, x.shape, k, k, S, pt, pl, OH, OW),
                               rtol=TOL[dtype], atol=TOL[dtype])
    assert y.dtype == dx.dtype == layer.grads["W"].dtype == dtype
    grads = {key: g.copy() for key, g in layer.grads.items()}       # bit-for-bit repeatable
    dx2 = layer.backward(dy)
    np.testing.assert_array_equal(dx2, dx)
    for key, g in grads.items():
        np.testing.assert_array_equal(layer.grads[key], g)


def test_block_rows_respects_the_cap_and_the_rows():
    layer = Conv2D(4, 4, 3, max_chunk_bytes=64 << 20)
    assert block_rows(layer, 10 ** 6, 36, 4) == max((1 << 20) // (36 * 4), MIN_BLOCK_ROWS)
    assert block_rows(layer, 100, 36, 4) == 100                      # never more than M
    layer.max_chunk_bytes = 1
    assert block_rows(layer, 100, 36, 4) == 1                        # a hard cap: one row


@pytest.mark.parametrize("C,F,k,padding", [(32, 32, 1, 1), (32, 32, 3, 3), (128, 128, 3, 3)])
def test_padding_wider_than_the_kernel_keeps_dx_off_the_fast_paths(C, F, k, padding):
    """dx of a stride-1 conv is the flipped kernel over dy padded by k-1-p: negative when
    p > k-1, which the direct and Winograd kernels cannot do; the layer must still work."""
    x = np.random.default_rng(0).standard_normal((2, 12, 12, C)).astype(np.float32)
    results = []
    for allow in (True, False):
        layer = Conv2D(C, F, k, padding=padding, rng=1)
        layer.allow_direct = layer.allow_winograd = allow
        y = layer.forward(x, training=True)
        dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
        results.append((y, layer.backward(dy)))
    for got, want in zip(*results):
        assert rel_err(got, want) < 1e-5


def test_db_alone_is_the_column_sums_on_every_path(monkeypatch):
    """With W frozen (airbench94's whitening layer: 2x2, 'valid', im2col's shape) the
    backward computes db alone, by the float64 column sums, and runs no dW product."""
    from helpers import spy
    sums, products = spy(monkeypatch, "column_sums"), spy(monkeypatch, "im2col_weight_grad")
    rng = np.random.default_rng(5)
    layer = Conv2D(3, 24, 2, padding="valid", rng=0)
    layer.frozen = {"W"}
    x = rng.standard_normal((4, 9, 9, 3)).astype(np.float32)
    dy = rng.standard_normal(layer.forward(x, True).shape).astype(np.float32)
    W_grad_before = layer.grads["W"].copy()
    layer.backward(dy)
    assert sums == ["column_sums"] and products == []
    want = dy.astype(np.float64).sum(axis=(0, 1, 2)).astype(np.float32)    # rounded once
    np.testing.assert_array_equal(layer.grads["b"], want)
    np.testing.assert_array_equal(layer.grads["W"], W_grad_before)       # untouched
