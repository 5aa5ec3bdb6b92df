"""The elementwise kernels (fast/kernels/relu.py, gelu.py) against the reference formulas
of the layers (minicnn/nn/activations.py), float32 and float64."""
import numpy as np
import pytest

from minicnn.fast.kernels.gelu import gelu_backward, gelu_forward
from minicnn.fast.kernels.relu import (leaky_relu_backward, leaky_relu_forward, relu_backward,
                                       relu_forward)
from minicnn.nn.activations import gelu as gelu_reference
from minicnn.nn.activations import gelu_backward as gelu_backward_reference
from minicnn.nn.activations import leaky_relu as leaky_relu_reference
from minicnn.nn.activations import leaky_relu_backward as leaky_relu_backward_reference
from minicnn.nn.activations import relu as relu_reference
from minicnn.nn.activations import relu_backward as relu_backward_reference

DTYPES = [np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("approximate", [False, True])
def test_gelu_matches_reference(dtype, approximate):
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.standard_normal(5000) * 4, np.linspace(-20, 20, 4001),
                        [0.0, -0.0, 1e-30, -1e-30, 1e30, -1e30]]).astype(dtype)
    dy = rng.standard_normal(x.size).astype(dtype)
    y, dx = np.empty_like(x), np.empty_like(x)
    gelu_forward(x, y, approximate)
    gelu_backward(x, dy, dx, approximate)
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    want_y = gelu_reference(x64, approximate)
    want_dx = gelu_backward_reference(x64, dy64, approximate)
    # GELU' is a sum of two terms that cancel near x = -0.75: measure dx errors
    # against |dy| * (|term 1| + |term 2|), the size of what is being added
    if approximate:
        from scipy.special import expit
        s = expit(2 * np.sqrt(2 / np.pi) * (x64 + 0.044715 * x64 ** 3))
        terms = s + np.abs(2 * x64 * s * (1 - s) * np.sqrt(2 / np.pi) * (1 + 3 * 0.044715 * x64 ** 2))
    else:
        from scipy.special import ndtr
        terms = ndtr(x64) + np.abs(x64) * np.exp(-x64 * x64 / 2) / np.sqrt(2 * np.pi)
    scale = np.abs(dy64) * terms
    if dtype == np.float64:            # libm kernels: agree with scipy to rounding
        np.testing.assert_allclose(y, want_y, rtol=1e-12, atol=1e-300)   # exp(-600): cond. 600
        assert np.all(np.abs(dx - want_dx) <= 1e-12 * scale + 1e-300)
    else:
        ulp = np.spacing(np.abs(want_y).astype(np.float32)).astype(np.float64)
        if approximate:                # float64 polynomials: within ~1/2 ulp of the exact value
            assert np.all(np.abs(y - want_y) <= 0.51 * ulp + 1e-45)
            assert np.all(np.abs(dx - want_dx) <= 1.2e-7 * scale + 1e-45)
        else:                          # float32 polynomials: a few ulp (module docstring)
            assert np.all(np.abs(y - want_y) <= 8 * ulp)
            assert np.all(np.abs(dx - want_dx) <= 4e-7 * scale + 1e-44 * (1 + np.abs(dy64)))
    assert y.dtype == dx.dtype == dtype
    special = np.array([np.inf, np.nan], dtype)
    np.testing.assert_array_equal(gelu_forward(special, np.empty_like(special), approximate),
                                  [np.inf, np.nan])


def test_gelu_float32_tail_is_accurate():
    """Far left the output is tiny but must keep its relative accuracy."""
    from scipy.special import ndtr
    x = np.linspace(-13, -3, 20001).astype(np.float32)
    y = np.empty_like(x)
    gelu_forward(x, y, False)
    x64 = x.astype(np.float64)
    want = x64 * ndtr(x64)
    assert np.max(np.abs(y / want - 1)) < 6e-7          # 5 float32 ulp


def test_gelu_float32_error_over_every_range():
    """A dense sweep of float32 inputs: at most 8 ulp anywhere, under 1 ulp on average,
    correctly rounded 0 (or x) where the exact value leaves float32's range."""
    from scipy.special import ndtr
    x = np.linspace(-20, 20, 2_000_001).astype(np.float32)
    y = np.empty_like(x)
    gelu_forward(x, y, False)
    x64 = x.astype(np.float64)
    want = x64 * ndtr(x64)
    ulps = np.abs(y - want) / np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
    assert ulps.max() <= 8 and ulps.mean() < 1
    assert np.all(y[x < -14.5] == 0) and np.array_equal(y[x > 6], x[x > 6])
    assert np.all(np.diff(y[x > 0]) >= 0)                   # increasing for x > 0 (GELU is)


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_and_leaky_relu_match_reference(dtype):
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.standard_normal(1001), [0.0, -0.0, np.inf, -np.inf]]).astype(dtype)
    dy = rng.standard_normal(x.size).astype(dtype)
    y, dx = np.empty_like(x), np.empty_like(x)
    np.testing.assert_array_equal(relu_forward(x, y), relu_reference(x))
    np.testing.assert_array_equal(relu_backward(x, dy, dx), relu_backward_reference(x, dy))
    a = dtype(0.1)
    np.testing.assert_array_equal(leaky_relu_forward(x, y, a), leaky_relu_reference(x, a))
    np.testing.assert_array_equal(leaky_relu_backward(x, dy, dx, a),
                                  leaky_relu_backward_reference(x, dy, a))
    assert np.isnan(relu_forward(np.array([np.nan], dtype), np.empty(1, dtype))[0])
