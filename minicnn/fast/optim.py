"""The optimizers' fast updates: SGD's step as one pass over each param (kernels/sgd.py).

Registered like a layer's pass, as (SGD, "update"); ``SGD.update`` calls it on the fast
backend. It returns False, having changed nothing, for what it does not handle, and the
reference code runs instead.
"""
import numpy as np

from ..backend import register
from ..optim.sgd import SGD
from .kernels.sgd import sgd_update


@register(SGD, "update")
def sgd_fast_update(optimizer, p, g, state, group, lr):
    """True when p (and its momentum buffer) were updated here; False, nothing changed,
    unless: p, g and the buffer are float32, C-contiguous, of one shape and share no
    memory (the reference reads g after shrinking p: the same numbers only when g is not
    part of p); lr, the momentum and the decay are Python floats (as the optimizer keeps
    them: a NumPy float64 would make the reference's step float64); and a momentum > 0
    has its buffer (else the reference raises its KeyError)."""
    v = state.get("momentum")
    arrays = (p, g) if v is None else (p, g, v)
    mu, wd = group["momentum"], group["weight_decay"]
    if not all(type(s) is float for s in (lr, mu, wd)):
        return False
    if not all(isinstance(a, np.ndarray) and a.dtype == np.float32 and a.flags.c_contiguous
               and a.shape == p.shape for a in arrays):
        return False
    if any(np.may_share_memory(a, b) for i, a in enumerate(arrays) for b in arrays[i + 1:]):
        return False
    if mu > 0.0 and v is None:
        return False
    sgd_update(p.reshape(-1), g.reshape(-1),
               np.empty(0, np.float32) if v is None else v.reshape(-1),
               lr, wd, mu, group["nesterov"], group["decoupled"])
    return True
