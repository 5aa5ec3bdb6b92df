"""Optimizers (SGD, Adam, AdamW), param groups, state, EMA and Lookahead."""
import numpy as np
import pytest

from minicnn.checkpoint import flatten, load_checkpoint, save_checkpoint, unflatten
from minicnn.optim import (EMA, SGD, Adam, AdamW, Lookahead, param_groups_no_decay,
                           split_param_groups)


def param(name, values, dtype=np.float64):
    """A (name, p, g) tuple with g = 0, like a layer's params/grads pair."""
    p = np.array(values, dtype=dtype)
    return name, p, np.zeros_like(p)


def set_grad(item, values):
    item[2][...] = values          # backward writes in place, same array every step


# -- SGD -----------------------------------------------------------------------
def test_sgd_without_momentum_matches_closed_form():
    item = param("w", [1.0, -2.0, 3.0])
    set_grad(item, [0.5, 1.0, -2.0])
    opt = SGD([item], lr=0.1)
    for _ in range(4):
        opt.step()
    np.testing.assert_allclose(item[1], np.array([1.0, -2.0, 3.0]) - 4 * 0.1 * item[2],
                               rtol=0, atol=1e-12)
    opt.set_lr_factor(0.5)            # one more step at half the lr
    opt.step()
    np.testing.assert_allclose(item[1], np.array([1.0, -2.0, 3.0]) - 4.5 * 0.1 * item[2],
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("nesterov, expected", [
    # mu=0.9, lr=0.1, g = 1, 2, -1 from p=0 (by hand):
    # momentum: v = 1, 2.9, 1.61               p = -0.1, -0.39, -0.551
    # Nesterov: step = g + mu*v = 1.9, 4.61, 0.449   p = -0.19, -0.651, -0.6959
    (False, [-0.1, -0.39, -0.551]),
    (True, [-0.19, -0.651, -0.6959]),
])
def test_momentum_and_nesterov_three_steps(nesterov, expected):
    item = param("w", [0.0])
    opt = SGD([item], lr=0.1, momentum=0.9, nesterov=nesterov)
    for g, p_expected in zip([1.0, 2.0, -1.0], expected):
        set_grad(item, g)
        opt.step()
        np.testing.assert_allclose(item[1], [p_expected], rtol=0, atol=1e-12)


def test_momentum_carries_over_between_steps():
    item = param("w", [0.0])
    opt = SGD([item], lr=0.1, momentum=0.9)
    set_grad(item, 1.0)
    opt.step()                      # v = 1, p = -0.1
    set_grad(item, 0.0)
    opt.step()                      # v = 0.9, p = -0.19: moves with zero gradient
    np.testing.assert_allclose(item[1], [-0.19], atol=1e-12)
    assert opt.step_count == 2


def test_sgd_l2_and_decoupled_decay_equal_without_momentum():
    a, b = param("w", [1.0, -3.0]), param("w", [1.0, -3.0])
    set_grad(a, [0.2, 0.4])
    set_grad(b, [0.2, 0.4])
    l2 = SGD([a], lr=0.1, weight_decay=0.5)
    decoupled = SGD([b], lr=0.1, weight_decay=0.5, decoupled=True)
    for _ in range(3):
        l2.step()
        decoupled.step()
    np.testing.assert_allclose(a[1], b[1], rtol=1e-12)
    assert not np.allclose(a[1], [1.0, -3.0])


def test_sgd_l2_decay_goes_through_momentum_decoupled_does_not():
    # p0 = 1, g = 0, lr = 0.1, wd = 0.5, mu = 0.9
    # L2:        step 1: d = 0.5, v = 0.5, p = 0.95;  step 2: d = 0.475, v = 0.925, p = 0.8575
    # decoupled: step 1: p = 0.95 (v = 0);            step 2: p = 0.9025
    a, b = param("w", [1.0]), param("w", [1.0])
    l2 = SGD([a], lr=0.1, momentum=0.9, weight_decay=0.5)
    decoupled = SGD([b], lr=0.1, momentum=0.9, weight_decay=0.5, decoupled=True)
    for _ in range(2):
        l2.step()
        decoupled.step()
    np.testing.assert_allclose(a[1], [0.8575], atol=1e-12)
    np.testing.assert_allclose(b[1], [0.9025], atol=1e-12)


def test_nesterov_with_l2_decay_by_hand():
    # p0 = 1, g = 0, lr = 0.1, wd = 0.5, mu = 0.9, d = g + wd*p
    # step 1: d = 0.5,    v = 0.5,    step = d + mu*v = 0.95,    p = 0.905
    # step 2: d = 0.4525, v = 0.9025, step = 1.26475,            p = 0.778525
    item = param("w", [1.0])
    opt = SGD([item], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.5)
    opt.step()
    np.testing.assert_allclose(item[1], [0.905], atol=1e-12)
    opt.step()
    np.testing.assert_allclose(item[1], [0.778525], atol=1e-12)
    np.testing.assert_allclose(opt.state["w"]["momentum"], [0.9025], atol=1e-12)


def test_gradient_is_not_modified():
    item = param("w", [1.0, 2.0])
    set_grad(item, [0.3, -0.3])
    for opt in (SGD([item], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1),
                Adam([param("v", [1.0])] + [item], lr=0.1, weight_decay=0.1)):
        opt.step()
        np.testing.assert_array_equal(item[2], [0.3, -0.3])


# -- Adam ----------------------------------------------------------------------
def adam_reference(p, grads, lr, b1, b2, eps, wd=0.0, decoupled=False):
    """Textbook Adam/AdamW in float64, written independently of minicnn."""
    p = np.array(p, dtype=np.float64)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        if decoupled:
            p = p - lr * wd * p
        else:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


def test_adam_first_step_is_lr_times_sign():
    g = np.array([1e-3, -2.0, 50.0, -1e3])
    item = param("w", np.zeros(4))
    set_grad(item, g)
    Adam([item], lr=0.01).step()
    np.testing.assert_allclose(item[1], -0.01 * np.sign(g), rtol=1e-4)


@pytest.mark.parametrize("cls, wd", [(Adam, 0.0), (Adam, 0.1), (AdamW, 0.1)])
def test_adam_matches_reference(cls, wd):
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=(3, 4))
    grads = [rng.normal(size=(3, 4)) for _ in range(6)]
    item = ("w", p0.copy(), np.zeros_like(p0))
    opt = cls([item], lr=0.05, betas=(0.8, 0.95), eps=1e-6, weight_decay=wd)
    for g in grads:
        set_grad(item, g)
        opt.step()
    expected = adam_reference(p0, grads, 0.05, 0.8, 0.95, 1e-6, wd, decoupled=cls is AdamW)
    np.testing.assert_allclose(item[1], expected, rtol=1e-12, atol=1e-12)


