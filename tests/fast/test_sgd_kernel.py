"""SGD's fast update (minicnn/fast/kernels/sgd.py) against the reference code: the same bits."""
import itertools

import numpy as np
import pytest

import minicnn
import minicnn.fast.optim as fast_optim
from minicnn.fast.kernels import sgd as sgd_kernels
from minicnn.optim import SGD

SETTINGS = [(mu, nesterov, wd, decoupled)
            for mu, nesterov, wd, decoupled in itertools.product(
                [0.0, 0.9], [False, True], [0.0, 5e-4], [False, True])
            if not (nesterov and mu == 0.0)]


def run_steps(backend, p0, grads, lr, **options):
    """p after len(grads) SGD steps on ``backend``, and the optimizer's state."""
    p, g = p0.copy(), np.zeros_like(p0)
    opt = SGD([("w", p, g)], lr=lr, **options)
    with minicnn.use_backend(backend):
        for grad in grads:
            g[...] = grad
            opt.step()
    return p, opt.state_dict()


@pytest.mark.parametrize("size", [7, sgd_kernels.PARALLEL_FROM + 3])   # one core / every core
@pytest.mark.parametrize("mu,nesterov,wd,decoupled", SETTINGS)
def test_fast_update_gives_the_reference_bits(size, mu, nesterov, wd, decoupled, monkeypatch):
    calls = []
    real = fast_optim.sgd_update
    monkeypatch.setattr(fast_optim, "sgd_update", lambda *a: calls.append(1) or real(*a))
    rng = np.random.default_rng(size)
    p0 = rng.standard_normal((size,)).astype(np.float32)
    grads = rng.standard_normal((4, size)).astype(np.float32) * 10.0 ** rng.integers(-6, 2, (4, 1))
    for lr, wd_scale in zip(rng.uniform(1e-3, 1.0, 5), rng.uniform(0.1, 10.0, 5)):
        options = dict(momentum=mu, nesterov=nesterov, weight_decay=wd * wd_scale,
                       decoupled=decoupled)
        calls.clear()
        fast_p, fast_state = run_steps("fast", p0, grads, float(lr), **options)
        assert len(calls) == len(grads)                       # the kernel took every step
        ref_p, ref_state = run_steps("reference", p0, grads, float(lr), **options)
        assert len(calls) == len(grads)                       # and the reference none
        assert not np.array_equal(fast_p, p0)
        np.testing.assert_array_equal(fast_p, ref_p)
        assert fast_state.keys() == ref_state.keys()
        for key in fast_state:
            np.testing.assert_array_equal(fast_state[key], ref_state[key])


def test_the_kernel_runs_for_float32_and_the_reference_for_float64(monkeypatch):
    calls = []
    real = fast_optim.sgd_update
    monkeypatch.setattr(fast_optim, "sgd_update", lambda *a: calls.append(a[0].dtype) or real(*a))
    for dtype in (np.float32, np.float64):
        p, g = np.ones((3, 4), dtype), np.full((3, 4), 2.0, dtype)
        SGD([("w", p, g)], lr=0.25, momentum=0.5).step()
        np.testing.assert_array_equal(p, np.full((3, 4), 0.5, dtype))      # 1 - 0.25 * 2
    assert calls == [np.float32]


def test_a_non_contiguous_param_is_updated_by_the_reference():
    before = np.arange(12, dtype=np.float32).reshape(3, 4)
    base = before.copy()
    p, g = base[:, ::2], np.ones((3, 2), np.float32)          # a view with gaps
    SGD([("w", p, g)], lr=0.5).step()
    np.testing.assert_array_equal(base[:, ::2], before[:, ::2] - 0.5)
    np.testing.assert_array_equal(base[:, 1::2], before[:, 1::2])          # the gaps untouched


def test_a_subclass_that_changes_the_maths_keeps_its_own_update():
    class HalfStepSGD(SGD):
        def update_reference(self, p, g, state, group, lr):
            p -= 0.5 * lr * g

    p, g = np.ones(4, np.float32), np.ones(4, np.float32)
    HalfStepSGD([("w", p, g)], lr=1.0).step()
    np.testing.assert_array_equal(p, np.full(4, 0.5, np.float32))


@pytest.mark.parametrize("change", ["g inside p", "numpy momentum", "numpy decay"])
def test_what_the_kernel_declines_gets_the_reference_numbers(change, monkeypatch):
    """A gradient that shares p's memory (the reference reads it after shrinking p), or a
    momentum / decay set to a NumPy float64 after construction (the reference then steps
    in float64): the kernel declines and both backends give the reference's numbers."""
    calls = []
    real = fast_optim.sgd_update
    monkeypatch.setattr(fast_optim, "sgd_update", lambda *a: calls.append(1) or real(*a))
    results = []
    for backend_name in ("fast", "reference"):
        rng = np.random.default_rng(0)
        if change == "g inside p":
            both = rng.standard_normal(1500).astype(np.float32)
            p, g = both[:1000], both[500:]                    # overlapping views of one array
        else:
            p, g = rng.standard_normal((2, 1000)).astype(np.float32)
        opt = SGD([("w", p, g)], lr=0.1, momentum=0.9, weight_decay=0.01, decoupled=True)
        if change == "numpy momentum":
            opt.param_groups[0]["momentum"] = np.float64(0.8)
        if change == "numpy decay":
            opt.param_groups[0]["weight_decay"] = np.float64(0.02)
        with minicnn.use_backend(backend_name):
            opt.step()
        results.append(p.copy())
    assert calls == []
    np.testing.assert_array_equal(results[0], results[1])
