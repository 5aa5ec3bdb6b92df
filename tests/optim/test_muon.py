"""Muon (minicnn/optim/muon.py): the Newton-Schulz iteration, one full update against a
reference written here from the formulas, state round trips, frozen params, errors,
and Chain, which drives Muon and SGD as one optimizer."""
import math

import numpy as np
import pytest

from minicnn.checkpoint import flatten, load_checkpoint, save_checkpoint, unflatten
from minicnn.nn import Conv2D, Sequential
from minicnn.optim import SGD, Chain, Muon, newton_schulz

A, B, C = 3.4445, -4.7750, 2.0315


def quintic_via_svd(G, steps, eps=1e-7):
    """The reference: G = U S V^T; normalise S by ||G||_F, apply s -> a s + b s^3 + c s^5
    ``steps`` times to each singular value, and rebuild U S' V^T (no matrix iteration)."""
    G = np.asarray(G, dtype=np.float64)
    U, s, Vt = np.linalg.svd(G, full_matrices=False)
    s = s / (np.sqrt(np.sum(s ** 2)) + eps)
    for _ in range(steps):
        s = A * s + B * s ** 3 + C * s ** 5
    return (U * s) @ Vt


def as_matrix(array):
    """minicnn's (..., F) weight as the (F, fan_in) matrix Muon orthogonalises."""
    return array.reshape(-1, array.shape[-1]).T


def param(name, array):
    p = np.array(array)
    return name, p, np.zeros_like(p)


# -- the Newton-Schulz iteration ---------------------------------------------------
@pytest.mark.parametrize("shape", [(8, 8), (16, 64), (64, 16), (10, 256), (33, 7)])
@pytest.mark.parametrize("steps", [1, 3, 5])
def test_newton_schulz_equals_the_polynomial_on_singular_values(shape, steps):
    G = np.random.default_rng(sum(shape) + steps).standard_normal(shape)
    X = newton_schulz(G, steps)
    assert X.shape == shape and X.dtype == np.float64
    np.testing.assert_allclose(X, quintic_via_svd(G, steps), rtol=0, atol=1e-10)


@pytest.mark.parametrize("shape", [(16, 64), (64, 16), (10, 256), (256, 40),
                                   (3, 3, 4, 8), (3, 3, 24, 4), (2, 2, 3, 24), (3, 3, 64, 64)])
def test_five_steps_bring_every_singular_value_near_one(shape):
    # a conv-shaped array (KH, KW, C, F) is the matrix (F, KH*KW*C); random singular
    # vectors, singular values spread over a factor 20
    G = as_matrix(np.random.default_rng(len(shape) + shape[-1]).standard_normal(shape))
    U, s, Vt = np.linalg.svd(G, full_matrices=False)
    G = ((U * np.geomspace(1.0, 20.0, len(s))) @ Vt).astype(np.float32)
    X = newton_schulz(G, 5)
    assert X.dtype == np.float32 and X.shape == G.shape
    inner = U.T @ X @ Vt.T                   # diagonal if X = U S' V^T, same U and V as G
    s_prime = np.diag(inner)
    assert np.abs(inner - np.diag(s_prime)).max() < 1e-4
    assert 0.65 <= s_prime.min() and s_prime.max() <= 1.2, s_prime
    # close to the exact U V^T of the SVD (the nearest semi-orthogonal matrix)
    assert np.abs(X - U @ Vt).max() < 0.35
    # fewer steps leave the smallest singular values behind
    assert np.linalg.svd(newton_schulz(G, 1), compute_uv=False).min() < 0.65


def test_newton_schulz_of_zero_is_zero_and_of_a_vector_is_refused():
    np.testing.assert_array_equal(newton_schulz(np.zeros((3, 5))), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="expected a matrix"):
        newton_schulz(np.ones(4))


# -- one full update -----------------------------------------------------------------
def muon_reference(p, grads, lr, mu, nesterov, steps, normalize, shape_scale, wd):
    """The Muon update of the module docstring, step by step, for a (..., F) array."""
    p, v = p.copy(), np.zeros_like(p)
    fan_out = p.shape[-1]
    fan_in = p.size // fan_out
    for g in grads:
        v = mu * v + g
        d = g + mu * v if nesterov else v
        if normalize:
            p = p * math.sqrt(fan_out) / np.sqrt(np.sum(p ** 2))
        O = quintic_via_svd(as_matrix(d), steps).T.reshape(p.shape)
        scale = math.sqrt(max(1.0, fan_out / fan_in)) if shape_scale else 1.0
        p = p * (1.0 - lr * wd) - lr * scale * O
    return p


