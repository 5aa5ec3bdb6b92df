"""The reference backend: switching to it, gradient checks of its NumPy code, whole
networks on it, and the rules that tie a layer's backward to the backend of its forward."""
import numpy as np
import pytest

import minicnn as mc
from minicnn import backend
from minicnn.gradcheck import check_layer
from minicnn.nn import softmax_cross_entropy
from minicnn.optim import Adam
from minicnn.zoo import airbench, simple


def test_use_backend_is_a_call_and_a_context_manager():
    assert mc.current_backend() == "fast"
    with mc.use_backend("reference") as chosen:
        assert mc.current_backend() == "reference"
        with mc.use_backend("fast"):
            assert mc.current_backend() == "fast"
        assert mc.current_backend() == "reference"
    assert mc.current_backend() == "fast" and chosen.previous == "fast"
    mc.use_backend("reference")
    try:
        assert mc.current_backend() == "reference"
    finally:
        mc.use_backend("fast")
    assert mc.current_backend() == "fast"


def test_use_backend_restores_after_an_error_and_refuses_unknown_names():
    with pytest.raises(KeyError):
        with mc.use_backend("reference"):
            raise KeyError("inside")
    assert mc.current_backend() == "fast"
    with pytest.raises(ValueError, match="unknown backend 'gpu'.*'fast', 'reference'"):
        mc.use_backend("gpu")
    assert mc.current_backend() == "fast"


def layers_to_check():
    yield "conv_same", lambda: mc.Conv2D(3, 4, 3, rng=0, dtype=np.float64), (2, 6, 5, 3)
    yield "conv_stride2", lambda: mc.Conv2D(3, 4, 3, stride=2, padding=1, rng=0, dtype=np.float64), (2, 7, 6, 3)
    yield "conv_valid_2x2", lambda: mc.Conv2D(2, 3, 2, padding="valid", rng=0, dtype=np.float64), (2, 5, 5, 2)
    yield "relu", lambda: mc.ReLU(), (2, 3, 3, 4)
    yield "leaky_relu", lambda: mc.LeakyReLU(0.2), (2, 3, 3, 4)
    yield "gelu", lambda: mc.GELU(), (2, 3, 3, 4)
    yield "gelu_tanh", lambda: mc.GELU(approximate=True), (2, 3, 3, 4)
    yield "maxpool", lambda: mc.MaxPool2D(2), (2, 4, 6, 3)
    yield "maxpool_overlap", lambda: mc.MaxPool2D(3, 2), (2, 7, 5, 3)
    yield "batchnorm2d", lambda: mc.BatchNorm2D(3, dtype=np.float64), (4, 3, 2, 3)
    yield "batchnorm1d", lambda: mc.BatchNorm1D(5, dtype=np.float64), (6, 5)
    yield "dense", lambda: mc.Dense(7, 4, rng=0, dtype=np.float64, scale=0.25), (3, 7)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("name, make, shape", list(layers_to_check()),
                         ids=[c[0] for c in layers_to_check()])
def test_reference_code_passes_gradient_checks(name, make, shape, training):
    rng = np.random.default_rng(1)       # not check_layer's seed 0: R would be a function of x
    layer = make()
    x = rng.standard_normal(shape)
    if "relu" in name or "maxpool" in name:     # keep away from the kinks (0, ties) by > h
        x = np.where(np.abs(x) < 0.05, 0.3, x) + np.arange(x.size).reshape(shape) * 1e-3
    if "batchnorm" in name:
        x = x * 2 + 1
        layer.params["gamma"][...] = rng.uniform(0.5, 1.5, layer.C)
        layer.buffers["running_var"][...] = rng.uniform(0.5, 2, layer.C)
    with mc.use_backend("reference"):
        errors = check_layer(layer, x, training=training)
        assert layer.ran_on == "reference"
    assert errors and max(errors.values()) < 1e-7, errors


def test_gradient_check_catches_a_wrong_reference_backward(monkeypatch):
    """The check above can fail: a transposed-kernel slip in the reference dx is caught."""
    import minicnn.nn.conv as conv
    right = conv.conv2d_backward

    def wrong(dy, x, W, stride, pads):
        dx, dW, db = right(dy, x, W, stride, pads)
        return dx * 1.01, dW, db
    monkeypatch.setattr(conv, "conv2d_backward", wrong)
    layer = mc.Conv2D(2, 3, 3, rng=0, dtype=np.float64)
    with mc.use_backend("reference"):
        errors = check_layer(layer, np.random.default_rng(0).standard_normal((1, 4, 4, 2)))
    assert errors["x"] > 1e-3 and errors["W"] < 1e-7


@pytest.mark.parametrize("make", [lambda: simple(rng=0), lambda: airbench((16, 32, 32), rng=0)],
                         ids=["simple", "airbench"])
def test_a_whole_network_agrees_on_both_backends(make):
    model = make()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 32, 32, 3)).astype(np.float32)
    labels = rng.integers(0, 10, 8)

    def step(name):
        with mc.use_backend(name):
            loss, dlogits = softmax_cross_entropy(model.forward(x, training=True), labels)
            model.backward(dlogits)
            eval_logits = model.predict(x, batch_size=4)
        return loss, {n: g.copy() for n, _, g in model.named_parameters()}, eval_logits

    saved = model.state_dict()
    loss_ref, grads_ref, eval_ref = step("reference")
    model.load_state_dict(saved)                   # BatchNorm statistics as before
    loss, grads, eval_fast = step("fast")
    assert abs(loss - loss_ref) < 1e-5 * abs(loss_ref)
    assert grads.keys() == grads_ref.keys()
    for name in grads:
        denom = np.linalg.norm(grads_ref[name]) + 1e-12
        assert np.linalg.norm(grads[name] - grads_ref[name]) / denom < 2e-4, name
    assert np.abs(eval_fast - eval_ref).max() < 1e-3 * np.abs(eval_ref).max()


