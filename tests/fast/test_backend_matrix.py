"""The fast backend against the reference backend, as one matrix:
layer x pass (forward, dx, dW) x path x dtype.

Every Conv2D path is forced (``Conv2D.forced_paths``) on a shape where it can run,
and a spy on the driver proves it ran. Tolerances: float64 to rounding; float32 to
1e-5 relative, 5e-5 for Winograd (its transforms scale values by up to 8 and 1/24).
"""
import numpy as np
import pytest

import minicnn.fast.conv as fast_conv
from minicnn import use_backend
from minicnn.nn import (GELU, BatchNorm1D, BatchNorm2D, Conv2D, Dense, LeakyReLU, MaxPool2D,
                        ReLU)

DRIVERS = {   # (pass, path) -> the function in minicnn.fast.conv that runs it
    ("forward", "winograd"): "winograd_forward", ("forward", "direct"): "direct_forward",
    ("forward", "shifts"): "shifted_forward",
    ("forward", "taps"): "taps_forward", ("forward", "im2col"): "im2col_forward",
    ("dx", "winograd"): "winograd_forward", ("dx", "direct"): "direct_forward",
    ("dx", "shifts"): "shifted_forward",
    ("dx", "taps"): "taps_forward", ("dx", "im2col"): "flipped_im2col_input_grad",
    ("dx", "col2im"): "col2im_input_grad",
    ("dW", "winograd"): "winograd_weight_grad", ("dW", "direct"): "direct_weight_grad",
    ("dW", "shifts"): "shifted_weight_grad",
    ("dW", "taps"): "taps_weight_grad", ("dW", "im2col"): "im2col_weight_grad",
}
TILE_PATHS = {"winograd", "direct"}           # float32 only


