"""Patch whitening: the frozen first layer of airbench.

Take every KxK patch p (a vector of K*K*3 values) of some training images.
With the patch covariance  S = cov(p) = V diag(lam) V^T, the filters

    W = [ V / sqrt(lam + eps),  -V / sqrt(lam + eps) ]      (K*K*3, 2*K*K*3)

map patches to decorrelated, unit-variance features (and their negatives, so
a following GELU keeps both signs). Returned as conv weights (K, K, 3, 2*K*K*3).
"""
import numpy as np


def patches(x, k):
    """All k x k patches of x (N, H, W, C) as rows: (N*(H-k+1)*(W-k+1), k*k*C), order (kh, kw, c)."""
    N, H, W, C = x.shape
    OH, OW = H - k + 1, W - k + 1
    out = np.empty((N, OH, OW, k, k, C), dtype=np.float64)
    for kh in range(k):
        for kw in range(k):
            out[:, :, :, kh, kw, :] = x[:, kh:kh + OH, kw:kw + OW, :]
    return out.reshape(-1, k * k * C)


def whitening_weights(x, k=2, eps=5e-4):
    """Conv weights (k, k, C, 2*k*k*C) that whiten k x k patches of x (N, H, W, C)."""
    if x.ndim != 4:
        raise ValueError(f"whitening_weights: expected images (N, H, W, C), got shape {x.shape}")
    p = patches(x, k)
    p = p - p.mean(axis=0)
    cov = p.T @ p / len(p)                                   # (D, D), D = k*k*C
    lam, V = np.linalg.eigh(cov)                             # ascending eigenvalues
    filters = V / np.sqrt(lam + eps)                         # (D, D): column j is filter j
    W = np.concatenate([filters, -filters], axis=1)          # (D, 2D)
    C = x.shape[-1]
    return W.reshape(k, k, C, 2 * k * k * C).astype(x.dtype)
