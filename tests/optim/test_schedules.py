"""Learning-rate schedules: values at the key steps, monotonic pieces, argument checks."""
import numpy as np
import pytest

from minicnn.optim import SGD
from minicnn.optim.schedules import constant, cosine, step_decay, warmup_cosine, warmup_linear


def values(schedule, steps):
    return np.array([schedule(s) for s in steps])


def test_constant_and_step_decay():
    assert constant()(0) == 1.0 and constant(0.3)(1000) == 0.3
    s = step_decay(step_size=10, gamma=0.5)
    assert [s(0), s(9), s(10), s(19), s(20), s(35)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.125]


def test_cosine_key_values_and_monotone():
    s = cosine(total_steps=100, final=0.1)
    assert s(0) == 1.0
    assert s(50) == pytest.approx(0.55)          # halfway: (1 + final) / 2
    assert s(100) == pytest.approx(0.1)
    assert s(250) == pytest.approx(0.1)          # past the end: stays at final
    assert np.all(np.diff(values(s, range(101))) <= 0)


@pytest.mark.parametrize("make", [warmup_linear, warmup_cosine])
def test_warmup_key_values_and_monotone_pieces(make):
    s = make(total_steps=100, warmup_steps=20, start=0.2, final=0.05)
    assert s(0) == pytest.approx(0.2)
    assert s(10) == pytest.approx(0.6)           # linear warmup: halfway
    assert s(20) == pytest.approx(1.0)           # peak at the end of warmup
    assert s(60) == pytest.approx(0.525)         # halfway down: linear and cosine agree here
    assert s(100) == pytest.approx(0.05)
    assert s(10_000) == pytest.approx(0.05)
    up, down = values(s, range(21)), values(s, range(20, 101))
    assert np.all(np.diff(up) > 0) and np.all(np.diff(down) < 0)


def test_warmup_linear_is_linear_and_cosine_is_not():
    lin = warmup_linear(100, 20)
    cos = warmup_cosine(100, 20)
    assert lin(40) == pytest.approx(0.75)
    assert cos(40) == pytest.approx(0.5 * (1 + np.cos(np.pi * 0.25)))
    assert lin(0) == 0.0 and cos(0) == 0.0       # default start is 0


def test_no_warmup_starts_at_peak():
    assert warmup_linear(10, 0)(0) == 1.0
    assert warmup_cosine(10, 0)(0) == 1.0


def test_schedules_are_stateless_and_return_python_floats():
    s = warmup_cosine(50, 5, start=0.1)
    forward = [s(k) for k in range(50)]
    backward = [s(k) for k in reversed(range(50))][::-1]
    assert forward == backward                   # resuming at any step is exact
    assert all(type(v) is float for v in forward)
    assert s(np.int64(7)) == s(7)
    assert "warmup_cosine(total_steps=50" in repr(s)


def test_schedule_drives_the_optimizer():
    item = ("w", np.zeros(1), np.ones(1))
    opt = SGD([item], lr=0.1)
    s = warmup_linear(total_steps=4, warmup_steps=2)   # 0, 0.5, 1, 0.5
    for step in range(4):
        opt.set_lr_factor(s(step))
        opt.step()
    np.testing.assert_allclose(item[1], [-0.1 * (0 + 0.5 + 1 + 0.5)])


@pytest.mark.parametrize("make, message", [
    (lambda: warmup_linear(10, 10), "warmup_steps must be < total_steps=10"),
    (lambda: warmup_cosine(10, -1), "warmup_steps must be >= 0"),
    (lambda: cosine(0), "total_steps must be >= 1"),
    (lambda: cosine(10.5), "total_steps must be an integer"),
    (lambda: step_decay(0), "step_size must be >= 1"),
    (lambda: step_decay(5, gamma=-0.1), "gamma must be a finite number >= 0"),
    (lambda: warmup_linear(10, 2, start=float("inf")), "start must be a finite number"),
    (lambda: cosine(10)(-1), "step must be >= 0"),
    (lambda: cosine(10)(1.5), "step must be an integer"),
])
def test_bad_arguments_raise(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()
