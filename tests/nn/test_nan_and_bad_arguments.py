"""NaN through the max pools on both backends; networks whose shapes do not chain,
caught by summary(); and arguments that are not what an entry point takes, each
refused with an error naming the argument, what it accepts and what it got."""
import re

import numpy as np
import pytest

import minicnn as mc
from minicnn.nn import SoftmaxCrossEntropy, softmax_cross_entropy

BACKENDS = ["reference", "fast"]


# ---- NaN in max pooling ---------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("K,S", [(2, 2), (3, 2), (3, 1)])
def test_maxpool_propagates_nan_wherever_it_sits(backend, K, S):
    """A NaN at each position of the map in turn: every window that covers it outputs
    NaN (as np.max of the window does), the others are untouched, and backward sends
    dy of a NaN window to the NaN."""
    H = W = K + 2 * S
    base = np.arange(H * W, dtype=np.float32).reshape(1, H, W, 1)      # distinct values
    OH = OW = (H - K) // S + 1
    starts = np.arange(OH) * S                                          # first row/column of each window
    for h in range(H):
        for w in range(W):
            x = base.copy()
            x[0, h, w, 0] = np.nan
            layer = mc.MaxPool2D(K, S)
            with mc.use_backend(backend):
                y = layer.forward(x)
                dx = layer.backward(np.ones_like(y))
            rows_cover = (starts <= h) & (h < starts + K)                # windows holding row h
            cols_cover = (starts <= w) & (w < starts + K)
            covers = rows_cover[:, None] & cols_cover[None, :]           # (OH, OW)
            np.testing.assert_array_equal(np.isnan(y[0, :, :, 0]), covers,
                                          err_msg=f"NaN at ({h}, {w}), {backend}")
            assert dx[0, h, w, 0] == covers.sum()         # each NaN window's dy = 1 went there


@pytest.mark.parametrize("backend", BACKENDS)
def test_both_max_pools_match_np_max_with_nans_and_infinities(backend):
    rng = np.random.default_rng(3)
    x = rng.integers(-3, 4, (3, 6, 6, 5)).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = np.nan
    x[rng.random(x.shape) < 0.05] = np.inf
    # (N, OH, kh, OW, kw, C) -> (N, OH, OW, C, 4 taps): the 2x2 windows of the 6x6 maps
    windows = x.reshape(3, 3, 2, 3, 2, 5).transpose(0, 1, 3, 5, 2, 4).reshape(3, 3, 3, 5, 4)
    with mc.use_backend(backend):
        pool, global_pool = mc.MaxPool2D(2), mc.GlobalMaxPool2D()
        y, y_global = pool.forward(x), global_pool.forward(x)
        dx_global = global_pool.backward(np.ones_like(y_global))
    np.testing.assert_array_equal(y, windows.max(axis=-1))
    np.testing.assert_array_equal(y_global, x.max(axis=(1, 2)))
    assert np.isnan(y).any() and np.isnan(y_global).any()
    first = x.reshape(3, 36, 5).argmax(axis=1)                       # the first NaN, if any
    np.testing.assert_array_equal(dx_global.reshape(3, 36, 5).argmax(axis=1), first)


def test_maxpool_backends_agree_bit_for_bit_with_nans():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 9, 9, 6)).astype(np.float32)
    x[rng.random(x.shape) < 0.08] = np.nan
    results = {}
    for backend in BACKENDS:
        layer = mc.MaxPool2D(3, 2)
        with mc.use_backend(backend):
            y = layer.forward(x)
            dx = layer.backward(np.arange(y.size, dtype=np.float32).reshape(y.shape))
        results[backend] = (y, layer.arg, dx)
    for a, b in zip(results["reference"], results["fast"]):
        np.testing.assert_array_equal(a, b)


# ---- summary: shapes that do not chain --------------------------------------------------
@pytest.mark.parametrize("layers,input_shape,index,arrives,expects", [
    (lambda: [mc.Flatten(), mc.Dense(100, 10)], (8, 8, 4), 1, "(256,)", "(100,)"),
    (lambda: [mc.Conv2D(3, 16)], (8, 8, 8), 0, "(8, 8, 8)", "(H, W, 3)"),
    (lambda: [mc.Conv2D(3, 16), mc.ReLU(), mc.Conv2D(8, 4)], (8, 8, 3), 2, "(8, 8, 16)", "(H, W, 8)"),
    (lambda: [mc.Conv2D(3, 4), mc.Dense(4, 2)], (8, 8, 3), 1, "(8, 8, 4)", "(4,)"),
    (lambda: [mc.Flatten(), mc.MaxPool2D(2)], (8, 8, 3), 1, "(192,)", "(H, W, C)"),
    (lambda: [mc.Flatten(), mc.GlobalAvgPool2D()], (8, 8, 3), 1, "(192,)", "(H, W, C)"),
    (lambda: [mc.GlobalMaxPool2D(), mc.Conv2D(3, 4)], (8, 8, 3), 1, "(3,)", "(H, W, 3)"),
    (lambda: [mc.Flatten(), mc.Dense(192, 8), mc.AvgPool2D(2)], (8, 8, 3), 2, "(8,)", "(H, W, C)"),
    (lambda: [mc.Conv2D(3, 4)], (2, 8, 8, 3), 0, "(2, 8, 8, 3)", "(H, W, 3)"),   # batch axis given
])
def test_summary_names_the_layer_that_does_not_fit(layers, input_shape, index, arrives, expects):
    model = mc.Sequential(layers())
    layer = model.layers[index]
    pattern = (rf"layer {index}, {re.escape(repr(layer))}, cannot take shape {re.escape(arrives)}"
               rf".*expected an input of shape {re.escape(expects)} per example")
    with pytest.raises(ValueError, match=pattern):
        model.summary(input_shape)
    with pytest.raises(ValueError, match=pattern):
        model.flops(input_shape)


