"""Adam and AdamW, with bias correction.

For each param ``p`` with gradient ``g``, at step ``t = 1, 2, ...`` and
learning rate ``lr`` (the group's lr * lr_scale * lr_factor, see base.py):

    Adam  (L2 decay):        d = g + wd * p
    AdamW (decoupled decay): p = p - lr * wd * p        (applied first; d = g)

    m = b1 * m + (1 - b1) * d                 first moment,  starts at 0
    v = b2 * v + (1 - b2) * d**2              second moment, starts at 0
    m_hat = m / (1 - b1**t)                   bias correction: undoes the pull
    v_hat = v / (1 - b2**t)                   towards the zero start
    p = p - lr * m_hat / (sqrt(v_hat) + eps)

On the first step ``m_hat = d`` and ``v_hat = d**2``, so every entry moves by
``lr * d / (|d| + eps)``, about ``lr * sign(d)``. The decoupled decay is
multiplied by the current ``lr`` (PyTorch's AdamW convention).

Shapes: ``m`` and ``v`` have the shape and dtype of ``p`` (memory: 2x the
params), plus one temporary of ``p``'s size during a step (two with L2 decay). ``t`` is the
optimizer's ``step_count`` and is saved in ``state_dict()``.
"""
import math

import numpy as np

from .base import Optimizer, check_bool, check_number, weight_decay_direction


class Adam(Optimizer):
    """Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False)"""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 decoupled=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         decoupled=decoupled)

    def check_group(self, group, where):
        betas = group["betas"]
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise ValueError(f"{where}: betas must be a pair (b1, b2), got {betas!r}")
        group["betas"] = tuple(check_number(b, f"betas[{i}]", where, low=0.0, high=1.0,
                                            high_open=True) for i, b in enumerate(betas))
        group["eps"] = check_number(group["eps"], "eps", where, low=0.0)
        if group["eps"] == 0.0:
            raise ValueError(f"{where}: eps must be > 0 (it keeps the division finite), got 0.0")
        group["decoupled"] = check_bool(group["decoupled"], "decoupled", where)

    def init_state(self, p, group):
        return {"m": np.zeros_like(p), "v": np.zeros_like(p)}

    def update(self, p, g, state, group, lr):
        (b1, b2), eps = group["betas"], group["eps"]
        t = self.step_count
        m, v = state["m"], state["v"]
        d = weight_decay_direction(p, g, group, lr)     # d = g (+ wd*p), or p shrunk
        tmp = np.multiply(d, 1.0 - b1)                  # m = b1*m + (1-b1)*d
        m *= b1
        m += tmp
        np.square(d, out=tmp)                           # v = b2*v + (1-b2)*d**2
        tmp *= 1.0 - b2
        v *= b2
        v += tmp
        # p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps), which is the formula above
        bc1, bc2 = 1.0 - b1 ** t, 1.0 - b2 ** t
        np.sqrt(v, out=tmp)
        tmp *= 1.0 / math.sqrt(bc2)
        tmp += eps
        np.divide(m, tmp, out=tmp)
        tmp *= lr / bc1
        p -= tmp


class AdamW(Adam):
    """AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)

    Adam with decoupled weight decay: ``p = p - lr * wd * p`` each step.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         decoupled=True)