def test_a_tiny_network_learns_on_the_reference_backend():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 4, 16)
    model = mc.Sequential([mc.Conv2D(3, 8, 3, rng=0), mc.ReLU(), mc.MaxPool2D(2),
                           mc.Flatten(), mc.Dense(4 * 4 * 8, 4, rng=0)])
    opt = Adam(model.named_parameters(), lr=1e-2)
    with mc.use_backend("reference"):
        losses = []
        for _ in range(60):
            loss, d = softmax_cross_entropy(model.forward(x, training=True), y)
            model.backward(d)
            opt.step()
            losses.append(loss)
        accuracy = (model.predict(x).argmax(1) == y).mean()
    assert losses[-1] < 0.1 * losses[0] and accuracy == 1.0


def test_backward_runs_on_the_backend_of_its_forward(monkeypatch):
    layer = mc.Conv2D(4, 4, 3, rng=0)
    x = np.random.default_rng(0).standard_normal((2, 6, 6, 4)).astype(np.float32)
    used = []
    original = mc.Conv2D.backward_reference
    monkeypatch.setattr(mc.Conv2D, "backward_reference",
                        lambda self, dy: used.append("reference") or original(self, dy))
    y = layer.forward(x, training=True)                         # fast
    with mc.use_backend("reference"):
        layer.backward(np.ones_like(y))
    assert used == [] and layer.ran_on == "fast"
    with mc.use_backend("reference"):
        y = layer.forward(x, training=True)
    layer.backward(np.ones_like(y))                             # fast is active again
    assert used == ["reference"]


def test_backward_before_forward_says_so():
    for layer, dy in ((mc.Conv2D(2, 2, 3), np.zeros((1, 4, 4, 2), np.float32)),
                      (mc.ReLU(), np.zeros((1, 2), np.float32)),
                      (mc.MaxPool2D(2), np.zeros((1, 2, 2, 1), np.float32)),
                      (mc.BatchNorm2D(2), np.zeros((1, 2, 2, 2), np.float32)),
                      (mc.Dense(2, 2), np.zeros((1, 2), np.float32)),
                      (mc.GlobalMaxPool2D(), np.zeros((1, 2), np.float32))):
        with pytest.raises(RuntimeError, match="call forward first"):
            layer.backward(dy)


def test_a_subclass_that_changes_the_maths_runs_its_own_code():
    class DoubledReLU(mc.ReLU):
        def forward_reference(self, x):
            self.x = x
            return 2 * np.maximum(x, 0)

    class NamedReLU(mc.ReLU):                    # same maths: keeps the fast kernel
        pass

    x = np.array([[-1.0, 2.0]], np.float32)
    assert backend.fast_implementation(DoubledReLU, "forward") is None
    assert backend.fast_implementation(NamedReLU, "forward") is backend.fast_implementation(mc.ReLU, "forward")
    np.testing.assert_array_equal(DoubledReLU().forward(x), [[0.0, 4.0]])
    np.testing.assert_array_equal(NamedReLU().forward(x), [[0.0, 2.0]])


def test_a_layer_of_your_own_needs_only_forward_and_backward():
    class Square(mc.Layer):
        def forward(self, x, training=False):
            self.x = x
            return x * x

        def backward(self, dy):
            return 2 * self.x * dy

    layer = Square()
    x = np.random.default_rng(0).standard_normal((3, 4))
    for name in ("fast", "reference"):
        with mc.use_backend(name):
            errors = check_layer(layer, x)
        assert errors["x"] < 1e-8


def test_a_subclass_redefining_one_pass_runs_both_on_its_reference_code():
    """What forward keeps is private to the code that ran it: a subclass that redefines
    forward_reference must not get the base class's fast backward."""
    class ShiftedBN(mc.BatchNorm1D):
        def forward_reference(self, x2, training):
            return super().forward_reference(x2, training) + 1.0

    layer = ShiftedBN(3, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((5, 3))
    y = layer.forward(x, training=True)                          # the fast backend is active
    assert layer.ran_on == "reference"
    assert backend.fast_implementation(ShiftedBN, "backward") is None
    dx = layer.backward(np.ones_like(y))
    assert dx.shape == x.shape and np.abs(dx).max() < 1e-12      # d(sum of normalised)/dx = 0


def test_a_subclass_redefining_a_fused_pass_runs_every_pass_on_its_reference_code():
    """Any redefined *_reference method counts, not only forward's and backward's: a conv
    whose pooled pass has other maths gets none of Conv2D's fast passes, fused or not."""
    class OtherPooledConv(mc.Conv2D):
        def forward_pool_reference(self, x, training, pool, relu=False):
            return super().forward_pool_reference(x, training, pool, relu)

    assert backend.fast_implementation(mc.Conv2D, "forward_pool") is not None
    for pass_name in ("forward", "backward", "forward_pool", "backward_pool"):
        assert backend.fast_implementation(OtherPooledConv, pass_name) is None


def test_only_max_pooling_is_limited_to_11x11_windows():
    with pytest.raises(ValueError, match="pool_size must be at most 11, got 12"):
        mc.MaxPool2D(12)
    x = np.random.default_rng(0).standard_normal((1, 12, 12, 2)).astype(np.float32)
    np.testing.assert_allclose(mc.AvgPool2D(12).forward(x)[0, 0, 0], x[0].mean(axis=(0, 1)),
                               rtol=1e-5)
