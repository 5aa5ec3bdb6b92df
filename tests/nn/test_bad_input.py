"""Bad input gets a clear error naming the layer, what was expected and what arrived."""
import numpy as np
import pytest

import minicnn as mc


def test_wrong_number_of_dimensions():
    with pytest.raises(ValueError, match=r"Conv2D: expected a 4-D input \(N, H, W, C\), got shape \(32, 32, 3\)"):
        mc.Conv2D(3, 8).forward(np.zeros((32, 32, 3), np.float32))
    with pytest.raises(ValueError, match=r"Dense: expected a 2-D input \(N, D\), got shape \(2, 4, 4, 1\)"):
        mc.Dense(16, 2).forward(np.zeros((2, 4, 4, 1), np.float32))


def test_wrong_channel_count():
    with pytest.raises(ValueError, match=r"Conv2D: expected 3 channels in the last axis, got shape \(2, 3, 32, 32\)"):
        mc.Conv2D(3, 8).forward(np.zeros((2, 3, 32, 32), np.float32))   # NCHW by mistake
    with pytest.raises(ValueError, match="expected 8 channels"):
        mc.BatchNorm2D(8).forward(np.zeros((2, 4, 4, 3), np.float32))


def test_non_float_input():
    with pytest.raises(TypeError, match="Conv2D: expected float32 or float64 input, got dtype uint8"):
        mc.Conv2D(3, 8).forward(np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(TypeError, match="expected a numpy array, got list"):
        mc.ReLU().forward([1.0, 2.0])
    with pytest.raises(TypeError, match="does not match parameter dtype float32"):
        mc.Conv2D(3, 8).forward(np.zeros((1, 8, 8, 3), np.float64))


def test_empty_batch():
    for layer in (mc.Conv2D(3, 4), mc.ReLU(), mc.MaxPool2D(), mc.BatchNorm2D(3)):
        with pytest.raises(ValueError, match="empty batch"):
            layer.forward(np.zeros((0, 8, 8, 3), np.float32))
    model = mc.Sequential([mc.Flatten(), mc.Dense(3, 2)])
    with pytest.raises(ValueError, match="empty"):
        model.predict(np.zeros((0, 1, 1, 3), np.float32))


def test_input_too_small_and_bad_backward():
    with pytest.raises(ValueError, match="smaller than the 3x3 kernel"):
        mc.Conv2D(3, 4, 3, padding=0).forward(np.zeros((1, 2, 2, 3), np.float32))
    with pytest.raises(ValueError, match="smaller than the pool window"):
        mc.MaxPool2D(3).forward(np.zeros((1, 2, 2, 3), np.float32))
    conv = mc.Conv2D(3, 4)
    conv.forward(np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"expected dy of shape \(2, 8, 8, 4\), got \(2, 8, 8, 5\)"):
        conv.backward(np.zeros((2, 8, 8, 5), np.float32))


def test_batchnorm_needs_more_than_one_value_in_training():
    with pytest.raises(ValueError, match="more than one value per channel"):
        mc.BatchNorm1D(3).forward(np.zeros((1, 3), np.float32), training=True)


@pytest.mark.parametrize("make,match", [
    (lambda: mc.Conv2D(0, 4), "in_channels must be a positive int, got 0"),
    (lambda: mc.Conv2D(3, 4, stride=0), "stride must be a positive int"),
    (lambda: mc.Conv2D(3, 4, padding="full"), "padding must be a non-negative int, 'same' or 'valid', got 'full'"),
    (lambda: mc.Conv2D(3, 4, init="xavier"), "unknown init 'xavier'"),
    (lambda: mc.MaxPool2D(0), "pool_size must be a positive int"),
    (lambda: mc.Dropout(1.0), r"must be in \[0, 1\), got 1.0"),
    (lambda: mc.LeakyReLU(-0.5), "alpha must be in"),
    (lambda: mc.BatchNorm2D(4, momentum=2), "momentum must be in"),
    (lambda: mc.Sequential([mc.ReLU(), "relu"]), "item 1 is a str, expected a Layer"),
    (lambda: mc.Sequential([]), "at least one layer"),
])
def test_constructor_arguments_are_validated(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()