def test_adamw_decay_is_decoupled_from_the_adaptive_step():
    # g = 0: AdamW only shrinks p by (1 - lr*wd) per step; Adam's L2 decay is
    # normalised by sqrt(v_hat), so its first step is about lr*sign(p), whatever wd.
    a, b = param("w", [2.0, -4.0]), param("w", [2.0, -4.0])
    AdamW([a], lr=0.1, weight_decay=0.1).step()
    Adam([b], lr=0.1, weight_decay=0.1).step()
    np.testing.assert_allclose(a[1], [2.0 * 0.99, -4.0 * 0.99], rtol=1e-12)
    np.testing.assert_allclose(b[1], [1.9, -3.9], rtol=1e-6)


@pytest.mark.parametrize("make", [
    lambda ps: SGD(ps, lr=0.1),
    lambda ps: SGD(ps, lr=0.05, momentum=0.9),
    lambda ps: SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
    lambda ps: Adam(ps, lr=0.1),
    lambda ps: AdamW(ps, lr=0.1, weight_decay=1e-4),
])
def test_optimizer_minimises_a_quadratic(make):
    # f(p) = 0.5 * sum(a * (p - c)**2), df/dp = a * (p - c), minimum at p = c
    a = np.array([1.0, 3.0, 0.5, 2.0])
    c = np.array([1.0, -2.0, 0.5, 3.0])
    item = param("w", np.zeros(4))
    opt = make([item])
    for _ in range(500):
        set_grad(item, a * (item[1] - c))
        opt.step()
    np.testing.assert_allclose(item[1], c, atol=1e-2)