def relative_error(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def tolerance(dtype, path=None):
    if dtype == np.float64:
        return 1e-12
    return 5e-5 if path == "winograd" else 1e-5


def passes(layer, x, dy, backend_name, training=True):
    """(y, dx, grads) of one forward and backward on the named backend, starting from the
    same buffers every time (BatchNorm's running statistics change in training)."""
    saved = {k: v.copy() for k, v in layer.buffers.items()}
    with use_backend(backend_name):
        y = layer.forward(x, training)
        dx = layer.backward(dy)
    grads = {k: g.copy() for k, g in layer.grads.items() if k not in layer.frozen}
    for k, v in saved.items():
        layer.buffers[k][...] = v
    return y, dx, grads


def conv_cases():
    for dtype in (np.float32, np.float64):
        for (pass_name, path) in DRIVERS:
            if path in TILE_PATHS and dtype == np.float64:
                continue
            yield pytest.param(pass_name, path, dtype, id=f"{pass_name}-{path}-{np.dtype(dtype)}")


@pytest.mark.parametrize("pass_name, path, dtype", list(conv_cases()))
def test_conv2d_every_path_matches_the_reference(monkeypatch, pass_name, path, dtype):
    rng = np.random.default_rng(0)
    # 32 -> 32 channels on 16x16 maps, 3x3 'same': a shape every path can run
    layer = Conv2D(32, 32, 3, padding="same", bias=True, rng=1, dtype=dtype)
    layer.params["b"][...] = rng.standard_normal(32)
    x = rng.standard_normal((2, 16, 16, 32)).astype(dtype)
    dy = rng.standard_normal((2, 16, 16, 32)).astype(dtype)
    y_ref, dx_ref, grads_ref = passes(layer, x, dy, "reference")

    calls = []
    name = DRIVERS[(pass_name, path)]
    original = getattr(fast_conv, name)
    monkeypatch.setattr(fast_conv, name, lambda *a, **k: calls.append(name) or original(*a, **k))
    layer.forced_paths = {pass_name: path}
    y, dx, grads = passes(layer, x, dy, "fast")
    assert calls, f"{name} did not run"
    result, expected = {"forward": (y, y_ref), "dx": (dx, dx_ref),
                        "dW": (grads["W"], grads_ref["W"])}[pass_name]
    assert result.dtype == dtype
    assert relative_error(result, expected) < tolerance(dtype, path)
    if pass_name == "dW":
        assert relative_error(grads["b"], grads_ref["b"]) < tolerance(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels", [(4, 6), (6, 4)], ids=["widening", "narrowing"])
@pytest.mark.parametrize("stride, padding, kernel", [(2, "same", 3), (2, 1, 3), (1, "valid", 2),
                                                     (1, 2, 3), (1, 3, 3), (1, "same", 2),
                                                     (1, 1, 1), (3, 0, 5)])
def test_conv2d_rule_paths_match_the_reference_on_odd_shapes(dtype, channels, stride, padding,
                                                             kernel):
    """Strides, paddings wider than the kernel, even and 1x1 kernels, widening (dx by
    col2im) and narrowing layers (dx by the flipped kernel), on the paths the rule takes."""
    rng = np.random.default_rng(1)
    C, F = channels
    layer = Conv2D(C, F, kernel, stride=stride, padding=padding, rng=2, dtype=dtype)
    x = rng.standard_normal((3, 11, 9, C)).astype(dtype)
    y_shape = (3,) + layer.output_shape((11, 9, C))
    dy = rng.standard_normal(y_shape).astype(dtype)
    y_ref, dx_ref, g_ref = passes(layer, x, dy, "reference")
    y, dx, g = passes(layer, x, dy, "fast")
    for got, want in ((y, y_ref), (dx, dx_ref), (g["W"], g_ref["W"]), (g["b"], g_ref["b"])):
        assert got.shape == want.shape and got.dtype == dtype
        assert relative_error(got, want) < tolerance(dtype)


def other_layers():
    yield "relu", lambda dt: ReLU(), (4, 5, 6, 3)
    yield "leaky_relu", lambda dt: LeakyReLU(0.1), (4, 5, 6, 3)
    yield "gelu_exact", lambda dt: GELU(), (4, 5, 6, 3)
    yield "gelu_tanh", lambda dt: GELU(approximate=True), (4, 5, 6, 3)
    yield "maxpool_2_2", lambda dt: MaxPool2D(2), (3, 8, 6, 5)
    yield "maxpool_3_2", lambda dt: MaxPool2D(3, 2), (3, 9, 7, 5)   # overlapping windows
    yield "batchnorm2d", lambda dt: BatchNorm2D(5, dtype=dt), (4, 3, 3, 5)
    yield "batchnorm1d", lambda dt: BatchNorm1D(7, dtype=dt), (16, 7)
    yield "dense", lambda dt: Dense(12, 5, init="he", rng=0, dtype=dt, scale=0.5), (6, 12)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, make, shape", list(other_layers()), ids=lambda v: v if isinstance(v, str) else "")
def test_other_layers_fast_matches_the_reference(name, make, shape, dtype, training):
    rng = np.random.default_rng(2)
    layer = make(dtype)
    if "gamma" in layer.params:                   # not the trivial gamma = 1, beta = 0, stats 0/1
        layer.params["gamma"][...] = rng.uniform(0.5, 2, layer.C)
        layer.params["beta"][...] = rng.standard_normal(layer.C)
        layer.buffers["running_mean"][...] = rng.standard_normal(layer.C)
        layer.buffers["running_var"][...] = rng.uniform(0.5, 2, layer.C)
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    y_shape = (shape[0],) + tuple(layer.output_shape(shape[1:]))
    dy = rng.standard_normal(y_shape).astype(dtype)
    y_ref, dx_ref, g_ref = passes(layer, x, dy, "reference", training)
    buffers_ref = {k: v.copy() for k, v in layer.buffers.items()}
    with use_backend("reference"):
        layer.forward(x, training)                # the running statistics after one step
    stats_ref = {k: v.copy() for k, v in layer.buffers.items()}
    for k, v in buffers_ref.items():
        layer.buffers[k][...] = v
    y, dx, g = passes(layer, x, dy, "fast", training)
    layer.forward(x, training)
    tol = tolerance(dtype) * (10 if dtype == np.float32 else 1)   # float32 sums in other orders
    assert y.dtype == dx.dtype == dtype
    assert relative_error(y, y_ref) < tol
    assert relative_error(dx, dx_ref) < tol
    assert g.keys() == g_ref.keys()
    for k in g:
        assert relative_error(g[k], g_ref[k]) < tol, k
    for k in stats_ref:
        assert relative_error(layer.buffers[k], stats_ref[k]) < tol, k