def test_summary_of_a_network_that_chains_is_unchanged():
    model = mc.Sequential([mc.Conv2D(3, 8), mc.ReLU(), mc.MaxPool2D(2), mc.GlobalAvgPool2D(),
                           mc.Dense(8, 4)])
    text = model.summary((8, 8, 3))
    assert "(4, 4, 8)" in text and "(8,)" in text and "(4,)" in text
    assert [out for _, out in model.layer_shapes((8, 8, 3))] == [(8, 8, 8), (8, 8, 8), (4, 4, 8),
                                                                  (8,), (4,)]


def test_forward_on_a_wrong_shape_still_raises():
    model = mc.Sequential([mc.Flatten(), mc.Dense(100, 10)])
    with pytest.raises(ValueError, match=r"Dense: expected 100 channels in the last axis, "
                                         r"got shape \(2, 256\)"):
        model.forward(np.zeros((2, 8, 8, 4), np.float32))


@pytest.mark.parametrize("input_shape", [(0, 8, 3), (8.0, 8, 3), (), (8, -1, 3), (8, True, 3), 32,
                                         "32x32"])
def test_summary_input_shape_must_be_positive_ints(input_shape):
    model = mc.Sequential([mc.ReLU()])
    with pytest.raises(ValueError, match=r"input_shape must be a tuple of positive ints.*got "
                                         + re.escape(repr(input_shape))):
        model.summary(input_shape)


# ---- predict's batch size ----------------------------------------------------------------
@pytest.mark.parametrize("batch_size", [0, -1, 2.5, 2.0, True, "10", None])
def test_predict_refuses_a_batch_size_that_is_not_a_positive_int(batch_size):
    model = mc.Sequential([mc.Flatten(), mc.Dense(3, 2)])
    with pytest.raises(ValueError, match=r"Sequential.predict: batch_size must be a positive int, "
                                         rf"got {re.escape(repr(batch_size))}$"):
        model.predict(np.zeros((4, 1, 1, 3), np.float32), batch_size=batch_size)


def test_predict_takes_numpy_ints_and_gives_the_same_logits_in_any_batches():
    model = mc.Sequential([mc.Flatten(), mc.Dense(3, 2, rng=0)])
    x = np.random.default_rng(0).standard_normal((5, 1, 1, 3)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x, batch_size=np.int64(2)), model.predict(x),
                               rtol=1e-6)
    with pytest.raises(TypeError, match="Sequential.predict: expected a numpy array, got list"):
        model.predict(x.tolist())


def test_summary_batch_size_is_checked():
    with pytest.raises(ValueError, match="Sequential.summary: batch_size must be a positive int, got 0"):
        mc.Sequential([mc.ReLU()]).summary(paths=True, batch_size=0)