@pytest.mark.parametrize("shape, nesterov, normalize, shape_scale, wd", [
    ((3, 3, 2, 4), True, False, False, 0.0),
    ((3, 3, 2, 4), False, True, False, 0.1),
    ((3, 40), True, True, True, 0.0),             # Dense (D=3, F=40): taller than wide
    ((2, 2, 3, 24), True, False, True, 0.05),
])
def test_muon_steps_match_the_reference(shape, nesterov, normalize, shape_scale, wd):
    rng = np.random.default_rng(7)
    p0 = rng.standard_normal(shape)
    grads = [rng.standard_normal(shape) for _ in range(3)]
    item = param("0.W", p0)
    opt = Muon([item], lr=0.2, momentum=0.6, nesterov=nesterov, ns_steps=3,
               weight_decay=wd, normalize_weights=normalize, shape_scale=shape_scale)
    opt.set_lr_factor(0.5)                                   # lr_t = 0.2 * 0.5
    for g in grads:
        item[2][...] = g
        opt.step()
    expected = muon_reference(p0, grads, 0.1, 0.6, nesterov, 3, normalize, shape_scale, wd)
    np.testing.assert_allclose(item[1], expected, rtol=0, atol=1e-10)
    other = muon_reference(p0, grads, 0.1, 0.6, not nesterov, 3, normalize, shape_scale, wd)
    assert np.abs(other - expected).max() > 1e-3            # the check can tell them apart


def test_normalize_weights_keeps_the_frobenius_norm_at_sqrt_fan_out():
    rng = np.random.default_rng(3)
    item = param("0.W", 5.0 * rng.standard_normal((3, 3, 4, 16)).astype(np.float32))
    opt = Muon([item], lr=0.01, momentum=0.6, normalize_weights=True)
    for _ in range(4):
        item[2][...] = rng.standard_normal(item[1].shape)
        opt.step()
    # the step after the rescale is small (lr 0.01): the norm stays near sqrt(16) = 4
    assert abs(np.linalg.norm(item[1]) - 4.0) < 0.1
    assert item[1].dtype == np.float32 and opt.state["0.W"]["momentum"].dtype == np.float32


def test_the_step_size_does_not_depend_on_the_gradient_scale():
    rng = np.random.default_rng(4)
    g = rng.standard_normal((3, 3, 4, 8))
    moved = []
    for factor in (1e-3, 1.0, 1e3):
        item = param("0.W", np.zeros((3, 3, 4, 8)))
        item[2][...] = factor * g
        Muon([item], lr=0.1, momentum=0.0, nesterov=False).step()
        moved.append(item[1].copy())
    # up to eps = 1e-7 against ||G||_F (about 0.02 for the smallest gradient here)
    np.testing.assert_allclose(moved[0], moved[1], rtol=0, atol=1e-5)
    np.testing.assert_allclose(moved[2], moved[1], rtol=0, atol=1e-9)
    assert np.abs(moved[1]).max() > 0.01


# -- frozen params -------------------------------------------------------------------
def test_frozen_params_and_frozen_groups_are_left_alone():
    net = Sequential([Conv2D(3, 4, 3, rng=0), Conv2D(4, 4, 3, rng=1)])
    net.layers[0].frozen.add("W")                  # frozen: not in named_parameters()
    frozen_W = net.layers[0].params["W"].copy()
    filters = [item for item in net.named_parameters() if item[1].ndim == 4]
    assert [name for name, _, _ in filters] == ["1.W"]
    opt = Muon(filters, lr=0.1, normalize_weights=True)
    for _, _, g in filters:
        g[...] = 1.0
    opt.step()
    np.testing.assert_array_equal(net.layers[0].params["W"], frozen_W)
    assert not np.allclose(net.layers[1].params["W"], Conv2D(4, 4, 3, rng=1).params["W"])

    # a group with lr_scale 0 (how recipes freeze a group): not even normalised
    rng = np.random.default_rng(5)
    a, b = param("a", rng.standard_normal((3, 6))), param("b", rng.standard_normal((3, 6)))
    b_before = b[1].copy()
    opt = Muon([{"params": [a]}, {"params": [b], "lr_scale": 0.0}], lr=0.1,
               normalize_weights=True)
    a[2][...] = b[2][...] = 1.0
    opt.step()
    np.testing.assert_array_equal(b[1], b_before)
    assert opt.lrs == [0.1, 0.0]


# -- errors --------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    (dict(lr=0.0), "lr must be > 0"),
    (dict(lr=-0.1), "lr must be a finite number >= 0"),
    (dict(lr=0.1, momentum=1.0), r"momentum must be a finite number in \[0.0, 1.0\)"),
    (dict(lr=0.1, momentum=-0.2), "momentum"),
    (dict(lr=0.1, momentum=0.0), "nesterov=True needs momentum > 0"),
    (dict(lr=0.1, ns_steps=0), "ns_steps must be an integer >= 1, got 0"),
    (dict(lr=0.1, ns_steps=2.5), "ns_steps must be an integer >= 1, got 2.5"),
    (dict(lr=0.1, ns_steps=True), "ns_steps must be an integer >= 1"),
    (dict(lr=0.1, eps=0.0), "eps must be > 0"),
    (dict(lr=0.1, weight_decay=-1.0), "weight_decay"),
])
def test_bad_arguments_raise_value_errors_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Muon([param("0.W", np.ones((2, 3)))], **kwargs)


def test_vectors_are_refused_with_their_name():
    with pytest.raises(ValueError, match=r"'4.beta' has shape \(8,\).*ndim >= 2"):
        Muon([param("0.W", np.ones((2, 3))), param("4.beta", np.zeros(8))], lr=0.1)


