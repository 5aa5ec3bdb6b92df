"""Learning-rate schedules: ``factor = schedule(step)``, a multiplier of the base lr.

Each function below checks its arguments and returns a ``Schedule``: a
stateless callable of the step number (0, 1, 2, ...). There is nothing to save
when checkpointing — resuming at step ``s`` just calls ``schedule(s)``. Use::

    schedule = warmup_linear(total_steps, warmup_steps=total_steps // 5, start=0.2)
    for step in range(start_step, total_steps):
        opt.set_lr_factor(schedule(step))
        ...
        opt.step()

With ``T = total_steps`` and ``W = warmup_steps``, steps past ``T`` keep the
final value. Warmup is linear from ``start`` at step 0 to 1 at step ``W``.
"""
import math


class Schedule:
    """A named, stateless ``step -> float`` function (checks the step, returns a float)."""

    def __init__(self, fn, description):
        self.fn = fn
        self.description = description

    def __call__(self, step):
        if isinstance(step, bool) or not hasattr(step, "__index__"):
            raise TypeError(f"{self.description}: step must be an integer, got {step!r}")
        step = int(step)
        if step < 0:
            raise ValueError(f"{self.description}: step must be >= 0, got {step}")
        return float(self.fn(step))

    def __repr__(self):
        return self.description


def constant(value=1.0):
    """factor(s) = value."""
    value = _number(value, "value", "constant")
    return Schedule(lambda s: value, f"constant(value={value})")


def step_decay(step_size, gamma=0.1):
    """factor(s) = gamma ** (s // step_size): multiply by ``gamma`` every ``step_size`` steps."""
    where = "step_decay"
    step_size = _int(step_size, "step_size", where, low=1)
    gamma = _number(gamma, "gamma", where)
    return Schedule(lambda s: gamma ** (s // step_size),
                    f"step_decay(step_size={step_size}, gamma={gamma})")


def cosine(total_steps, final=0.0):
    """factor(s) = final + (1 - final) * (1 + cos(pi * min(s, T) / T)) / 2.

    1 at step 0, ``final`` at step T and after.
    """
    where = "cosine"
    T = _int(total_steps, "total_steps", where, low=1)
    final = _number(final, "final", where)
    return Schedule(lambda s: _cosine(min(s, T) / T, 1.0, final),
                    f"cosine(total_steps={T}, final={final})")


def warmup_linear(total_steps, warmup_steps, start=0.0, final=0.0):
    """Linear warmup then linear decay (the one-cycle / airbench triangle).

        s <  W:  factor = start + (1 - start) * s / W
        s >= W:  factor = 1 + (final - 1) * (min(s, T) - W) / (T - W)

    ``start`` at step 0, 1 at step W, ``final`` at step T and after.
    """
    where = "warmup_linear"
    T, W, start, final = _warmup_args(total_steps, warmup_steps, start, final, where)

    def factor(s):
        if s < W:
            return _warmup(s, W, start)
        return 1.0 + (final - 1.0) * (min(s, T) - W) / (T - W)
    return Schedule(factor, f"warmup_linear(total_steps={T}, warmup_steps={W}, "
                            f"start={start}, final={final})")


# warmup_cosine differs from warmup_linear only after the warmup; their docstrings and
# checks are alike so that each reads on its own (the shared warmup is _warmup).
def warmup_cosine(total_steps, warmup_steps, start=0.0, final=0.0):
    """Linear warmup then cosine decay.

        s <  W:  factor = start + (1 - start) * s / W
        s >= W:  factor = final + (1 - final) * (1 + cos(pi * (min(s, T) - W) / (T - W))) / 2

    ``start`` at step 0, 1 at step W, ``final`` at step T and after.
    """
    where = "warmup_cosine"
    T, W, start, final = _warmup_args(total_steps, warmup_steps, start, final, where)

    def factor(s):
        if s < W:
            return _warmup(s, W, start)
        return _cosine((min(s, T) - W) / (T - W), 1.0, final)
    return Schedule(factor, f"warmup_cosine(total_steps={T}, warmup_steps={W}, "
                            f"start={start}, final={final})")


# -- helpers -----------------------------------------------------------------
def _warmup(s, W, start):
    """The linear warmup both schedules share: start at step 0, 1 at step W."""
    return start + (1.0 - start) * s / W


def _cosine(frac, high, low):
    """Half a cosine from ``high`` (frac=0) down to ``low`` (frac=1)."""
    return low + (high - low) * 0.5 * (1.0 + math.cos(math.pi * frac))


def _warmup_args(total_steps, warmup_steps, start, final, where):
    T = _int(total_steps, "total_steps", where, low=1)
    W = _int(warmup_steps, "warmup_steps", where, low=0)
    if W >= T:
        raise ValueError(f"{where}: warmup_steps must be < total_steps={T}, got {W}")
    return T, W, _number(start, "start", where), _number(final, "final", where)


def _int(value, name, where, low):
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{where}: {name} must be an integer, got {value!r}")
    value = int(value)
    if value < low:
        raise ValueError(f"{where}: {name} must be >= {low}, got {value}")
    return value


def _number(value, name, where):
    """A finite factor >= 0, as a Python float."""
    if isinstance(value, bool) or not hasattr(value, "__float__"):
        raise TypeError(f"{where}: {name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{where}: {name} must be a finite number >= 0, got {value}")
    return value
