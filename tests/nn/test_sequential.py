"""Sequential (minicnn/nn/sequential.py): whole-network gradients, training, prediction,
fused steps, saving and loading."""
import numpy as np
import pytest

import minicnn as mc
from minicnn.gradcheck import check_model
from minicnn.nn import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential
from minicnn.nn.loss import softmax_cross_entropy
from minicnn.optim import Adam
from minicnn.zoo import airbench


def small_net(dtype=np.float32):
    return mc.Sequential([
        mc.Conv2D(3, 4, 3, bias=False, rng=0, dtype=dtype), mc.BatchNorm2D(4, dtype=dtype), mc.GELU(),
        mc.MaxPool2D(2),
        mc.Conv2D(4, 6, 3, stride=2, padding=1, rng=1, dtype=dtype), mc.LeakyReLU(0.1),
        mc.Flatten(), mc.Dense(6 * 2 * 2, 5, rng=2, dtype=dtype),
    ])


@pytest.mark.parametrize("training", [True, False])
def test_whole_network_gradcheck(rng, training):
    model = small_net(np.float64)
    model[1].buffers["running_var"][...] = [0.5, 1.0, 2.0, 1.5]
    x = rng.standard_normal((3, 6, 6, 3))
    errors = check_model(model, softmax_cross_entropy, x, np.array([0, 4, 2]), training=training)
    assert set(errors) == {"x", "0.W", "1.gamma", "1.beta", "4.W", "4.b", "7.W", "7.b"}
    bad = {k: v for k, v in errors.items() if not v < 1e-6}
    assert not bad, bad


def test_float32_end_to_end(rng):
    model = small_net()
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    logits = model.forward(x, training=True)
    assert logits.dtype == np.float32
    _, d = softmax_cross_entropy(logits, np.array([1, 2]))
    model.backward(d)
    for name, p, g in model.named_parameters():
        assert p.dtype == np.float32 and g.dtype == np.float32, name


