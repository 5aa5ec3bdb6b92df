"""A ReLU's backward done by the Conv2D after it (``Conv2D.backward(dy, through_relu=True)``,
``Sequential.relu_folds``, ``Layer.takes_relu_backward``): dL/dz = dx where x > 0, else 0, on every dx path and both
backends, the same bits as the ReLU's own backward; and the steps Sequential folds."""
import numpy as np
import pytest

import minicnn as mc
import minicnn.fast.conv as fast_conv
from minicnn.fast.conv_winograd import winograd_forward
from minicnn.fast.kernels.relu import relu_backward
from minicnn.fast.rules import conv_shape
from minicnn.nn import softmax_cross_entropy
from minicnn.zoo import simple

DX_PATHS = ["winograd", "direct", "shifts", "taps", "im2col", "col2im"]


def relu_output(rng, shape, dtype=np.float32):
    """max(z, 0) with about half the entries exactly 0, and a few -0.0 (masked too)."""
    x = np.maximum(rng.standard_normal(shape), 0).astype(dtype)
    x.reshape(-1)[::7] = -0.0
    return x


def masked(x, dx):
    out = np.empty_like(dx)
    relu_backward(x.reshape(-1), dx.reshape(-1), out.reshape(-1))
    return out


@pytest.mark.parametrize("path", DX_PATHS)
def test_conv_backward_through_relu_on_every_dx_path(path):
    """dx through the input's ReLU == the ReLU's backward of dx, bit for bit, wherever
    dx is computed (Winograd applies the mask as it writes; the others by a pass after)."""
    rng = np.random.default_rng(3)
    layer = mc.Conv2D(32, 32, 3, padding="same", rng=0)
    x = relu_output(rng, (2, 16, 16, 32))
    dy = rng.standard_normal((2, 16, 16, 32)).astype(np.float32)
    layer.forced_paths = {"dx": path}
    assert fast_conv.conv_path(layer, "dx", conv_shape(layer, x.shape, x.dtype)) == path
    layer.forward(x, training=True)
    plain = layer.backward(dy)
    through = layer.backward(dy, through_relu=True)
    assert (through == 0).sum() > (plain == 0).sum() + x.size // 4   # the mask did something
    np.testing.assert_array_equal(through, masked(x, plain))


def test_reference_backend_backward_through_relu():
    rng = np.random.default_rng(4)
    layer = mc.Conv2D(3, 5, 3, padding=1, rng=0, dtype=np.float64)
    x = relu_output(rng, (2, 6, 7, 3), np.float64)
    dy = rng.standard_normal((2, 6, 7, 5))
    with mc.use_backend("reference"):
        layer.forward(x, training=True)
        plain = layer.backward(dy)
        through = layer.backward(dy, through_relu=True)
    np.testing.assert_array_equal(through, np.where(x > 0, plain, 0))


def test_pooled_conv_backward_through_relu():
    """Conv2D + 2x2 max-pool (the Winograd kernels read dy through the argmax) with the
    input's ReLU: the same as the unpooled backward then the mask, and the fallback
    (pool's backward first) gives the same numbers."""
    rng = np.random.default_rng(5)
    conv, pool = mc.Conv2D(32, 32, 3, padding="same", rng=0), mc.MaxPool2D(2)
    x = relu_output(rng, (2, 12, 12, 32))
    pooled = conv.forward_fused((pool,), x, training=True)
    dy = rng.standard_normal(pooled.shape).astype(np.float32)
    want = masked(x, conv.backward(pool.backward(dy)))
    np.testing.assert_array_equal(conv.backward_pooled(pool, dy, through_relu=True), want)
    conv.allow_winograd = False                   # the fallback, on another dx path
    got = conv.backward_pooled(pool, dy, through_relu=True)
    assert (got[x <= 0] == 0).all() and (got[x > 0] != 0).mean() > 0.9
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_winograd_mask_refuses_what_it_cannot_do():
    x = np.zeros((1, 8, 8, 32), np.float32)
    W = np.zeros((3, 3, 32, 32), np.float32)
    with pytest.raises(ValueError, match=r"got \(1, 8, 8, 31\) float32, bias False"):
        winograd_forward(x, W, None, 1, 1, 8, 8, mask=np.zeros((1, 8, 8, 31), np.float32))
    with pytest.raises(ValueError, match=r"got \(1, 8, 8, 32\) float64"):
        winograd_forward(x, W, None, 1, 1, 8, 8, mask=np.zeros((1, 8, 8, 32)))
    with pytest.raises(ValueError, match="bias True"):
        winograd_forward(x, W, np.zeros(32, np.float32), 1, 1, 8, 8, mask=x)
    with pytest.raises(ValueError, match="relu=True"):
        winograd_forward(x, W, None, 1, 1, 8, 8, relu=True, mask=x)


def test_the_steps_sequential_folds():
    model = simple(rng=0)
    # steps: (0,1) conv+ReLU, (2,3,4) conv+ReLU+pool, (5,6) conv+ReLU, (7,8,9), flatten, ...
    assert model.relu_folds == {1, 2, 3}                  # the convs after a ReLU
    bn_relu = mc.Sequential([mc.Conv2D(3, 4, rng=0), mc.BatchNorm2D(4), mc.ReLU(),
                             mc.Conv2D(4, 4, rng=1), mc.MaxPool2D(2), mc.Conv2D(4, 2, rng=2),
                             mc.GELU(), mc.Conv2D(2, 2, rng=3)])
    assert bn_relu.steps[2:4] == [(2,), (3, 4)]
    assert bn_relu.relu_folds == {3}                      # after a ReLU on its own only
    assert mc.Sequential(simple(rng=0).layers, fuse=False).relu_folds == set()
    model.fold_relus = False
    assert model.relu_folds == set()


