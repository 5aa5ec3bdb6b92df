"""Weight initialisers. Every one draws from a seeded ``np.random.Generator``.

fan_in  = number of inputs feeding one output  (KH*KW*C for a conv, D for Dense)
fan_out = number of outputs one input feeds    (KH*KW*F for a conv, F for Dense)

he_normal      W ~ N(0, 2 / fan_in)                      (He et al. 2015, for ReLU)
glorot_uniform W ~ U(-a, a),  a = sqrt(6 / (fan_in + fan_out))  (Glorot & Bengio 2010)
"""
import numpy as np

INITS = ("he", "glorot")


def as_rng(rng):
    """Accept a Generator, an int seed or None (seed 0) and return a Generator."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng(0)
    if isinstance(rng, (int, np.integer)):
        return np.random.default_rng(int(rng))
    raise TypeError(f"expected a numpy Generator, an int seed or None, got {type(rng).__name__}")


def init_weight(shape, fan_in, fan_out, init, rng, dtype):
    if init == "he":
        w = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    elif init == "glorot":
        a = np.sqrt(6.0 / (fan_in + fan_out))
        w = rng.uniform(-a, a, size=shape)
    else:
        raise ValueError(f"unknown init {init!r}: expected one of {INITS}")
    return w.astype(dtype)
