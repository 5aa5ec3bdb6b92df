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
    """True when p (and its momentum buffer) were updated here: p, g and the buffer are
    float32, C-contiguous and of one shape, and lr is a Python float (as group_lr makes
    it; a NumPy float64 would make the reference step in float64)."""
    v = state.get("momentum")
    arrays = (p, g) if v is None else (p, g, v)
    if type(lr) is not float or not all(
            isinstance(a, np.ndarray) and a.dtype == np.float32 and a.flags.c_contiguous
            and a.shape == p.shape for a in arrays):
        return False
    mu = group["momentum"]
    if mu > 0.0 and v is None:             # no buffer: the reference's error, not a guess
        return False
    sgd_update(p.reshape(-1), g.reshape(-1), np.empty(0, np.float32) if v is None else v.reshape(-1),
               lr, group["weight_decay"], mu, group["nesterov"], group["decoupled"])
    return True
