"""Stochastic gradient descent with momentum, Nesterov and weight decay.

For each param ``p`` with gradient ``g``, at learning rate ``lr`` (the group's
lr * lr_scale * lr_factor, see base.py), weight decay ``wd`` and momentum ``mu``:

    L2 decay (decoupled=False):   d = g + wd * p          (decay joins the gradient,
                                                            so momentum carries it too)
    decoupled (decoupled=True):   p = p - lr * wd * p     (applied first; d = g)

    no momentum:   p = p - lr * d
    momentum:      v = mu * v + d
                   p = p - lr * v
    Nesterov:      v = mu * v + d
                   p = p - lr * (d + mu * v)

This is PyTorch's ``torch.optim.SGD`` with ``dampening=0``: ``v`` starts at 0,
so after the first step ``v = d``. The decoupled decay is multiplied by the
current ``lr`` (as in PyTorch's AdamW), so it follows the schedule; its
strength per step is ``lr * wd``, not ``wd``.

Shapes: ``v`` has the shape and dtype of ``p``. Memory: one buffer per param
with momentum, plus up to three temporaries of ``p``'s size during a step of the
reference code (``update_reference``, below). On the fast backend a float32 param
takes the same step as one pass with no temporaries (minicnn/fast/kernels/sgd.py),
rounding as the reference does: the same bits.
"""

from .. import backend
from .base import (Optimizer, check_bool, check_number, momentum_direction, momentum_state,
                   weight_decay_direction)


class SGD(Optimizer):
    """SGD(params, lr, momentum=0.0, nesterov=False, weight_decay=0.0, decoupled=False)"""

    def __init__(self, params, lr, momentum=0.0, nesterov=False, weight_decay=0.0,
                 decoupled=False):
        super().__init__(params, lr=lr, momentum=momentum, nesterov=nesterov,
                         weight_decay=weight_decay, decoupled=decoupled)

    def check_group(self, group, where):
        group["momentum"] = check_number(group["momentum"], "momentum", where,
                                         low=0.0, high=1.0, high_open=True)
        group["nesterov"] = check_bool(group["nesterov"], "nesterov", where)
        group["decoupled"] = check_bool(group["decoupled"], "decoupled", where)
        if group["nesterov"] and group["momentum"] == 0.0:
            raise ValueError(f"{where}: nesterov=True needs momentum > 0, got momentum=0.0")

    def init_state(self, p, group):
        return momentum_state(p, group)

    def update(self, p, g, state, group, lr):
        """One param's step, on the active backend. The fast one may decline (it returns
        False): then, as for a subclass with its own update_reference, the reference runs."""
        if backend.current_backend() == "fast":
            fast = backend.fast_implementation(type(self), "update")
            if fast is not None and fast(self, p, g, state, group, lr):
                return
        self.update_reference(p, g, state, group, lr)

    def update_reference(self, p, g, state, group, lr):
        d = weight_decay_direction(p, g, group, lr)     # d = g (+ wd*p), or p shrunk
        step = momentum_direction(d, state, group)      # v = mu*v + d; v, or d + mu*v
        p -= lr * step                                  # p = p - lr*step