def test_tiny_network_memorises_32_images(rng):
    x = rng.standard_normal((32, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 10, 32)
    model = mc.Sequential([
        mc.Conv2D(3, 16, 3, rng=0), mc.ReLU(), mc.MaxPool2D(2),
        mc.Flatten(), mc.Dense(4 * 4 * 16, 10, rng=1),
    ])
    opt = Adam(model.named_parameters(), lr=3e-3)
    first = None
    for step in range(300):
        loss, d = softmax_cross_entropy(model.forward(x, training=True), y)
        first = loss if first is None else first
        model.backward(d)
        opt.step()
    assert first > 2.0
    assert loss < 0.01, f"loss after 300 steps {loss:.4f}"
    assert (model.predict(x).argmax(1) == y).all()


def test_predict_matches_eval_forward(rng):
    model = small_net()
    x = rng.standard_normal((7, 6, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x, batch_size=3), model.forward(x, training=False),
                               rtol=1e-5, atol=1e-6)


def test_state_dict_round_trip_and_save_load(tmp_path, rng):
    a, b = small_net(), small_net()
    for p in b.parameters():
        p[...] = rng.standard_normal(p.shape)
    a[1].buffers["running_mean"][...] = 3.0
    assert "1.running_mean" in a.state_dict() and "1.running_mean" not in dict(
        (n, p) for n, p, _ in a.named_parameters())
    a.save(tmp_path / "w.npz")
    b.load(tmp_path / "w.npz")
    for (n, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_array_equal(p, q, err_msg=n)


def test_save_is_atomic_and_appends_npz(tmp_path, monkeypatch):
    a = small_net()
    a.save(tmp_path / "w")                                   # np.savez's naming: w.npz
    before = (tmp_path / "w.npz").read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", crash)
    for p in a.parameters():
        p += 1.0
    with pytest.raises(OSError, match="disk full"):
        a.save(tmp_path / "w.npz")
    assert (tmp_path / "w.npz").read_bytes() == before       # the old file is whole
    assert sorted(f.name for f in tmp_path.iterdir()) == ["w.npz"]   # no temp file left


def test_load_state_dict_errors(tmp_path):
    model = small_net()
    state = model.state_dict()
    del state["0.W"]
    state["99.W"] = np.zeros(3, dtype=np.float32)
    state["7.b"] = np.zeros(4, dtype=np.float32)
    with pytest.raises(ValueError) as e:
        model.load_state_dict(state)
    msg = str(e.value)
    assert "missing arrays ['0.W']" in msg and "unexpected arrays ['99.W']" in msg
    assert "7.b (Dense.b): expected shape (5,), got (4,)" in msg
    # An object array needs pickle: it must be refused, not executed.
    np.savez(tmp_path / "evil.npz", **{"0.W": np.array([object()], dtype=object)})
    with pytest.raises(ValueError, match="cannot read"):
        model.load(tmp_path / "evil.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="cannot read"):
        model.load(tmp_path / "junk.npz")


def test_batchnorm_buffers_are_not_trained(rng):
    model = small_net()
    names = [n for n, _, _ in model.named_parameters()]
    assert "1.running_mean" not in names and "1.running_var" not in names
    model.forward(rng.standard_normal((4, 6, 6, 3)).astype(np.float32), training=True)
    assert not np.allclose(model[1].buffers["running_mean"], 0)   # updated by forward only
    frozen = mc.BatchNorm2D(4, freeze_scale=True)
    assert "gamma" in frozen.frozen


def test_predict_keeps_nothing_for_backward_and_matches_forward(rng):
    model = airbench(widths=(4, 8, 8), rng=0)
    x = rng.standard_normal((6, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x, batch_size=4), model.forward(x), rtol=1e-6, atol=1e-6)
    model.predict(x)
    for layer in model:
        assert all(getattr(layer, name) is None for name in layer.cached), layer
    with pytest.raises(RuntimeError, match="call forward"):
        model.backward(np.ones((6, 10), np.float32))
    model.forward(x, training=True)                          # a training pass re-arms backward
    model.backward(np.ones((6, 10), np.float32))
    assert np.abs(model[2].grads["W"]).sum() > 0


def test_sequential_fuses_conv_and_relu(monkeypatch):
    """Conv2D + ReLU fused in Sequential (forward, backward, predict) gives the same numbers
    as the layers run one by one."""
    def net():
        return Sequential([Conv2D(3, 16, 3, rng=0), ReLU(), Conv2D(16, 16, 3, rng=1), ReLU(),
                           MaxPool2D(2), Conv2D(16, 8, 3, rng=2), ReLU(), Flatten(),
                           Dense(6 * 6 * 8, 10, rng=3)])

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 12, 12, 3)).astype(np.float32)   # 12 wide: the direct path
    labels = np.array([0, 1, 2, 3])
    fused, plain = net(), net()
    assert fused.steps == [(0, 1), (2, 3, 4), (5, 6), (7,), (8,)]
    calls = []
    real = ReLU.forward_fused
    monkeypatch.setattr(ReLU, "forward_fused", lambda self, y: calls.append(y.shape) or real(self, y))
    logits = fused.forward(x, training=True)
    monkeypatch.undo()
    assert len(calls) == 3                          # every Conv2D + ReLU pair was fused
    fused.backward(softmax_cross_entropy(logits, labels)[1])
    h = x
    for layer in plain.layers:                      # one by one: no fusion
        h = layer.forward(h, training=True)
    d = softmax_cross_entropy(h, labels)[1]
    for layer in reversed(plain.layers):
        d = layer.backward(d)
    np.testing.assert_allclose(logits, h, rtol=1e-6, atol=1e-6)
    assert (logits != 0).any()
    for (name, _, g1), (_, _, g2) in zip(fused.named_parameters(), plain.named_parameters()):
        np.testing.assert_allclose(g1, g2, rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(fused.predict(x, batch_size=3), h, rtol=1e-6, atol=1e-6)


def bn_gelu_net(approximate=False, dtype=np.float32):
    from minicnn.nn import BatchNorm2D, GELU
    return Sequential([Conv2D(3, 8, 3, rng=0, dtype=dtype), BatchNorm2D(8, dtype=dtype),
                       GELU(approximate), MaxPool2D(2),
                       BatchNorm2D(8, freeze_scale=True, dtype=dtype), GELU(approximate),
                       Flatten(), Dense(6 * 6 * 8, 10, rng=1, dtype=dtype)])


def step_numbers(model, x, labels):
    """(logits, loss gradient's grads by name, running stats) after one training step's
    forward and backward, and the eval-mode logits."""
    logits = model.forward(x, training=True)
    model.backward(softmax_cross_entropy(logits, labels)[1])
    grads = {name: g.copy() for name, _, g in model.named_parameters()}
    buffers = {name: a.copy() for name, a in model.named_arrays()}
    return logits, grads, buffers, model.predict(x, batch_size=3)


@pytest.mark.parametrize("backend", ["fast", "reference"])
@pytest.mark.parametrize("approximate,dtype", [(False, np.float32), (True, np.float32),
                                               (False, np.float64)])
def test_batchnorm_and_gelu_fused_give_the_same_numbers(backend, approximate, dtype):
    """BatchNorm2D + GELU run as one step (forward, backward, predict, frozen gamma,
    running statistics) give what the layers give one by one, to the last bit: on the
    fast backend's one-pass kernels (float32, exact GELU) and its two-pass fallback
    (tanh form, float64), and on the reference backend."""
    x = np.random.default_rng(0).standard_normal((4, 12, 12, 3)).astype(dtype) * 3 + 1
    labels = np.array([0, 1, 2, 3])
    fused, plain = bn_gelu_net(approximate, dtype), bn_gelu_net(approximate, dtype)
    plain = Sequential(plain.layers, fuse=False)
    assert fused.steps == [(0,), (1, 2), (3,), (4, 5), (6,), (7,)]
    assert plain.steps == [(i,) for i in range(8)]
    with mc.use_backend(backend):
        got, want = step_numbers(fused, x, labels), step_numbers(plain, x, labels)
    for a, b in zip(got[:1] + got[3:], want[:1] + want[3:]):
        np.testing.assert_array_equal(a, b)
    for name in want[1]:
        np.testing.assert_array_equal(got[1][name], want[1][name], err_msg=name)
        assert np.isfinite(got[1][name]).all()
    assert np.abs(got[1]["1.gamma"]).max() > 0 and "4.gamma" not in got[1]      # frozen
    for name in want[2]:
        np.testing.assert_array_equal(got[2][name], want[2][name], err_msg=name)


def test_batchnorm_gelu_pair_matches_the_formulas_and_keeps_no_gelu_input():
    """The fused step against GELU(BN(x)) written out in float64, and its gradients by
    gradient check; the GELU of a fused pair keeps nothing, and BN keeps only x on the
    fast float32 path (BN's output, GELU's input, is recomputed in backward)."""
    from minicnn.nn.activations import gelu
    net = bn_gelu_net()
    x = np.random.default_rng(3).standard_normal((4, 12, 12, 3)).astype(np.float32)
    logits = net.forward(x, training=True)
    bn, act = net.layers[1], net.layers[2]
    assert act.x is None and bn.z2 is None and bn.x2 is not None
    h = net.layers[0].forward(x.astype(np.float64).astype(np.float32), training=True)
    h64 = h.astype(np.float64).reshape(-1, 8)
    z = (h64 - h64.mean(axis=0)) / np.sqrt(h64.var(axis=0) + bn.eps)
    want = gelu(z).reshape(h.shape)
    got = bn.forward_fused((act,), h, training=True)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert logits.shape == (4, 10)
    for backend in ("fast", "reference"):           # float64: the fused steps' gradients
        with mc.use_backend(backend):
            net64 = bn_gelu_net(dtype=np.float64)
            errors = check_model(net64, softmax_cross_entropy,
                                 np.random.default_rng(4).standard_normal((3, 12, 12, 3)),
                                 np.array([1, 2, 3]))
        assert {"x", "1.gamma", "1.beta", "4.beta"} <= set(errors)
        errors.pop("0.b")                   # BN removes a bias before it: its gradient is 0
        assert max(errors.values()) < 1e-6, errors
        assert np.abs(net64.layers[0].grads["b"]).max() < 1e-10


def test_hooks_run_the_pair_unfused_and_late_backward_hooks_are_refused():
    """With a backward hook set before forward, every layer runs on its own and the hook
    sees dL/d(BN's output) too; set after a fused forward, backward refuses to run
    rather than skip the pair's inner gradient."""
    net = bn_gelu_net()
    x = np.random.default_rng(5).standard_normal((2, 12, 12, 3)).astype(np.float32)
    seen = []
    net.backward_hooks.append(lambda i, layer, dy: seen.append(i))
    y = net.forward(x, training=True)
    assert net.ran_steps == [(i,) for i in range(8)]
    net.backward(np.ones_like(y))
    assert seen == [7, 6, 5, 4, 3, 2, 1, 0]        # BN (1) and GELU (2) each seen
    net.backward_hooks.clear()
    y = net.forward(x, training=True)
    assert net.ran_steps == net.steps
    net.backward_hooks.append(lambda i, layer, dy: None)
    with pytest.raises(RuntimeError, match="set the hooks before forward"):
        net.backward(np.ones_like(y))


@pytest.mark.parametrize("backend", ["fast", "reference"])
def test_conv_and_2x2_maxpool_fused_give_the_same_numbers(backend, monkeypatch):
    """Conv2D + MaxPool2D(2) run as one step: pooled inside the Winograd kernel where the
    conv runs on Winograd (spied), else the two forwards in turn (the 3-channel conv runs
    direct); backward reads dy through the pool's argmax where dW and dx run on Winograd
    (the 24->32 conv, spied); forward, backward, predict the same bits as one by one.
    Other pools (3x3, or stride 1) are not fused."""
    from minicnn.fast import conv as fast_conv
    from minicnn.nn import BatchNorm2D, GELU

    def net():
        return Sequential([Conv2D(3, 24, 3, rng=0), MaxPool2D(2), Conv2D(24, 32, 3, rng=1),
                           MaxPool2D(2), BatchNorm2D(32), GELU(), Conv2D(32, 32, 3, rng=2),
                           MaxPool2D(3), Flatten(), Dense(2 * 2 * 32, 10, rng=3)])
    fused, plain = net(), Sequential(net().layers, fuse=False)
    assert fused.steps == [(0, 1), (2, 3), (4, 5), (6,), (7,), (8,), (9,)]
    assert not Conv2D(3, 8, 3).can_fuse(MaxPool2D(2, stride=1))
    x = np.random.default_rng(1).standard_normal((3, 30, 30, 3)).astype(np.float32)
    pooled, unpooled = [], []
    real, real_dW = fast_conv.winograd_forward, fast_conv.winograd_weight_grad
    monkeypatch.setattr(fast_conv, "winograd_forward",
                        lambda *a, **k: pooled.append(k.get("pool", False)) or real(*a, **k))
    monkeypatch.setattr(fast_conv, "winograd_weight_grad",
                        lambda *a, **k: unpooled.append(len(a) > 5) or real_dW(*a, **k))
    labels = np.array([0, 1, 2])
    with mc.use_backend(backend):
        got, want = step_numbers(fused, x, labels), step_numbers(plain, x, labels)
    if backend == "fast":
        assert True in pooled                                    # the 16->32 conv pooled inside
        assert True in unpooled                  # and its dW read dy through the pool's argmax
    assert np.isfinite(got[0]).all() and np.abs(got[1]["2.W"]).max() > 0
    for a, b in zip(got[:1] + got[3:], want[:1] + want[3:]):
        np.testing.assert_array_equal(a, b)
    for name in want[1]:
        np.testing.assert_array_equal(got[1][name], want[1][name], err_msg=name)


@pytest.mark.parametrize("backend", ["fast", "reference"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_relu_and_2x2_maxpool_run_as_one_step_with_the_same_numbers(backend, dtype,
                                                                         monkeypatch):
    """Conv2D, ReLU, MaxPool2D(2) as one step: on the fast float32 path the Winograd
    kernel applies the ReLU and pools (spied: relu and pool both asked for), elsewhere
    the forwards run in turn. Forward, backward (ReLU's mask at the pooled size, then
    the pool's scatter) and predict give the bits of the three layers run one by one,
    with many all-negative windows (ties at zero); the ReLU keeps only the pooled map."""
    from minicnn.fast import conv as fast_conv

    def net():
        return Sequential([Conv2D(3, 24, 3, rng=0, dtype=dtype), ReLU(),
                           Conv2D(24, 32, 3, rng=1, dtype=dtype), ReLU(), MaxPool2D(2),
                           Conv2D(32, 8, 3, rng=2, dtype=dtype), ReLU(), MaxPool2D(2, stride=1),
                           Flatten(), Dense(6 * 6 * 8, 10, rng=3, dtype=dtype)])
    fused, plain = net(), Sequential(net().layers, fuse=False)
    assert fused.steps == [(0, 1), (2, 3, 4), (5, 6), (7,), (8,), (9,)]
    x = (np.random.default_rng(2).standard_normal((3, 14, 14, 3)) - 0.5).astype(dtype)
    asked = []
    real = fast_conv.winograd_forward
    unpooled = []
    monkeypatch.setattr(fast_conv, "winograd_forward",
                        lambda *a, **k: asked.append((k.get("relu"), k.get("pool")))
                        or unpooled.append(k.get("unpool") is not None) or real(*a, **k))
    labels = np.array([0, 1, 2])
    with mc.use_backend(backend):
        logits = fused.forward(x, training=True)
        assert fused.layers[3].x.shape == (3, 7, 7, 32)          # the ReLU keeps the pooled map
        got, want = step_numbers(fused, x, labels), step_numbers(plain, x, labels)
    if backend == "fast" and dtype == np.float32:
        assert (True, True) in asked                              # ReLU and pool in the kernel
        assert True in unpooled                                   # dx read through the argmax
    np.testing.assert_array_equal(logits, got[0])
    pooled_zeros = (plain.layers[4].forward(plain.layers[3].forward(plain.layers[2].forward(
        plain.layers[1].forward(plain.layers[0].forward(x))))) == 0).mean()
    assert pooled_zeros > 0.05                                    # windows all <= 0 exist
    assert np.abs(got[1]["2.W"]).max() > 0
    for a, b in zip(got[:1] + got[3:], want[:1] + want[3:]):
        np.testing.assert_array_equal(a, b)
    for name in want[1]:
        np.testing.assert_array_equal(got[1][name], want[1][name], err_msg=name)


def test_gradients_through_the_conv_relu_pool_step_pass_a_gradient_check():
    """float64 gradient check of a model whose first conv runs with its ReLU and pool
    as one step, on both backends (the input gradient too)."""
    for backend in ("fast", "reference"):
        with mc.use_backend(backend):
            net = Sequential([Conv2D(2, 4, 3, rng=0, dtype=np.float64), ReLU(), MaxPool2D(2),
                              Conv2D(4, 4, 3, rng=1, dtype=np.float64), ReLU(), MaxPool2D(2),
                              Flatten(), Dense(2 * 2 * 4, 3, rng=2, dtype=np.float64)])
            assert net.steps[:2] == [(0, 1, 2), (3, 4, 5)]
            rng = np.random.default_rng(6)
            errors = check_model(net, softmax_cross_entropy, rng.standard_normal((2, 8, 8, 2)),
                                 np.array([0, 2]))
        assert {"x", "0.W", "3.W"} <= set(errors)
        assert max(errors.values()) < 1e-6, (backend, errors)