# -- groups, dtypes, in place ------------------------------------------------------
def test_no_decay_group_leaves_biases_alone_and_lr_scale_scales():
    W, b = param("0.W", np.ones((2, 2))), param("0.b", np.ones(2))
    groups = param_groups_no_decay([W, b], lr_scale=4.0)
    assert [n for n, _, _ in groups[0]["params"]] == ["0.W"]
    assert [n for n, _, _ in groups[1]["params"]] == ["0.b"]
    opt = SGD(groups, lr=0.1, weight_decay=0.5)
    opt.step()                                  # zero gradients: only decay acts
    np.testing.assert_allclose(W[1], 0.95)      # 1 - 0.1 * 0.5
    np.testing.assert_array_equal(b[1], 1.0)    # no decay
    set_grad(W, 1.0)
    set_grad(b, 1.0)
    opt.step()
    np.testing.assert_allclose(W[1], 0.95 - 0.1 * (1.0 + 0.5 * 0.95))
    np.testing.assert_allclose(b[1], 1.0 - 4.0 * 0.1)   # lr_scale = 4
    assert opt.lrs == [0.1, pytest.approx(0.4)]


def test_group_overrides_and_lr_factor_scale_together():
    x, y = param("x", [0.0]), param("y", [0.0])
    set_grad(x, 1.0)
    set_grad(y, 1.0)
    opt = SGD([{"params": [x]}, {"params": [y], "lr": 0.3, "momentum": 0.5}], lr=0.1)
    opt.set_lr_factor(0.5)
    opt.step()
    opt.step()
    np.testing.assert_allclose(x[1], [-0.1])                      # 2 * 0.05
    np.testing.assert_allclose(y[1], [-0.15 - 0.15 * 1.5])        # v = 1, 1.5; lr 0.15
    assert "momentum" not in opt.state["x"] and "momentum" in opt.state["y"]


def test_split_param_groups_by_name():
    items = [param("0.W", [1.0]), param("1.beta", [1.0]), param("2.W", [1.0])]
    groups = split_param_groups(items, lambda name, p: name.endswith("beta"), lr_scale=64.0)
    assert [len(g["params"]) for g in groups] == [2, 1]
    assert groups[1]["lr_scale"] == 64.0


@pytest.mark.parametrize("make", [
    lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4),
    lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=5e-4, decoupled=True),
    lambda ps: Adam(ps, lr=np.float64(1e-3), betas=(np.float32(0.9), 0.99), weight_decay=1e-2),
    lambda ps: AdamW(ps, lr=1e-3),
])
def test_float32_params_stay_float32_and_are_updated_in_place(make):
    layer_params = {"W": np.ones((3, 2), np.float32)}
    layer_grads = {"W": np.full((3, 2), 0.5, np.float32)}
    W_before = layer_params["W"]
    opt = make([("0.W", layer_params["W"], layer_grads["W"])])
    opt.set_lr_factor(np.float64(0.7))        # schedules may hand out numpy floats
    for _ in range(3):
        opt.step()
    assert layer_params["W"] is W_before
    assert W_before.dtype == np.float32
    assert not np.allclose(W_before, 1.0)
    assert all(buf.dtype == np.float32 for buf in opt.state["0.W"].values())
    # numpy 2 promotes float32 arrays with np.float64 scalars to float64, but not with
    # Python floats: every number the update multiplies by must be a Python float
    group = opt.param_groups[0]
    numbers = [opt.lr_factor] + [v for k, v in group.items() if k != "params"]
    numbers = [x for v in numbers for x in (v if isinstance(v, tuple) else [v])]
    assert all(type(x) in (float, bool) for x in numbers), numbers


