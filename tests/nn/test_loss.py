import numpy as np
import pytest

from minicnn.gradcheck import numerical_gradient, relative_error
from minicnn.nn.loss import SoftmaxCrossEntropy, softmax_cross_entropy


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("N", [1, 5])
def test_gradient_matches_central_differences(rng, smoothing, N):
    z = rng.standard_normal((N, 7))
    y = rng.integers(0, 7, N)
    _, dz = softmax_cross_entropy(z, y, smoothing)
    num = numerical_gradient(lambda: softmax_cross_entropy(z, y, smoothing)[0], z)
    assert relative_error(dz, num) < 1e-6


def test_known_value_and_stability():
    # Uniform logits: loss = log K, whatever the label.
    loss, _ = softmax_cross_entropy(np.zeros((2, 10)), np.array([3, 9]))
    assert loss == pytest.approx(np.log(10))
    # Huge logits must not overflow (log-sum-exp).
    z = np.array([[1000.0, 0.0, -1000.0]], dtype=np.float32)
    loss, dz = softmax_cross_entropy(z, np.array([0]))
    assert np.isfinite(loss) and loss == pytest.approx(0.0, abs=1e-6)
    assert dz.dtype == np.float32 and np.all(np.isfinite(dz))
    loss, _ = softmax_cross_entropy(z, np.array([2]))
    assert loss == pytest.approx(2000.0, rel=1e-6)


def test_label_smoothing_value():
    # With eps smoothing, q = (1-eps)*onehot + eps/K; loss = -sum q log p.
    z = np.array([[2.0, 0.0, 0.0]])
    logp = z - np.log(np.exp(z).sum())
    q = np.array([0.8 + 0.2 / 3, 0.2 / 3, 0.2 / 3])
    loss, _ = softmax_cross_entropy(z, np.array([0]), 0.2)
    assert loss == pytest.approx(-(q * logp).sum())


def test_object_form_matches_function(rng):
    z = rng.standard_normal((4, 3))
    y = np.array([0, 1, 2, 1])
    ce = SoftmaxCrossEntropy(label_smoothing=0.1)
    loss = ce(z, y)
    ref_loss, ref_dz = softmax_cross_entropy(z, y, 0.1)
    assert loss == ref_loss
    np.testing.assert_array_equal(ce.backward(), ref_dz)


@pytest.mark.parametrize("labels,match", [
    (np.array([0, 10]), r"labels must be in \[0, 9\], got values from 0 to 10"),
    (np.array([-1, 2]), r"labels must be in \[0, 9\]"),
    (np.array([0.0, 1.0]), "integer labels"),
    (np.array([0, 1, 2]), r"expected labels of shape \(2,\)"),
])
def test_bad_labels(labels, match):
    with pytest.raises((ValueError, TypeError), match=match):
        softmax_cross_entropy(np.zeros((2, 10)), labels)


def test_bad_logits():
    with pytest.raises(ValueError, match="empty batch"):
        softmax_cross_entropy(np.zeros((0, 10)), np.zeros(0, dtype=int))
    with pytest.raises(ValueError, match=r"shape \(N, K\)"):
        softmax_cross_entropy(np.zeros(10), np.zeros(1, dtype=int))
    with pytest.raises(TypeError, match="float32/float64"):
        softmax_cross_entropy(np.zeros((2, 3), dtype=np.int64), np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match="label_smoothing"):
        softmax_cross_entropy(np.zeros((2, 3)), np.zeros(2, dtype=int), 1.5)
