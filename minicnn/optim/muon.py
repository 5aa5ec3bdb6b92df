"""Muon: momentum SGD whose step for each weight matrix is orthogonalised.

Muon (Keller Jordan, 2024: kellerjordan.github.io/posts/muon, github.com/KellerJordan/Muon;
used for CIFAR-10 in github.com/KellerJordan/cifar10-airbench, airbench94_muon.py) looks
at every weight as a matrix. For a param ``p`` with gradient ``g``, momentum ``mu`` and
learning rate ``lr`` (the group's lr * lr_scale * lr_factor, see base.py):

    v = mu * v + g                        momentum (v starts at 0)
    d = g + mu * v    (Nesterov)          or  d = v
    G = d as a matrix (fan_out, fan_in)
    O = newton_schulz(G)                  about U V^T, where G = U S V^T is the SVD
    p = p - lr * O

Why orthogonalise. The SVD writes the step as a sum of rank-1 directions,
``G = sum_i s_i u_i v_i^T``. In a gradient a few directions usually dominate (large
``s_i``) and the others hardly move at all. ``U V^T`` keeps every direction and gives
each the same size 1: it is the semi-orthogonal matrix nearest to G (in Frobenius
norm), all of G's singular values replaced by 1. Rare directions then move as much as
common ones, and the size of the step (spectral norm about 1) is set by ``lr`` alone,
not by the scale of the gradient.

Newton-Schulz (quintic). An SVD every step would be slow. An odd matrix polynomial of
X acts on X's singular values only (U and V stay), so this iteration pushes all of
them towards 1 with matrix products alone:

    X = G / (||G||_F + eps)               every singular value now in [0, 1]
    if fan_out > fan_in: X = X^T          so that A below is the smaller Gram matrix
    repeat ns_steps times:
        A = X X^T                         (k, k),  k = min(fan_out, fan_in)
        B = b A + c A A
        X = a X + B X                     each singular value s -> a s + b s^3 + c s^5
    transpose back if transposed
    (a, b, c) = (3.4445, -4.7750, 2.0315)

The coefficients give the polynomial a steep slope at 0 (a = 3.4445), so small
singular values grow quickly; the price is that the iteration does not settle at
exactly 1 but keeps the singular values in a band around it (after 5 steps roughly
[0.7, 1.2]). That is close enough to U V^T for training, at the cost of a few
matrix products.

Shapes. minicnn keeps the output axis last: Conv2D ``W`` is (KH, KW, C, F) and Dense
``W`` is (D, F). The matrix is ``G = d.reshape(-1, F).T``, shape (F, KH*KW*C): the
(out, in*kh*kw) view of PyTorch, with the columns in another order, which changes
nothing (permuting G's columns permutes the rows of V the same way). The result is
reshaped back to ``p``'s shape. Every param must have ndim >= 2: biases, BatchNorm
params and other vectors belong to another optimizer (``Chain`` runs the two as one).

Options (airbench94_muon's choice in brackets):

    nesterov          d = g + mu * v instead of d = v                          [True]
    ns_steps          Newton-Schulz steps (default 5)                           [3]
    normalize_weights before the step, rescale p to ||p||_F = sqrt(F)           [True]
                      (a conv followed by BatchNorm computes the same function at any
                      scale of its filters; fixing the scale makes lr an angular step
                      that does not shrink as the weights grow)
    shape_scale       O = O * sqrt(max(1, fan_out / fan_in)), the Muon repository's
                      rule for matrices taller than wide                        [False]
    weight_decay      decoupled, before the step: p = p - lr * wd * p           [0]
    eps               keeps the first division finite for G = 0 (default 1e-7)

The momentum is the SGD form above (as in airbench94_muon). The Muon repository
averages instead (m = beta m + (1 - beta) g); that is ``(1 - beta) * v`` and gives the
same direction, and orthogonalising removes the scale.

Precision: airbench94_muon runs the iteration in bfloat16 on a GPU. NumPy has no
bfloat16; here it runs in the param's dtype (float32 in training), which is more
precise and still fast (BLAS matrix products).

Memory: one momentum buffer per param; during a step, temporaries of p's size (d, X,
B X) and two (k, k) matrices.
"""
import math

