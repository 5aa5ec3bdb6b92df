"""The optimizer contract, parameter groups, and the learning-rate factor.

An optimizer is given ``(name, p, g)`` tuples — a trainable array ``p`` and
the array ``g`` that backward fills with ``dL/dp`` (same shape, same object
every step). ``step()`` reads every ``g`` and changes every ``p`` IN PLACE
(``p -= ...``): the layer keeps pointing at the same array, so nothing has to
be re-attached. ``g`` is never modified.

Parameter groups
----------------
``params`` is either an iterable of ``(name, p, g)`` tuples (one group), or a
list of group dicts::

    [{"params": [("0.W", W, dW), ...]},                        # the defaults
     {"params": [("0.b", b, db), ...], "weight_decay": 0.0},    # no decay
     {"params": [("1.beta", be, dbe)], "lr_scale": 64.0}]       # a faster lr

A group may override any constructor option (``lr``, ``weight_decay``,
``momentum``, ...) and ``lr_scale`` (default 1). The learning rate used for a
group at a step is

    lr_t = group["lr"] * group["lr_scale"] * optimizer.lr_factor

``lr_factor`` (default 1) is what a schedule sets every step
(``opt.set_lr_factor(schedule(step))``), so all groups scale together.
``lr_t`` is the lr everywhere in the update, including decoupled weight decay
(``p -= lr_t * wd * p``); to keep a group's decay strength while raising its
lr_scale, lower its ``weight_decay`` by the same factor.

Adam's bias correction uses the optimizer's step count, so add all groups
before the first step.

State
-----
Per-parameter buffers (momentum, Adam moments) are keyed by the param's name
and live as long as the optimizer. ``state_dict()`` returns a flat dict of
numpy arrays and JSON-able scalars; ``load_state_dict()`` restores it in place.
"""
import math

import numpy as np


