"""Averages of the weights over training: EMA and Lookahead.

EMA keeps a shadow copy ``s`` of each array ``p`` and, every ``every``-th call
of ``update()``,

    s = decay * s + (1 - decay) * p

The shadow starts as a copy of ``p``. Evaluate with the averaged weights by
swapping them in and out::

    with ema.averaged():          # params hold the averages inside the block
        evaluate(model)

Lookahead (Zhang et al. 2019, as used in airbench) keeps "slow" weights and,
every ``k``-th call of ``update()``, pulls them towards the "fast" weights the
optimizer trains and then resets the fast weights to them:

    slow = slow + alpha * (fast - slow)        (= an EMA step with decay = 1 - alpha)
    fast = slow

Both take ``(name, array)`` or ``(name, param, grad)`` tuples, so buffers such
as BatchNorm running statistics can be averaged too. Shadows have the dtype of
their arrays (float32 in training). Memory: one copy of every array.
"""
from contextlib import contextmanager

import numpy as np

from .base import check_number


class EMA:
    """EMA(named_params, decay, every=1): exponential moving average of weights."""

    def __init__(self, named_params, decay, every=1):
        where = type(self).__name__
        self.decay = check_number(decay, "decay", where, low=0.0, high=1.0)
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"{where}: every must be an integer >= 1, got {every!r}")
        self.every = every
        self.arrays = {}
        for item in named_params:
            if not (isinstance(item, tuple) and len(item) in (2, 3)):
                raise TypeError(f"{where}: expected (name, array) or (name, param, grad) "
                                f"tuples, got {item!r:.80}")
            name, p = item[0], item[1]
            if not isinstance(p, np.ndarray) or p.dtype.kind != "f":
                raise TypeError(f"{where}: {name!r} must be a float numpy array, got "
                                f"{getattr(p, 'dtype', type(p).__name__)}")
            if name in self.arrays:
                raise ValueError(f"{where}: {name!r} appears twice")
            self.arrays[name] = p
        self.shadow = {name: p.copy() for name, p in self.arrays.items()}
        self.calls = 0          # update() calls so far
        self.num_updates = 0    # averaging steps actually taken

    def update(self):
        """Call once per training step; averages on every ``every``-th call. Returns True if it did."""
        self.calls += 1
        if self.calls % self.every:
            return False
        d = self.decay
        for name, p in self.arrays.items():
            s = self.shadow[name]
            s *= d                                  # s = d*s + (1-d)*p
            s += (1.0 - d) * p
        self.num_updates += 1
        return True

    def swap(self):
        """Exchange the values of the params and their shadows (in place; calling twice undoes it)."""
        for name, p in self.arrays.items():
            s = self.shadow[name]
            tmp = p.copy()
            np.copyto(p, s)
            np.copyto(s, tmp)

    @contextmanager
    def averaged(self):
        """Params hold the averaged values inside the ``with`` block, the trained ones after."""
        self.swap()
        try:
            yield self
        finally:
            self.swap()

    def copy_to(self):
        """Overwrite the params with the averages, for good (e.g. at the end of training)."""
        for name, p in self.arrays.items():
            np.copyto(p, self.shadow[name])

    # -- saving and resuming ---------------------------------------------------
    def state_dict(self):
        """``{"calls", "num_updates", "shadow.<name>": array}`` (array copies)."""
        out = {"calls": self.calls, "num_updates": self.num_updates}
        out.update({f"shadow.{name}": s.copy() for name, s in self.shadow.items()})
        return out

    def load_state_dict(self, state):
        """Restore in place; a missing or unexpected name, or a wrong shape, raises ValueError."""
        where = f"{type(self).__name__}.load_state_dict"
        expected = {f"shadow.{name}": name for name in self.shadow}
        missing = [k for k in expected if k not in state]
        unexpected = [k for k in state if k not in expected and k not in ("calls", "num_updates")]
        if missing or unexpected or "calls" not in state or "num_updates" not in state:
            raise ValueError(f"{where}: missing keys {missing[:5]}, unexpected keys "
                             f"{unexpected[:5]} (calls/num_updates present: "
                             f"{'calls' in state}/{'num_updates' in state})")
        for key, name in expected.items():
            got = np.shape(state[key])
            if got != self.shadow[name].shape:
                raise ValueError(f"{where}: {name!r}: expected shape "
                                 f"{self.shadow[name].shape}, received {got}")
        for key, name in expected.items():
            np.copyto(self.shadow[name], np.asarray(state[key]))
        self.calls = int(np.asarray(state["calls"]))
        self.num_updates = int(np.asarray(state["num_updates"]))


class Lookahead(EMA):
    """Lookahead(named_params, alpha=0.5, k=5): every k calls, slow += alpha*(fast - slow); fast = slow."""

    def __init__(self, named_params, alpha=0.5, k=5):
        alpha = check_number(alpha, "alpha", "Lookahead", low=0.0, high=1.0)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"Lookahead: k must be an integer >= 1, got {k!r}")
        super().__init__(named_params, decay=1.0 - alpha, every=k)
        self.alpha = alpha

    def update(self):
        """Call once per training step, after ``optimizer.step()``. Returns True on a sync step."""
        synced = super().update()
        if synced:
            self.copy_to()
        return synced
