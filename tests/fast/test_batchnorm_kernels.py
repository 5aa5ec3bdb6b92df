"""The BatchNorm kernels (fast/kernels/batchnorm.py) against their NumPy twins."""
import numpy as np
import pytest

from minicnn.fast.kernels.batchnorm import (affine_backward, dsums_partials, dsums_reference,
                                            moments_partials, moments_reference, normalize)

DTYPES = [np.float32, np.float64]
TOL = {np.float32: 1e-5, np.float64: 1e-12}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,C,offset", [(1, 3, 0.0), (7, 5, 0.0), (1000, 16, 0.0), (4099, 3, 1e4)])
def test_batchnorm_kernels_match_reference(dtype, m, C, offset):
    rng = np.random.default_rng(3)
    x2 = (rng.standard_normal((m, C)) + offset).astype(dtype)       # offset: |mean| >> std
    dy2 = rng.standard_normal((m, C)).astype(dtype)
    B = min(m, 16)
    shift = x2[0].astype(np.float64)
    S = moments_partials(x2, shift, np.empty((B, 2, C))).sum(axis=0)
    mu, var = shift + S[0] / m, (S[1] - S[0] ** 2 / m) / m
    mu_ref, var_ref = moments_reference(x2)
    np.testing.assert_allclose(mu, mu_ref, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(var, var_ref, rtol=1e-9, atol=1e-13)
    D = dsums_partials(x2, dy2, mu, np.empty((B, 2, C))).sum(axis=0)
    for got, want in zip(D, dsums_reference(x2, dy2, mu)):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    a, beta = rng.uniform(0.5, 2, C).astype(dtype), rng.standard_normal(C).astype(dtype)
    mu_t = mu.astype(dtype)
    y2 = normalize(x2, mu_t, a, beta, np.empty_like(x2))
    np.testing.assert_allclose(y2, (x2 - mu_t) * a + beta, rtol=TOL[dtype], atol=TOL[dtype])
    p, q, r = (rng.standard_normal(C).astype(dtype) for _ in range(3))
    dx2 = affine_backward(x2, dy2, mu_t, p, q, r, np.empty_like(x2))
    np.testing.assert_allclose(dx2, p * dy2 + q * (x2 - mu_t) + r, rtol=TOL[dtype], atol=TOL[dtype])
