"""The frozen patch-whitening first layer of airbench (minicnn/zoo/whitening.py)."""
import numpy as np

from minicnn.zoo import patches, whitening_weights


def test_whitening_decorrelates_patches(rng):
    # Correlated channels: the whitened 2x2 patch features must have identity covariance.
    base = rng.standard_normal((64, 12, 12, 1))
    x = np.concatenate([base, 0.5 * base + 0.1 * rng.standard_normal(base.shape),
                        rng.standard_normal(base.shape)], axis=3)
    W = whitening_weights(x, 2, eps=0.0)
    assert W.shape == (2, 2, 3, 24)
    p = patches(x, 2)
    feats = (p - p.mean(0)) @ W.reshape(12, 24)[:, :12]
    np.testing.assert_allclose(np.cov(feats.T, bias=True), np.eye(12), atol=1e-6)
    np.testing.assert_array_equal(W[..., 12:], -W[..., :12])