import numpy as np

from .base import (Optimizer, check_bool, check_number, check_param, momentum_direction,
                   momentum_state)

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)      # (a, b, c) of s -> a s + b s^3 + c s^5


def newton_schulz(G, steps=5, eps=1e-7):
    """About ``U V^T`` for the matrix ``G = U S V^T`` (m, n): the quintic Newton-Schulz
    iteration of the module docstring. Returns a new (m, n) array of G's dtype."""
    if G.ndim != 2:
        raise ValueError(f"newton_schulz: expected a matrix (2-D), got shape {G.shape}")
    a, b, c = NS_COEFFICIENTS
    X = G / (np.linalg.norm(G) + eps)            # ||X||_F <= 1, so every s <= 1
    tall = X.shape[0] > X.shape[1]
    if tall:
        X = X.T                                  # (k, n) with k <= n
    for _ in range(steps):
        A = X @ X.T                              # (k, k)
        B = b * A + c * (A @ A)                  # (k, k)
        X = a * X + B @ X                        # (k, n)
    return X.T if tall else X


class Muon(Optimizer):
    """Muon(params, lr, momentum=0.95, nesterov=True, ns_steps=5, weight_decay=0.0,
    normalize_weights=False, shape_scale=False, eps=1e-7)"""

    def __init__(self, params, lr, momentum=0.95, nesterov=True, ns_steps=5, weight_decay=0.0,
                 normalize_weights=False, shape_scale=False, eps=1e-7):
        super().__init__(params, lr=lr, momentum=momentum, nesterov=nesterov,
                         ns_steps=ns_steps, weight_decay=weight_decay,
                         normalize_weights=normalize_weights, shape_scale=shape_scale, eps=eps)

    def add_param_group(self, group, where="param group"):
        """As ``Optimizer.add_param_group``; every param must be at least 2-D."""
        group = dict(group, params=list(group["params"]))
        for item in group["params"]:
            pname, p, _ = check_param(item, type(self).__name__)
            if p.ndim < 2:
                raise ValueError(f"Muon ({where}): param {pname!r} has shape {p.shape}; Muon "
                                 f"orthogonalises matrices and needs ndim >= 2 (give biases "
                                 f"and norm params to another optimizer, see Chain)")
        super().add_param_group(group, where)

    def check_group(self, group, where):
        if group["lr"] <= 0.0:
            raise ValueError(f"{where}: lr must be > 0, got {group['lr']} "
                             f"(to freeze a group, set its lr_scale to 0)")
        group["momentum"] = check_number(group["momentum"], "momentum", where,
                                         low=0.0, high=1.0, high_open=True)
        group["nesterov"] = check_bool(group["nesterov"], "nesterov", where)
        if group["nesterov"] and group["momentum"] == 0.0:
            raise ValueError(f"{where}: nesterov=True needs momentum > 0, got momentum=0.0")
        steps = group["ns_steps"]
        if isinstance(steps, (bool, np.bool_)) or not isinstance(steps, (int, np.integer)) \
                or steps < 1:
            raise ValueError(f"{where}: ns_steps must be an integer >= 1, got {steps!r}")
        group["ns_steps"] = int(steps)
        group["normalize_weights"] = check_bool(group["normalize_weights"],
                                                "normalize_weights", where)
        group["shape_scale"] = check_bool(group["shape_scale"], "shape_scale", where)
        group["eps"] = check_number(group["eps"], "eps", where, low=0.0)
        if group["eps"] == 0.0:
            raise ValueError(f"{where}: eps must be > 0 (it keeps G / ||G|| finite), got 0.0")

    def init_state(self, p, group):
        return momentum_state(p, group)

    def update(self, p, g, state, group, lr):
        d = momentum_direction(g, state, group)             # v = mu*v + g; v, or g + mu*v
        if lr == 0.0:                                       # a frozen group: p stays as is
            return
        fan_out = p.shape[-1]
        fan_in = p.size // fan_out
        if group["normalize_weights"]:                      # ||p||_F = sqrt(fan_out)
            norm = float(np.linalg.norm(p))
            if norm > 0.0:
                p *= math.sqrt(fan_out) / norm
        G = d.reshape(fan_in, fan_out).T                    # (fan_out, fan_in)
        O = newton_schulz(G, group["ns_steps"], group["eps"]).T.reshape(p.shape)
        scale = math.sqrt(max(1.0, fan_out / fan_in)) if group["shape_scale"] else 1.0
        wd = group["weight_decay"]
        if wd > 0.0:
            p *= 1.0 - lr * wd                              # p = p - lr*wd*p
        p -= (lr * scale) * O                               # p = p - lr*scale*O


