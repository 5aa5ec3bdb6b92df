"""Helpers shared by the tests: errors, spies on the fast paths, one forward + backward
of a Conv2D with chosen switches (tests/fast); the example script as a module
(tests/examples); pickles written the way Python 2 wrote the official CIFAR files
(tests/data, tests/fuzz)."""
import importlib.util
import pickle
import struct
from pathlib import Path

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


def load_example(name="train_cifar10"):
    """examples/<name>.py as a module (its main() is not run)."""
    path = Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Py2BytesPickler(pickle._Pickler):
    """Writes bytes the way Python 2 did (BINSTRING), like the official files."""
    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj):
        self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)
    dispatch[bytes] = save_bytes


class Py2Pickler(Py2BytesPickler):
    """Also writes ASCII str as BINSTRING, as Python 2 wrote its str."""
    dispatch = dict(Py2BytesPickler.dispatch)

    def save_str(self, obj):
        self.save_bytes(obj.encode("ascii")) if obj.isascii() else super().save_str(obj)
    dispatch[str] = save_str