# ---- constructor arguments -----------------------------------------------------------------
@pytest.mark.parametrize("make,match", [
    (lambda: mc.Conv2D(3, 4, kernel_size=0), "Conv2D: kernel_size must be a positive int, got 0"),
    (lambda: mc.Conv2D(3, 4, kernel_size=-3), "kernel_size must be a positive int, got -3"),
    (lambda: mc.Conv2D(3, 4, kernel_size=(3, 0)), "kernel_size must be a positive int, got 0"),
    (lambda: mc.Conv2D(3, 4, kernel_size=(3, 3, 3)),
     r"kernel_size must be a positive int or a pair \(KH, KW\) of them, got \(3, 3, 3\)"),
    (lambda: mc.Conv2D(3, 4, kernel_size=True), "kernel_size must be a positive int or a pair"),
    (lambda: mc.Conv2D(3, 4, kernel_size=3.0), "kernel_size must be a positive int or a pair"),
    (lambda: mc.Conv2D(3, 4, stride=-1), "Conv2D: stride must be a positive int, got -1"),
    (lambda: mc.Conv2D(3, 4, stride=1.5), "stride must be a positive int, got 1.5"),
    (lambda: mc.Conv2D(3, 4, stride=True), "stride must be a positive int, got True"),
    (lambda: mc.Conv2D(3, 4, padding=-1), "padding must be a non-negative int, 'same' or 'valid', got -1"),
    (lambda: mc.Conv2D(3, 4, padding=True), "padding must be a non-negative int, 'same' or 'valid', got True"),
    (lambda: mc.Conv2D(3, 4, padding=1.0), "padding must be a non-negative int, 'same' or 'valid', got 1.0"),
    (lambda: mc.Conv2D(3, 0), "out_channels must be a positive int, got 0"),
    (lambda: mc.Conv2D(3.0, 4), "in_channels must be a positive int, got 3.0"),
    (lambda: mc.Conv2D(3, 4, max_chunk_bytes=0), "max_chunk_bytes must be a positive int, got 0"),
    (lambda: mc.Conv2D(3, 4, dtype=np.int32), "Conv2D: dtype must be float32 or float64, got int32$"),
    (lambda: mc.Conv2D(3, 4, dtype=np.float16), "dtype must be float32 or float64, got float16"),
    (lambda: mc.Conv2D(3, 4, dtype="half-ish"), "dtype must be float32 or float64, got 'half-ish'"),
    (lambda: mc.Conv2D(3, 4, dtype=None), "dtype must be float32 or float64, got None"),
    (lambda: mc.MaxPool2D(-2), "MaxPool2D: pool_size must be a positive int, got -2"),
    (lambda: mc.MaxPool2D(2.0), "pool_size must be a positive int, got 2.0"),
    (lambda: mc.MaxPool2D(True), "pool_size must be a positive int, got True"),
    (lambda: mc.MaxPool2D(2, stride=0), "MaxPool2D: stride must be a positive int, got 0"),
    (lambda: mc.MaxPool2D(12), "pool_size must be at most 11, got 12"),
    (lambda: mc.AvgPool2D(0), "AvgPool2D: pool_size must be a positive int, got 0"),
    (lambda: mc.AvgPool2D(2, stride=-1), "AvgPool2D: stride must be a positive int, got -1"),
    (lambda: mc.Dense(0, 4), "Dense: in_features must be a positive int, got 0"),
    (lambda: mc.Dense(4, -1), "Dense: out_features must be a positive int, got -1"),
    (lambda: mc.Dense(4, 10.0), "out_features must be a positive int, got 10.0"),
    (lambda: mc.Dense(True, 4), "in_features must be a positive int, got True"),
    (lambda: mc.Dense(4, 2, dtype=np.int64), "Dense: dtype must be float32 or float64, got int64"),
    (lambda: mc.Dropout(-0.1), r"Dropout: drop probability p must be in \[0, 1\), got -0.1"),
    (lambda: mc.Dropout(1), r"p must be in \[0, 1\), got 1$"),
    (lambda: mc.Dropout(float("nan")), r"p must be in \[0, 1\), got nan"),
    (lambda: mc.Dropout("0.5"), r"p must be in \[0, 1\), got '0.5'"),
    (lambda: mc.Dropout(None), r"p must be in \[0, 1\), got None"),
    (lambda: mc.Dropout(True), r"p must be in \[0, 1\), got True"),
    (lambda: mc.LeakyReLU(1.0), r"LeakyReLU: alpha must be in \[0, 1\), got 1.0"),
    (lambda: mc.LeakyReLU("0.1"), r"alpha must be in \[0, 1\), got '0.1'"),
    (lambda: mc.GELU(approximate="none"),
     r"GELU: approximate must be True \(tanh form\) or False \(exact erf form\), got 'none'"),
    (lambda: mc.GELU(approximate="tanh"), "approximate must be True .* got 'tanh'"),
    (lambda: mc.GELU(approximate=1), "approximate must be True .* got 1"),
    (lambda: SoftmaxCrossEntropy(label_smoothing=1.0),
     r"SoftmaxCrossEntropy: label_smoothing must be in \[0, 1\), got 1.0"),
    (lambda: SoftmaxCrossEntropy(label_smoothing="0.1"), r"label_smoothing must be in \[0, 1\), got '0.1'"),
    (lambda: softmax_cross_entropy(np.zeros((2, 3), np.float32), [0, 1], label_smoothing=-0.1),
     r"cross-entropy: label_smoothing must be in \[0, 1\), got -0.1"),
    (lambda: mc.Dense(2, 2).to(np.int32), r"Dense.to: dtype must be float32 or float64, got int32"),
])
def test_bad_arguments_are_named(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_edge_values_that_are_allowed_still_are():
    assert mc.Dropout(0).p == 0.0 and mc.LeakyReLU(0).alpha == 0.0
    conv = mc.Conv2D(np.int64(3), 4, kernel_size=(3, 1), stride=np.int32(2), padding=0,
                     dtype="float64")
    assert (conv.KH, conv.KW, conv.stride, conv.params["W"].dtype) == (3, 1, 2, np.float64)
    assert type(conv.C) is int and repr(conv).startswith("Conv2D(3->4, k=3x1, s=2")
    assert mc.MaxPool2D(np.int64(3), 1).K == 3 and mc.MaxPool2D(11).K == 11
    assert mc.GELU(approximate=np.bool_(True)).approximate is True
    assert SoftmaxCrossEntropy(np.float32(0.1)).label_smoothing == pytest.approx(0.1)
    assert mc.Dense(2, 2).to(np.float64).params["W"].dtype == np.float64