class Optimizer:
    """Base class: groups, validation, the step loop and the state dict.

    Subclasses pass their options (with defaults) to ``__init__`` and define

    * ``check_group(group, where)``  — validate one group's options;
    * ``init_state(p, group)``       — the per-param buffers, a dict of arrays;
    * ``update(p, g, state, group, lr)`` — change ``p`` in place.
    """

    def __init__(self, params, lr, weight_decay=0.0, **options):
        self.defaults = dict(lr=lr, weight_decay=weight_decay, lr_scale=1.0, **options)
        self.lr_factor = 1.0
        self.step_count = 0
        self.param_groups = []
        self.state = {}
        for i, group in enumerate(as_groups(params, type(self).__name__)):
            self.add_param_group(group, where=f"param group {i}")

    # -- building ------------------------------------------------------------
    def add_param_group(self, group, where="param group"):
        """Add one ``{"params": [...], option: value, ...}`` dict."""
        name = type(self).__name__
        unknown = set(group) - set(self.defaults) - {"params"}
        if unknown:
            raise ValueError(f"{name}: {where} has unknown option(s) {sorted(unknown)}; "
                             f"expected some of {sorted(self.defaults)}")
        full = dict(self.defaults)
        full.update({k: v for k, v in group.items() if k != "params"})
        self.check_common(full, f"{name} ({where})")
        self.check_group(full, f"{name} ({where})")
        full["params"] = [check_param(item, name) for item in group["params"]]
        names = [pname for pname, _, _ in full["params"]]
        for pname in names:
            if pname in self.state or names.count(pname) > 1:
                raise ValueError(f"{name}: parameter {pname!r} appears twice "
                                 f"(each param may belong to one group only)")
        for pname, p, _ in full["params"]:       # all checked: now register
            self.state[pname] = self.init_state(p, full)
        self.param_groups.append(full)

    @staticmethod
    def check_common(group, where):
        """lr, weight_decay and lr_scale: finite numbers >= 0 (stored as float)."""
        for key in ("lr", "weight_decay", "lr_scale"):
            group[key] = check_number(group[key], key, where, low=0.0)

    def check_group(self, group, where):
        pass

    def init_state(self, p, group):
        return {}

    def update(self, p, g, state, group, lr):
        raise NotImplementedError

    # -- stepping ------------------------------------------------------------
    def set_lr_factor(self, factor):
        """Set the multiplier a schedule computes for this step (>= 0)."""
        self.lr_factor = check_number(factor, "lr_factor", type(self).__name__, low=0.0)

    def group_lr(self, group):
        """lr_t = group lr * group lr_scale * lr_factor (a Python float)."""
        return group["lr"] * group["lr_scale"] * self.lr_factor

    @property
    def lrs(self):
        """The learning rate each group will use at the next step (for logging)."""
        return [self.group_lr(group) for group in self.param_groups]

    def step(self):
        """Apply one update to every param, from the gradients now in ``g``."""
        self.step_count += 1
        for group in self.param_groups:
            lr = self.group_lr(group)
            for pname, p, g in group["params"]:
                self.update(p, g, self.state[pname], group, lr)

    def zero_grad(self):
        """Fill every gradient array with 0 (in place)."""
        for group in self.param_groups:
            for _, _, g in group["params"]:
                g.fill(0)

    # -- saving and resuming ---------------------------------------------------
    def state_dict(self):
        """A flat snapshot: ``{"type", "step", "lr_factor", "<param>.<buffer>": array}``.

        Arrays are copies, so the snapshot does not change as training goes on.
        Hyperparameters are not included: they come from the constructor.
        """
        out = {"type": type(self).__name__, "step": self.step_count,
               "lr_factor": self.lr_factor}
        for pname, buffers in self.state.items():
            for key, buf in buffers.items():
                out[f"{pname}.{key}"] = buf.copy()
        return out

    def load_state_dict(self, state):
        """Restore a ``state_dict()`` in place; everything is checked before anything changes.

        Raises ValueError naming the param and buffer for a missing key, an
        unexpected key, or a shape that differs from the param's.
        """
        name = type(self).__name__
        saved_type = str(np.asarray(state.get("type", "")))
        if saved_type != name:
            raise ValueError(f"{name}.load_state_dict: the state was saved by {saved_type!r}, "
                             f"expected {name!r}")
        for key in ("step", "lr_factor"):
            if key not in state:
                raise ValueError(f"{name}.load_state_dict: missing {key!r}")
        expected = {f"{p}.{k}": (p, k, buf)
                    for p, buffers in self.state.items() for k, buf in buffers.items()}
        missing = [k for k in expected if k not in state]
        unexpected = [k for k in state if k not in expected and k not in ("type", "step", "lr_factor")]
        if missing:
            raise ValueError(f"{name}.load_state_dict: missing state for {len(missing)} "
                             f"buffer(s), e.g. {missing[:5]} (param.buffer)")
        if unexpected:
            raise ValueError(f"{name}.load_state_dict: {len(unexpected)} unexpected key(s) "
                             f"{unexpected[:5]}: no such param/buffer in this optimizer")
        for key, (pname, buf_name, buf) in expected.items():
            value = np.asarray(state[key])
            if value.shape != buf.shape:
                raise ValueError(f"{name}.load_state_dict: param {pname!r} buffer {buf_name!r}: "
                                 f"expected shape {buf.shape}, received {value.shape}")
        for key, (_, _, buf) in expected.items():
            np.copyto(buf, np.asarray(state[key]))
        self.step_count = int(np.asarray(state["step"]))
        self.lr_factor = float(np.asarray(state["lr_factor"]))

    def __repr__(self):
        groups = ", ".join(
            f"[{len(g['params'])} params, "
            + ", ".join(f"{k}={g[k]}" for k in sorted(self.defaults)) + "]"
            for g in self.param_groups)
        return f"{type(self).__name__}({groups})"


# -- helpers -----------------------------------------------------------------
def momentum_state(p, group):
    """The state of heavy-ball momentum: a velocity buffer like p, or none when mu = 0."""
    return {"momentum": np.zeros_like(p)} if group["momentum"] > 0.0 else {}


def momentum_direction(d, state, group):
    """Heavy-ball momentum on a direction d (shape of p), mu = group["momentum"]:

        v <- mu v + d;   returns v, or d + mu v with Nesterov, or d itself when mu = 0.
    """
    mu = group["momentum"]
    if mu == 0.0:
        return d
    v = state["momentum"]
    v *= mu
    v += d
    if not group["nesterov"]:
        return v
    step = np.multiply(v, mu)
    step += d
    return step


