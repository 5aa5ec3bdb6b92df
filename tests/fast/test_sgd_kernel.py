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


def run_steps(backend, p0, grads, **options):
    """p after len(grads) SGD steps on ``backend``, and the optimizer's state."""
    p, g = p0.copy(), np.zeros_like(p0)
    opt = SGD([("w", p, g)], **options)
    with minicnn.use_backend(backend):
        for grad in grads:
            g[...] = grad
            opt.step()
    return p, opt.state_dict()


@pytest.mark.parametrize("size", [7, sgd_kernels.PARALLEL_FROM + 3])   # one core / every core
@pytest.mark.parametrize("mu,nesterov,wd,decoupled", SETTINGS)
def test_fast_update_gives_the_reference_bits(size, mu, nesterov, wd, decoupled):
    rng = np.random.default_rng(size)
    p0 = rng.standard_normal((size,)).astype(np.float32)
    grads = rng.standard_normal((4, size)).astype(np.float32) * 10.0 ** rng.integers(-6, 2, (4, 1))
    options = dict(lr=0.037, momentum=mu, nesterov=nesterov, weight_decay=wd, decoupled=decoupled)
    fast_p, fast_state = run_steps("fast", p0, grads, **options)
    ref_p, ref_state = run_steps("reference", p0, grads, **options)
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