@pytest.mark.parametrize("make, message", [
    (lambda: SGD([param("w", [1.0])], lr=-0.1), "lr must be a finite number >= 0"),
    (lambda: SGD([param("w", [1.0])], lr=float("nan")), "lr must be a finite number"),
    (lambda: SGD([param("w", [1.0])], lr="0.1"), "lr must be a number"),
    (lambda: SGD([param("w", [1.0])], lr=0.1, momentum=1.0), r"momentum .*\[0.0, 1.0\)"),
    (lambda: SGD([param("w", [1.0])], lr=0.1, momentum=-0.5), "momentum"),
    (lambda: SGD([param("w", [1.0])], lr=0.1, nesterov=True), "nesterov=True needs momentum"),
    (lambda: SGD([param("w", [1.0])], lr=0.1, weight_decay=-1), "weight_decay"),
    (lambda: Adam([param("w", [1.0])], betas=(0.9, 1.0)), r"betas\[1\]"),
    (lambda: Adam([param("w", [1.0])], betas=(0.9,)), "betas must be a pair"),
    (lambda: Adam([param("w", [1.0])], eps=0.0), "eps must be > 0"),
    (lambda: SGD([{"params": [param("w", [1.0])], "lrr": 1}], lr=0.1), "unknown option"),
    (lambda: SGD([param("w", [1.0]), param("w", [2.0])], lr=0.1), "'w' appears twice"),
    (lambda: SGD([("w", np.ones(2), np.ones(3))], lr=0.1), "its gradient"),
    (lambda: SGD([("w", np.ones(2, np.float32), np.ones(2))], lr=0.1), "its gradient"),
    (lambda: SGD([("w", np.ones(2, int), np.ones(2, int))], lr=0.1), "float32 or float64"),
    (lambda: SGD({"params": []}, lr=0.1), "single dict"),
    (lambda: EMA([param("w", [1.0])], decay=1.5), "decay"),
    (lambda: Lookahead([param("w", [1.0])], k=0), "k must be"),
])
def test_bad_arguments_raise_clear_errors(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


# -- state -----------------------------------------------------------------------
def train(opt, items, grads_per_step):
    for grads in grads_per_step:
        for item, g in zip(items, grads):
            set_grad(item, g)
        opt.step()


@pytest.mark.parametrize("make", [
    lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda ps: Adam(ps, lr=0.01),
    lambda ps: AdamW(ps, lr=0.01, weight_decay=0.1),
])
def test_state_round_trips_through_a_checkpoint(make, tmp_path):
    rng = np.random.default_rng(1)
    grads = [[rng.normal(size=(2, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)]
             for _ in range(6)]
    items = [param("0.W", rng.normal(size=(2, 3)), np.float32), param("0.b", np.zeros(3), np.float32)]
    opt = make(items)
    train(opt, items, grads[:3])
    opt.set_lr_factor(0.25)

    model = {name: p for name, p, _ in items}
    save_checkpoint(tmp_path / "ck.npz", flatten({"model": model, "optim": opt.state_dict()}),
                    {"epoch": 1})
    arrays, meta = load_checkpoint(tmp_path / "ck.npz")
    state = unflatten(arrays)
    assert meta == {"epoch": 1}

    resumed_items = [(name, state["model"][name].copy(), np.zeros_like(p)) for name, p, _ in items]
    resumed = make(resumed_items)
    resumed.load_state_dict(state["optim"])
    assert resumed.step_count == 3 and resumed.lr_factor == 0.25

    train(opt, items, grads[3:])
    train(resumed, resumed_items, grads[3:])
    for (_, p, _), (_, q, _) in zip(items, resumed_items):
        np.testing.assert_array_equal(p, q)


def test_state_dict_is_a_snapshot_and_load_is_in_place():
    item = param("w", [0.0])
    set_grad(item, 1.0)
    opt = SGD([item], lr=0.1, momentum=0.9)
    opt.step()
    snapshot = opt.state_dict()
    buffer = opt.state["w"]["momentum"]
    opt.step()
    np.testing.assert_array_equal(snapshot["w.momentum"], [1.0])
    opt.load_state_dict(snapshot)
    assert opt.state["w"]["momentum"] is buffer
    np.testing.assert_array_equal(buffer, [1.0])


def test_mismatched_state_raises_naming_the_param():
    opt = SGD([param("3.W", np.zeros((2, 2)))], lr=0.1, momentum=0.9)
    state = SGD([param("3.W", np.zeros((2, 3)))], lr=0.1, momentum=0.9).state_dict()
    with pytest.raises(ValueError, match=r"'3.W'.*expected shape \(2, 2\), received \(2, 3\)"):
        opt.load_state_dict(state)
    before = opt.state["3.W"]["momentum"].copy()
    missing = dict(opt.state_dict())
    del missing["3.W.momentum"]
    with pytest.raises(ValueError, match=r"missing .*3\.W\.momentum"):
        opt.load_state_dict(missing)
    extra = dict(opt.state_dict(), **{"4.W.momentum": np.zeros(2)})
    with pytest.raises(ValueError, match=r"unexpected .*4\.W\.momentum"):
        opt.load_state_dict(extra)
    with pytest.raises(ValueError, match="saved by 'SGD', expected 'Adam'"):
        Adam([param("3.W", np.zeros((2, 2)))]).load_state_dict(opt.state_dict())
    np.testing.assert_array_equal(opt.state["3.W"]["momentum"], before)


def test_zero_grad_clears_gradients_in_place():
    item = param("w", [1.0, 2.0])
    g = item[2]
    set_grad(item, 3.0)
    SGD([item], lr=0.1).zero_grad()
    assert item[2] is g and not g.any()


# -- EMA and Lookahead ---------------------------------------------------------------
def test_ema_every_two_steps_and_swap():
    item = param("w", [0.0])
    ema = EMA([item], decay=0.5, every=2)
    item[1][...] = 4.0
    assert ema.update() is False            # 1st call: no averaging
    np.testing.assert_array_equal(ema.shadow["w"], [0.0])
    assert ema.update() is True             # 2nd: s = 0.5*0 + 0.5*4 = 2
    item[1][...] = 8.0
    ema.update()
    ema.update()                            # s = 0.5*2 + 0.5*8 = 5
    np.testing.assert_array_equal(ema.shadow["w"], [5.0])
    assert ema.num_updates == 2
    with ema.averaged():
        np.testing.assert_array_equal(item[1], [5.0])
    np.testing.assert_array_equal(item[1], [8.0])
    ema.copy_to()
    np.testing.assert_array_equal(item[1], [5.0])


def test_ema_state_round_trip_and_float32():
    item = param("w", np.ones((2, 2)), np.float32)
    ema = EMA([item[:2]], decay=0.9)        # (name, array) pairs work too
    item[1][...] = 2.0
    ema.update()
    assert ema.shadow["w"].dtype == np.float32
    other = EMA([param("w", np.zeros((2, 2)), np.float32)], decay=0.9)
    other.load_state_dict(ema.state_dict())
    np.testing.assert_array_equal(other.shadow["w"], ema.shadow["w"])
    assert other.calls == 1
    with pytest.raises(ValueError, match=r"'w': expected shape \(3,\), received \(2, 2\)"):
        EMA([param("w", np.zeros(3))], decay=0.9).load_state_dict(ema.state_dict())


def test_lookahead_syncs_every_k_steps():
    item = param("w", [0.0])
    la = Lookahead([item], alpha=0.5, k=2)
    item[1][...] = 1.0                      # fast moves; not a sync step
    la.update()
    np.testing.assert_array_equal(item[1], [1.0])
    item[1][...] = 4.0
    la.update()                             # slow = 0 + 0.5*(4 - 0) = 2; fast = slow
    np.testing.assert_array_equal(item[1], [2.0])
    np.testing.assert_array_equal(la.shadow["w"], [2.0])