def weight_decay_direction(p, g, group, lr):
    """Apply a group's weight decay ``wd``; return the direction ``d`` the update follows.

    decoupled:  p = p - lr * wd * p (in place, now), d = g
    L2:         d = g + wd * p      (a new array: g is left untouched)
    """
    wd = group["weight_decay"]
    if wd > 0.0 and group["decoupled"]:
        p *= 1.0 - lr * wd
        return g
    if wd > 0.0:
        d = np.multiply(p, wd)
        d += g
        return d
    return g


def as_groups(params, where):
    """Turn ``params`` into a list of group dicts (see the module docstring)."""
    if isinstance(params, dict):
        raise TypeError(f"{where}: params must be (name, p, g) tuples or a list of group "
                        f"dicts, got a single dict (wrap it in a list)")
    params = list(params)
    if params and all(isinstance(item, dict) for item in params):
        for i, group in enumerate(params):
            if "params" not in group:
                raise ValueError(f"{where}: param group {i} has no 'params' key")
        return [dict(group, params=list(group["params"])) for group in params]
    if any(isinstance(item, dict) for item in params):
        raise TypeError(f"{where}: params mixes group dicts and (name, p, g) tuples")
    return [{"params": params}]


def check_param(item, where):
    """Check one ``(name, p, g)``: float arrays of the same shape and dtype."""
    if not (isinstance(item, tuple) and len(item) == 3):
        raise TypeError(f"{where}: expected (name, param, grad) tuples, got {item!r:.80}")
    pname, p, g = item
    if not isinstance(p, np.ndarray) or not isinstance(g, np.ndarray):
        raise TypeError(f"{where}: param {pname!r}: expected numpy arrays, "
                        f"got {type(p).__name__} and {type(g).__name__}")
    if p.dtype not in (np.float32, np.float64):
        raise TypeError(f"{where}: param {pname!r}: expected float32 or float64, got {p.dtype}")
    if g.shape != p.shape or g.dtype != p.dtype:
        raise ValueError(f"{where}: param {pname!r} is {p.dtype}{p.shape} but its gradient "
                         f"is {g.dtype}{g.shape}; expected the same shape and dtype")
    if p is g:
        raise ValueError(f"{where}: param {pname!r}: the gradient is the param array itself")
    if not p.flags.writeable:
        raise ValueError(f"{where}: param {pname!r} is read-only; the optimizer updates it in place")
    return pname, p, g


def check_number(value, key, where, low=None, high=None, high_open=False):
    """Return ``float(value)`` if it is a finite number in range; else a clear ValueError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{where}: {key} must be a number, got {value!r}")
    value = float(value)
    bad = (not math.isfinite(value) or (low is not None and value < low)
           or (high is not None and (value >= high if high_open else value > high)))
    if bad:
        hi = "" if high is None else (f", {high})" if high_open else f", {high}]")
        expected = f"in [{low}{hi}" if hi else f">= {low}"
        raise ValueError(f"{where}: {key} must be a finite number {expected}, got {value}")
    return value


def check_bool(value, key, where):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: {key} must be True or False, got {value!r}")
    return bool(value)


def split_param_groups(named_params, select, **options):
    """Split ``(name, p, g)`` tuples into two groups.

    Returns ``[{"params": rest}, {"params": selected, **options}]`` where
    ``selected`` are the tuples with ``select(name, p)`` true. Both groups are
    kept even when empty, so the group order is always the same.
    """
    rest, selected = [], []
    for item in named_params:
        (selected if select(item[0], item[1]) else rest).append(item)
    return [{"params": rest}, {"params": selected, **options}]


def is_bias_or_norm(name, p):
    """Default no-decay rule: 1-D (or 0-D) arrays — biases, BatchNorm gamma/beta."""
    return p.ndim <= 1


def param_groups_no_decay(named_params, no_decay=is_bias_or_norm, **options):
    """Two groups: weights with decay, and ``no_decay(name, p)`` params without it.

    Extra ``options`` apply to the no-decay group, e.g. ``lr_scale=64.0``.
    """
    return split_param_groups(named_params, no_decay, weight_decay=0.0, **options)
