"""Helpers shared by the convolution tests (tests/fast): errors, spies on the fast
paths, and one forward + backward of a Conv2D with chosen switches."""
import numpy as np

import minicnn.fast.conv as fast_conv
from minicnn.nn import Conv2D


def rel_err(a, b):
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)


def spy(monkeypatch, name):
    """Record the calls Conv2D's fast backend makes to minicnn.fast.conv.<name> (the
    Winograd and direct drivers it calls into)."""
    calls, real = [], getattr(fast_conv, name)
    monkeypatch.setattr(fast_conv, name, lambda *a, **k: calls.append(name) or real(*a, **k))
    return calls


def forward_backward(C, F, H, padding, x, batch_seed=7, **switches):
    """(y, dx, dW, db) of Conv2D(C, F, 3, padding) on x, with attributes ``switches``
    (allow_winograd, allow_direct, ...) set on the layer first."""
    layer = Conv2D(C, F, 3, padding=padding, rng=1)
    for key, value in switches.items():
        setattr(layer, key, value)
    y = layer.forward(x, training=True)
    dy = np.random.default_rng(batch_seed).standard_normal(y.shape).astype(np.float32)
    return y, layer.backward(dy), layer.grads["W"].copy(), layer.grads["b"].copy()
