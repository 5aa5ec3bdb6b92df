"""Checks every class that minicnn.nn exports must pass, on both backends: backward
before forward, backward after release (what predict does), and inputs or dy of the
wrong dtype. Each gives a clear error that names the layer, never an AttributeError
or a numba typing error from inside a kernel.

A class added to minicnn.nn without an entry in ``EXAMPLES`` fails
``test_every_exported_class_is_covered``: add it there, and these checks cover it.
"""
import inspect

import numpy as np
import pytest

import minicnn as mc
import minicnn.nn as nn

BACKENDS = ["reference", "fast"]
IMAGES = (2, 6, 6, 3)

# name -> (make, input shape)
EXAMPLES = {
    "Conv2D": (lambda: nn.Conv2D(3, 4, rng=0), IMAGES),
    "ReLU": (nn.ReLU, IMAGES),
    "LeakyReLU": (lambda: nn.LeakyReLU(0.1), IMAGES),
    "GELU": (nn.GELU, IMAGES),
    "MaxPool2D": (lambda: nn.MaxPool2D(2), IMAGES),
    "AvgPool2D": (lambda: nn.AvgPool2D(2), IMAGES),
    "GlobalAvgPool2D": (nn.GlobalAvgPool2D, IMAGES),
    "GlobalMaxPool2D": (nn.GlobalMaxPool2D, IMAGES),
    "Dense": (lambda: nn.Dense(3, 4, rng=0), (2, 3)),
    "Flatten": (nn.Flatten, IMAGES),
    "BatchNorm1D": (lambda: nn.BatchNorm1D(3), (4, 3)),
    "BatchNorm2D": (lambda: nn.BatchNorm2D(3), IMAGES),
    "Dropout": (lambda: nn.Dropout(0.5, rng=0), IMAGES),
    "Sequential": (lambda: nn.Sequential([nn.Conv2D(3, 4, rng=0), nn.ReLU(), nn.Flatten(),
                                          nn.Dense(144, 2, rng=0)]), IMAGES),
}
# Who an error names: the layer itself; for the Sequential, a bad input is refused by
# its first layer and a bad dy by its last (backward before forward names Sequential).
SEQUENTIAL_NAMES = {"input": "Conv2D", "dy": "Dense", "before forward": "Sequential"}
LOSSES = {"SoftmaxCrossEntropy"}        # forward(logits, labels), backward() without dy
ABSTRACT = {"Layer"}                    # the base class: its passes raise NotImplementedError
LAYERS = sorted(EXAMPLES)


def named(name, situation):
    """The name an error about ``situation`` ("input", "dy", "before forward") carries."""
    return SEQUENTIAL_NAMES[situation] if name == "Sequential" else name


def exported_classes():
    return {name for name in nn.__all__ if inspect.isclass(getattr(nn, name))}


def test_every_exported_class_is_covered():
    assert exported_classes() == set(EXAMPLES) | LOSSES | ABSTRACT


def run_forward(layer, shape, dtype=np.float32, training=True):
    """(x, y): a random batch x of ``dtype`` and the layer's output y = forward(x)."""
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    return x, layer.forward(x, training=training)


# ---- backward before forward ---------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", LAYERS)
def test_backward_before_forward_says_call_forward_first(name, backend):
    make, shape = EXAMPLES[name]
    layer = make()
    twin = make()                              # its forward gives a dy of the right shape
    _, y = run_forward(twin, shape)
    with mc.use_backend(backend):
        with pytest.raises(RuntimeError, match=rf"{named(name, 'before forward')}\.backward: "
                                               rf"call forward first"):
            layer.backward(np.ones_like(y))


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_loss_object_before_its_forward_says_call_forward_first(backend):
    ce = nn.SoftmaxCrossEntropy()
    with mc.use_backend(backend):
        with pytest.raises(RuntimeError, match=r"SoftmaxCrossEntropy\.backward: call forward first"):
            ce.backward()
        logits = np.array([[2.0, 0.0], [0.0, 1.0]], np.float32)
        assert ce.forward(logits, [0, 1]) == ce(logits, [0, 1])
        assert ce.backward().shape == (2, 2)


