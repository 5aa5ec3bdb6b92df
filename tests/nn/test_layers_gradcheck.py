"""Every layer's backward against central differences, in float64 (rel. error < 1e-6)."""
import numpy as np
import pytest

import minicnn as mc
from minicnn.gradcheck import check_layer, relative_error

TOL = 1e-6


def assert_grads_ok(errors):
    assert errors, "no gradients were checked"
    bad = {k: v for k, v in errors.items() if not v < TOL}
    assert not bad, f"relative errors above {TOL}: {bad}"


@pytest.mark.parametrize("taps", [False, True], ids=["im2col", "taps"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", [0, 1, "same"])
@pytest.mark.parametrize("kernel", [3, 2])
def test_conv2d(rng, stride, padding, kernel, taps):
    layer = mc.Conv2D(3, 4, kernel, stride=stride, padding=padding, rng=1).to(np.float64)
    layer.taps_min_padding = 0.0 if taps else 2.0           # both paths, whatever the shape
    x = rng.standard_normal((2, 7, 6, 3))          # odd, non-square input
    errors = check_layer(layer, x)
    assert set(errors) == {"x", "W", "b"}
    assert_grads_ok(errors)


def test_conv2d_batch_of_one_no_bias(rng):
    layer = mc.Conv2D(2, 3, 3, bias=False, rng=2).to(np.float64)
    errors = check_layer(layer, rng.standard_normal((1, 5, 5, 2)))
    assert set(errors) == {"x", "W"}
    assert_grads_ok(errors)


def test_conv2d_many_chunks(rng):
    # A tiny chunk budget forces one image per chunk: the chunk loop must add up.
    layer = mc.Conv2D(2, 3, 3, rng=3, max_chunk_bytes=1).to(np.float64)
    assert_grads_ok(check_layer(layer, rng.standard_normal((3, 5, 4, 2))))


@pytest.mark.parametrize("layer", [mc.ReLU(), mc.LeakyReLU(0.1), mc.GELU(), mc.GELU(approximate=True)],
                         ids=repr)
def test_activations(rng, layer):
    x = rng.standard_normal((2, 4, 3, 5))
    x[np.abs(x) < 1e-3] = 0.5                        # stay away from the kink at 0
    assert_grads_ok(check_layer(layer, x))


@pytest.mark.parametrize("k,s,shape", [(2, 2, (2, 6, 6, 3)), (3, 2, (2, 7, 7, 2)),
                                       (3, 1, (1, 5, 6, 2)), (2, 2, (2, 7, 5, 2)), (3, 3, (2, 3, 3, 4))])
def test_maxpool(rng, k, s, shape):
    assert_grads_ok(check_layer(mc.MaxPool2D(k, s), rng.standard_normal(shape)))


@pytest.mark.parametrize("k,s", [(2, 2), (3, 2), (3, 1)])
def test_avgpool(rng, k, s):
    assert_grads_ok(check_layer(mc.AvgPool2D(k, s), rng.standard_normal((2, 7, 6, 3))))


@pytest.mark.parametrize("layer", [mc.GlobalAvgPool2D(), mc.GlobalMaxPool2D()], ids=repr)
def test_global_pools(rng, layer):
    assert_grads_ok(check_layer(layer, rng.standard_normal((2, 3, 5, 4))))


def test_dense_and_flatten(rng):
    assert_grads_ok(check_layer(mc.Dense(6, 4, rng=0).to(np.float64), rng.standard_normal((3, 6))))
    assert_grads_ok(check_layer(mc.Dense(6, 4, bias=False, scale=1 / 9, rng=0).to(np.float64),
                                rng.standard_normal((1, 6))))
    assert_grads_ok(check_layer(mc.Flatten(), rng.standard_normal((2, 3, 2, 4))))


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("freeze_scale", [False, True])
def test_batchnorm2d(rng, training, freeze_scale):
    layer = mc.BatchNorm2D(3, freeze_scale=freeze_scale).to(np.float64)
    layer.params["gamma"][...] = rng.uniform(0.5, 1.5, 3)
    layer.params["beta"][...] = rng.standard_normal(3)
    layer.buffers["running_mean"][...] = rng.standard_normal(3)
    layer.buffers["running_var"][...] = rng.uniform(0.5, 2, 3)
    errors = check_layer(layer, rng.standard_normal((2, 3, 4, 3)) * 2 + 1, training=training)
    assert ("gamma" in errors) == (not freeze_scale)
    assert_grads_ok(errors)


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm1d(rng, training):
    layer = mc.BatchNorm1D(4).to(np.float64)
    layer.params["gamma"][...] = rng.uniform(0.5, 1.5, 4)
    assert_grads_ok(check_layer(layer, rng.standard_normal((5, 4)), training=training))


def test_batchnorm_batch_of_one_eval(rng):
    layer = mc.BatchNorm2D(2).to(np.float64)
    assert_grads_ok(check_layer(layer, rng.standard_normal((1, 3, 3, 2)), training=False))


@pytest.mark.parametrize("training", [True, False])
def test_dropout(rng, training):
    layer = mc.Dropout(0.3, rng=5)
    state = layer.rng.bit_generator.state

    def same_mask():
        layer.rng.bit_generator.state = state

    assert_grads_ok(check_layer(layer, rng.standard_normal((3, 4, 4, 2)), training=training,
                                before_forward=same_mask))


def test_checker_catches_a_wrong_backward(rng):
    """The checker itself must fail a layer whose backward is wrong."""
    class BadReLU(mc.ReLU):
        def backward(self, dy):
            return super().backward(dy) * 1.01
    errors = check_layer(BadReLU(), rng.standard_normal((2, 3, 3, 2)) + 0.01)
    assert errors["x"] > 1e-3
    assert relative_error(np.ones(3), np.ones(3)) == 0.0
