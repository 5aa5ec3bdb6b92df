"""The airbench94 training recipe (minicnn/zoo/recipe.py): optimizer groups, learning
rates, schedule and lookahead."""
import pytest

from minicnn.zoo import (airbench, airbench_lookahead, airbench_lr, airbench_optimizer,
                         airbench_schedule, freeze_whiten_bias)


def test_airbench_learning_rates_match_the_published_recipe():
    # airbench94: lr 11.5 per 1024 summed examples, momentum 0.85 -> 1.5 for a mean loss at B=1024
    assert airbench_lr(1024) == pytest.approx(11.5 / (1 + 1 / 0.15))
    assert airbench_lr(512) == pytest.approx(airbench_lr(1024) / 2)
    model = airbench((4, 8, 8))
    opt = airbench_optimizer(model, 1024)
    norm, whiten, rest = opt.param_groups
    assert all(n.endswith("beta") for n, _, _ in norm["params"])
    assert norm["lr_scale"] == 64 and norm["weight_decay"] == pytest.approx(0.0153 / 11.5 / 64)
    assert [n for n, _, _ in whiten["params"]] == ["0.b"]
    assert rest["weight_decay"] == pytest.approx(0.0153 / 11.5)
    assert opt.param_groups[0]["nesterov"] and opt.param_groups[0]["momentum"] == 0.85

    assert model.roles()["0.b"] == "whitening_bias"              # the group is found by role

    class T:                                                      # the Trainer, as hooks see it
        optimizer = opt
    T.model = model
    hook = freeze_whiten_bias(3)
    hook(T, 2)
    assert whiten["lr_scale"] == 1.0
    hook(T, 3)
    assert whiten["lr_scale"] == 0.0


def test_schedule_and_lookahead_decay_shapes():
    s = airbench_schedule(100)
    assert s(0) == pytest.approx(0.2) and s(23) == pytest.approx(1.0)
    assert s(100) == pytest.approx(0.07) and s(60) < s(23)
    la, decay = airbench_lookahead(airbench((4, 8, 8)), 100)
    assert decay(0) == 0.0 and decay(100) == pytest.approx(0.95 ** 5)
    assert decay(50) == pytest.approx(0.95 ** 5 / 8)


def test_frozen_whiten_bias_stops_the_backward_pass_above_it():
    """After the freeze, nothing below the first conv is trained: its dx, the GELU's and
    the whitening layer's backward are skipped, every other gradient is unchanged, and
    the bias neither moves nor keeps a stale gradient. Unfreezing (a resumed earlier
    epoch) brings the full backward pass back."""
    import numpy as np

    from minicnn.nn.loss import softmax_cross_entropy

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 32, 32, 3)).astype(np.float32)
    labels = rng.integers(0, 10, 4)
    model = airbench((4, 8, 8), rng=0)
    opt = airbench_optimizer(model, 4)

    class T:                                                     # the Trainer, as hooks see it
        optimizer = opt
    T.model = model
    called = []
    model.backward_hooks.append(lambda i, layer, dy: called.append(i))

    def step_grads():
        called.clear()
        loss, dlogits = softmax_cross_entropy(model.forward(x, training=True), labels)
        model.backward(dlogits)
        return {name: g.copy() for name, _, g in model.named_parameters()}

    freeze_whiten_bias(3)(T, 2)
    before = step_grads()
    assert called[-1] == 0 and np.abs(before["0.b"]).sum() > 0 and model.layers[2].needs_input_grad is True
    freeze_whiten_bias(3)(T, 3)
    after = step_grads()
    assert min(called) == 2 and "0.b" not in after and not model.layers[0].grads["b"].any()
    assert model.layers[2].needs_input_grad is False
    assert set(after) == set(before) - {"0.b"}
    for name in after:
        np.testing.assert_array_equal(after[name], before[name])
    bias = model.layers[0].params["b"].copy()
    opt.step()
    np.testing.assert_array_equal(model.layers[0].params["b"], bias)
    assert model.input_gradient(softmax_cross_entropy(model.forward(x, training=True), labels)[1]).shape == x.shape
    freeze_whiten_bias(3)(T, 1)                                  # an earlier epoch: trains again
    step_grads()
    assert called[-1] == 0 and np.abs(model.layers[0].grads["b"]).sum() > 0