# ---- backward after release: never a gradient computed from nothing ---------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", [n for n in LAYERS if n != "Sequential"])
def test_backward_after_release_raises_or_gives_the_same_gradient(name, backend):
    """predict() releases what forward kept. A backward after that must either refuse
    (RuntimeError) or, for a layer that only needed shapes, return the same dx."""
    make, shape = EXAMPLES[name]
    with mc.use_backend(backend):
        layer = make()
        _, y = run_forward(layer, shape)
        dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
        dx = layer.backward(dy)
        layer.release()
        try:
            dx_after = layer.backward(dy)
        except RuntimeError as e:
            assert f"{name}.backward: call forward first" in str(e)
        else:
            np.testing.assert_array_equal(dx_after, dx)


# ---- dtypes of x ----------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.bool_, np.float16, np.complex64])
@pytest.mark.parametrize("name", LAYERS)
def test_a_non_float_input_is_a_type_error_naming_the_dtype(name, dtype, backend):
    make, shape = EXAMPLES[name]
    x = np.ones(shape, dtype)
    with mc.use_backend(backend):
        with pytest.raises(TypeError, match=rf"{named(name, 'input')}: expected float32 or float64 input, "
                                            rf"got dtype {np.dtype(dtype)}"):
            make().forward(x, training=True)


WITH_PARAMS = [n for n in LAYERS if n.startswith(("Conv", "Dense", "BatchNorm", "Sequential"))]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", WITH_PARAMS)
def test_a_layer_with_params_refuses_an_input_of_another_float_dtype(name, backend):
    make, shape = EXAMPLES[name]
    who = named(name, "input")
    with mc.use_backend(backend):
        with pytest.raises(TypeError, match=rf"{who}: input dtype float64 does not match "
                                            rf"parameter dtype float32"):
            make().forward(np.ones(shape, np.float64), training=True)
        with pytest.raises(TypeError, match=rf"{who}: input dtype float32 does not match "
                                            rf"parameter dtype float64"):
            make().to(np.float64).forward(np.ones(shape, np.float32), training=True)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", [n for n in LAYERS if n not in WITH_PARAMS])
def test_a_layer_without_params_computes_in_its_input_dtype(name, dtype, backend):
    make, shape = EXAMPLES[name]
    with mc.use_backend(backend):
        layer = make()
        _, y = run_forward(layer, shape, dtype)
        dx = layer.backward(np.ones_like(y))
    assert y.dtype == dtype and dx.dtype == dtype


def test_the_loss_refuses_integer_logits():
    with pytest.raises(TypeError, match="cross-entropy: expected float32/float64 logits, got int64"):
        nn.SoftmaxCrossEntropy()(np.zeros((2, 3), np.int64), [0, 1])


# ---- dtypes of dy -----------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", LAYERS)
def test_dy_must_be_a_float_array(name, backend):
    make, shape = EXAMPLES[name]
    who = named(name, "dy")
    with mc.use_backend(backend):
        layer = make()
        _, y = run_forward(layer, shape)
        for dtype in (np.int64, np.float16, np.bool_):
            dy = np.ones(y.shape, dtype)
            with pytest.raises(TypeError, match=rf"{who}\.backward: expected float32 or float64 dy, "
                                                rf"got dtype {dy.dtype}"):
                layer.backward(dy)
        with pytest.raises(TypeError, match=rf"{who}\.backward: expected dy as a numpy array, got list"):
            layer.backward(np.ones(y.shape).tolist())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", [n for n in LAYERS if n != "Sequential"])
def test_a_float64_dy_gives_dx_in_the_forward_dtype(name, backend):
    """dy is converted to the dtype forward ran in: dx (and the weight gradients) keep
    the layer's dtype, and equal what a float32 dy gives."""
    make, shape = EXAMPLES[name]
    with mc.use_backend(backend):
        results = []
        for dy_dtype in (np.float32, np.float64):
            layer = make()
            _, y = run_forward(layer, shape)
            dy = np.random.default_rng(2).standard_normal(y.shape).astype(np.float32)
            dx = layer.backward(dy.astype(dy_dtype))
            assert dx.dtype == np.float32
            results.append([dx] + [g.copy() for g in layer.grads.values()])
    for a, b in zip(*results):
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_array_equal(a, b)