# -- state -----------------------------------------------------------------------------
def make_pair(items):
    """SGD for the vectors and Muon for the matrices, as a Chain."""
    matrices = [item for item in items if item[1].ndim >= 2]
    vectors = [item for item in items if item[1].ndim < 2]
    return Chain([SGD(vectors, lr=0.05, momentum=0.85, nesterov=True, weight_decay=1e-3),
                  Muon(matrices, lr=0.2, momentum=0.6, ns_steps=3, normalize_weights=True)])


@pytest.mark.parametrize("make", [
    lambda items: Muon(items, lr=0.2, momentum=0.6, ns_steps=3, weight_decay=0.01),
    make_pair,
])
def test_state_round_trip_gives_bit_identical_steps(make, tmp_path):
    rng = np.random.default_rng(11)
    shapes = {"2.W": (3, 3, 4, 8), "5.W": (8, 10)}
    if make is make_pair:
        shapes["4.beta"] = (8,)
    grads = [{n: rng.standard_normal(s).astype(np.float32) for n, s in shapes.items()}
             for _ in range(6)]
    items = [param(n, rng.standard_normal(s).astype(np.float32)) for n, s in shapes.items()]

    def train(opt, items, steps):
        for grad in steps:
            for name, _, g in items:
                g[...] = grad[name]
            opt.step()

    opt = make(items)
    train(opt, items, grads[:3])
    opt.set_lr_factor(0.25)
    model = {name: p for name, p, _ in items}
    save_checkpoint(tmp_path / "ck.npz", flatten({"model": model, "optim": opt.state_dict()}))
    state = unflatten(load_checkpoint(tmp_path / "ck.npz")[0])

    resumed_items = [(n, state["model"][n].copy(), np.zeros_like(p)) for n, p, _ in items]
    resumed = make(resumed_items)
    resumed.load_state_dict(state["optim"])
    assert resumed.lr_factor == 0.25
    train(opt, items, grads[3:])
    train(resumed, resumed_items, grads[3:])
    for (_, p, _), (_, q, _) in zip(items, resumed_items):
        np.testing.assert_array_equal(p, q)
    # without the momentum the continued steps differ: the round trip carried it
    fresh_items = [(n, state["model"][n].copy(), np.zeros_like(p)) for n, p, _ in items]
    fresh = make(fresh_items)
    fresh.set_lr_factor(0.25)
    train(fresh, fresh_items, grads[3:])
    assert not np.array_equal(fresh_items[0][1], items[0][1])


# -- Chain -----------------------------------------------------------------------------
def test_chain_passes_every_call_to_its_members():
    W, beta = param("2.W", np.eye(3)), param("3.beta", np.zeros(3))
    sgd = SGD([beta], lr=0.5, momentum=0.9)
    muon = Muon([W], lr=0.1)
    chain = Chain([sgd, muon])
    chain.set_lr_factor(0.5)
    assert chain.lrs == [0.25, 0.05] and chain.lr_factor == 0.5
    chain.param_groups[0]["lr_scale"] = 0.0           # what an epoch hook does
    assert sgd.param_groups[0]["lr_scale"] == 0.0 and chain.lrs == [0.0, 0.05]
    W[2][...] = 1.0
    beta[2][...] = 1.0
    chain.step()
    assert sgd.step_count == 1 and muon.step_count == 1
    np.testing.assert_array_equal(beta[1], np.zeros(3))   # lr 0
    assert not np.allclose(W[1], np.eye(3))
    chain.zero_grad()
    assert not W[2].any() and not beta[2].any()


def test_chain_refuses_shared_params_and_bad_states():
    W = param("2.W", np.eye(3))
    with pytest.raises(ValueError, match="'2.W' is in both SGD and Muon"):
        Chain([SGD([W], lr=0.1), Muon([W], lr=0.1)])
    with pytest.raises(TypeError, match="non-empty list of optimizers"):
        Chain([])

    beta = param("3.beta", np.zeros(3))
    chain = Chain([SGD([beta], lr=0.1, momentum=0.9), Muon([W], lr=0.1, momentum=0.5)])
    beta[2][...] = W[2][...] = 1.0
    chain.step()
    good = chain.state_dict()
    assert good["type"] == "Chain" and set(good) == {"type", "0", "1"}
    bad = dict(good, **{"1": dict(good["1"], **{"2.W.momentum": np.zeros((4, 4))})})
    chain.step()
    before = chain.state_dict()
    with pytest.raises(ValueError, match=r"'2.W' buffer 'momentum': expected shape \(3, 3\)"):
        chain.load_state_dict(bad)
    after = chain.state_dict()                       # member 0 was restored: nothing changed
    np.testing.assert_array_equal(after["0"]["3.beta.momentum"],
                                  before["0"]["3.beta.momentum"])
    assert after["0"]["step"] == before["0"]["step"] == 2
    with pytest.raises(ValueError, match="expected the parts"):
        chain.load_state_dict({"type": "Chain", "0": good["0"]})
    with pytest.raises(ValueError, match="saved by 'SGD', expected 'Chain'"):
        chain.load_state_dict(good["0"])