class Chain:
    """Chain(optimizers): several optimizers over disjoint params, driven as one.

    Muon only takes matrices; the biases, BatchNorm params and the last layer go to
    another optimizer (airbench94_muon: SGD). The Trainer drives one optimizer, so
    ``Chain([sgd, muon])`` passes every call on to each member, in order:

        set_lr_factor(f)   every member gets the same factor (one schedule for all)
        step()             each member steps its own params
        lrs, param_groups  the members' lists, concatenated (the live group dicts, so
                           a hook that sets a group's lr_scale reaches the member)
        state_dict()       {"type": "Chain", "0": first member's state_dict(), "1": ...}
        load_state_dict()  checks every member's part; a failure restores the state
                           held before, so nothing changes
    """

    def __init__(self, optimizers):
        optimizers = list(optimizers)
        if not optimizers or not all(isinstance(o, Optimizer) for o in optimizers):
            raise TypeError(f"Chain: expected a non-empty list of optimizers, got "
                            f"{[type(o).__name__ for o in optimizers]}")
        owner = {}
        for opt in optimizers:
            for group in opt.param_groups:
                for pname, _, _ in group["params"]:
                    if pname in owner:
                        raise ValueError(f"Chain: parameter {pname!r} is in both "
                                         f"{owner[pname]} and {type(opt).__name__}; each "
                                         f"param must belong to one optimizer")
                    owner[pname] = type(opt).__name__
        self.optimizers = optimizers

    @property
    def param_groups(self):
        return [group for opt in self.optimizers for group in opt.param_groups]

    @property
    def lrs(self):
        return [lr for opt in self.optimizers for lr in opt.lrs]

    @property
    def lr_factor(self):
        return self.optimizers[0].lr_factor

    def set_lr_factor(self, factor):
        for opt in self.optimizers:
            opt.set_lr_factor(factor)

    def step(self):
        for opt in self.optimizers:
            opt.step()

    def zero_grad(self):
        for opt in self.optimizers:
            opt.zero_grad()

    def state_dict(self):
        out = {"type": "Chain"}
        out.update({str(i): opt.state_dict() for i, opt in enumerate(self.optimizers)})
        return out

    def load_state_dict(self, state):
        saved_type = str(np.asarray(state.get("type", "")))
        if saved_type != "Chain":
            raise ValueError(f"Chain.load_state_dict: the state was saved by {saved_type!r}, "
                             f"expected 'Chain'")
        keys = [str(i) for i in range(len(self.optimizers))]
        if sorted(k for k in state if k != "type") != sorted(keys):
            raise ValueError(f"Chain.load_state_dict: expected the parts {keys} (one per "
                             f"optimizer), got {sorted(k for k in state if k != 'type')}")
        before = [opt.state_dict() for opt in self.optimizers]
        try:
            for key, opt in zip(keys, self.optimizers):
                opt.load_state_dict(state[key])
        except ValueError:
            for opt, saved in zip(self.optimizers, before):
                opt.load_state_dict(saved)
            raise

    def __repr__(self):
        return "Chain([" + ", ".join(repr(opt) for opt in self.optimizers) + "])"