def test_only_a_plain_conv_takes_the_relu_backward():
    class MyConv(mc.Conv2D):
        pass
    relu_step = [mc.ReLU()]
    assert mc.Conv2D(2, 2).takes_relu_backward(relu_step)
    assert not MyConv(2, 2).takes_relu_backward(relu_step)
    assert not mc.Conv2D(2, 2).takes_relu_backward([mc.GELU()])
    assert not mc.Conv2D(2, 2).takes_relu_backward([mc.Conv2D(2, 2), mc.MaxPool2D(2)])
    assert not mc.Dense(2, 2).takes_relu_backward(relu_step)
    with pytest.raises(ValueError, match="no ReLU fold"):
        mc.Conv2D(2, 2).backward_fused((mc.GELU(),), None, through_relu=True)


def net_with_every_kind_of_fold():
    """A standalone ReLU before a conv, a conv + ReLU before one, a conv + ReLU + pool
    before one; 32 channels on 16x16 maps keep Winograd on for the convs after them."""
    return mc.Sequential([
        mc.Conv2D(3, 32, rng=0), mc.BatchNorm2D(32), mc.ReLU(),
        mc.Conv2D(32, 32, rng=1), mc.ReLU(),
        mc.Conv2D(32, 32, rng=2), mc.ReLU(), mc.MaxPool2D(2),
        mc.Conv2D(32, 16, rng=3), mc.ReLU(), mc.MaxPool2D(2),
        mc.Flatten(), mc.Dense(4 * 4 * 16, 10, rng=4)])


@pytest.mark.parametrize("backend", ["fast", "reference"])
def test_folded_backward_gives_the_bits_of_the_unfolded_one(backend):
    """Gradients and the input's gradient with the folds, without them, and layer by
    layer (hooks: no fusion, no folds) are the same arrays."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 16, 16, 3)).astype(np.float32)
    labels = np.array([1, 4, 9])
    results = []
    for mode in ("folds", "no folds", "hooks"):
        model = net_with_every_kind_of_fold()
        if mode == "no folds":
            model.fold_relus = False
        seen = []
        if mode == "hooks":
            model.backward_hooks.append(lambda i, layer, d: seen.append(i))
        with mc.use_backend(backend):
            _, d = softmax_cross_entropy(model.forward(x, training=True), labels)
            dx = model.input_gradient(d)
        assert (mode == "hooks") == bool(seen)
        results.append((dx, [g.copy() for g in model.gradients()]))
    assert net_with_every_kind_of_fold().relu_folds == {3, 4, 5}   # steps (3, 4), (5, 6, 7), (8, 9, 10)
    (dx0, g0), *others = results
    assert np.abs(dx0).sum() > 0
    for dx, grads in others:
        np.testing.assert_array_equal(dx, dx0)
        for a, b in zip(grads, g0):
            np.testing.assert_array_equal(a, b)


def test_hooks_set_after_forward_see_every_relu():
    """Backward hooks turn the folds off even when set after a forward of single steps
    (a model with no fused step): each ReLU's gradient is seen, and the numbers agree."""
    def model():
        return mc.Sequential([mc.Conv2D(3, 4, rng=0), mc.BatchNorm2D(4), mc.ReLU(),
                              mc.Conv2D(4, 2, rng=1), mc.Flatten(), mc.Dense(8 * 8 * 2, 3, rng=2)])
    x = np.random.default_rng(8).standard_normal((2, 8, 8, 3)).astype(np.float32)
    grads = []
    for late_hook in (False, True):
        net = model()
        assert net.relu_folds == {3}
        _, d = softmax_cross_entropy(net.forward(x, training=True), np.array([0, 2]))
        seen = []
        if late_hook:
            net.backward_hooks.append(lambda i, layer, g: seen.append(i))
        net.backward(d)
        assert seen == ([5, 4, 3, 2, 1, 0] if late_hook else [])
        grads.append([g.copy() for g in net.gradients()])
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)


def test_a_folded_relu_on_its_own_is_not_run(monkeypatch):
    calls = []
    real = mc.ReLU.backward
    monkeypatch.setattr(mc.ReLU, "backward", lambda self, dy: calls.append(self) or real(self, dy))
    net = mc.Sequential([mc.Conv2D(3, 4, rng=0), mc.BatchNorm2D(4), mc.ReLU(),
                         mc.Conv2D(4, 2, rng=1), mc.Flatten(), mc.Dense(8 * 8 * 2, 3, rng=2)])
    x = np.random.default_rng(9).standard_normal((2, 8, 8, 3)).astype(np.float32)
    _, d = softmax_cross_entropy(net.forward(x, training=True), np.array([0, 2]))
    net.backward(d)
    assert calls == []
    net.fold_relus = False
    _, d = softmax_cross_entropy(net.forward(x, training=True), np.array([0, 2]))
    net.backward(d)
    assert calls == [net[2]]


def test_a_folded_relu_is_not_run(monkeypatch):
    """The folds are real: the ReLU backward kernel does not run in a simple-net step
    on Winograd (every ReLU there is folded or pooled; the Dense ReLU runs it)."""
    calls = []
    real = mc.ReLU.backward
    monkeypatch.setattr(mc.ReLU, "backward", lambda self, dy: calls.append(self) or real(self, dy))
    model = simple(rng=0)
    x = np.random.default_rng(7).standard_normal((2, 32, 32, 3)).astype(np.float32)
    _, d = softmax_cross_entropy(model.forward(x, training=True), np.array([0, 1]))
    model.backward(d)
    assert [model.layers.index(r) for r in calls] == [12, 8]   # Dense's ReLU, pooled conv4's
