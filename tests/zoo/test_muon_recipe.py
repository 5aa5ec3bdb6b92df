"""The airbench94_muon recipe (minicnn/zoo/recipe.py): which optimizer owns which param,
the converted learning rates, the head's start, the schedule, and a few training steps."""
import numpy as np
import pytest

from minicnn.nn import softmax_cross_entropy
from minicnn.optim import SGD, Chain, Muon
from minicnn.zoo import (airbench, airbench_muon_head_init, airbench_muon_optimizer,
                         airbench_muon_schedule, freeze_whiten_bias, simple)


def owners(opt):
    """{param name: [type names of the optimizers holding it]}."""
    held = {}
    for member in opt.optimizers:
        for group in member.param_groups:
            for name, _, _ in group["params"]:
                held.setdefault(name, []).append(type(member).__name__)
    return held


@pytest.mark.parametrize("frozen_whiten", [True, False])
def test_every_trainable_param_has_exactly_one_optimizer(frozen_whiten):
    model = airbench((4, 8, 8), frozen_whiten=frozen_whiten)
    opt = airbench_muon_optimizer(model, 2000)
    assert isinstance(opt, Chain) and [type(o) for o in opt.optimizers] == [SGD, Muon]
    held = owners(opt)
    trainable = {name: p for name, p, _ in model.named_parameters()}
    assert sorted(held) == sorted(trainable)
    assert all(len(optimizers) == 1 for optimizers in held.values()), held
    filters = sorted(name for name, p in trainable.items() if p.ndim == 4)
    assert len(filters) == 6 + (0 if frozen_whiten else 1)       # + a trainable first conv
    assert sorted(n for n, o in held.items() if o == ["Muon"]) == filters
    assert "0.W" not in held if frozen_whiten else held["0.W"] == ["Muon"]
    head = f"{len(model.layers) - 1}.W"
    assert held[head] == ["SGD"] and held["0.b"] == ["SGD"]


def test_learning_rates_are_airbench94_muon_converted_to_a_mean_loss():
    model = airbench((64, 256, 256))
    opt = airbench_muon_optimizer(model, 2000)
    sgd, muon = opt.optimizers
    norm, whiten_bias, head = sgd.param_groups
    assert all(name.endswith("beta") for name, _, _ in norm["params"])
    assert [name for name, _, _ in whiten_bias["params"]] == ["0.b"]
    # bias_lr 0.053 per summed example, wd 2e-6 * B / lr (PyTorch L2)
    for group in (norm, whiten_bias):
        assert group["lr"] == pytest.approx(0.053 * 2000)
        assert group["weight_decay"] == pytest.approx(2e-6 / 0.053)
    # head_lr 0.67 for logits (x @ W) / 256; minicnn's head is (x @ W) / 9
    assert head["lr"] == pytest.approx(0.67 * 2000 * (9 / 256) ** 2)
    assert head["lr"] * head["weight_decay"] == pytest.approx(2e-6 * 2000)   # decay per step
    assert sgd.param_groups[0]["momentum"] == 0.85 and sgd.param_groups[0]["nesterov"]
    (filters,) = muon.param_groups
    assert filters["lr"] == 0.24 and filters["momentum"] == 0.6 and filters["nesterov"]
    assert filters["ns_steps"] == 3 and filters["normalize_weights"]
    assert filters["weight_decay"] == 0.0 and not filters["shape_scale"]
    assert opt.lrs == pytest.approx([106.0, 106.0, head["lr"], 0.24])


def test_head_starts_like_airbench94_muon_and_other_nets_are_refused():
    model = airbench((4, 8, 16), rng=3)
    head = model.layers[-1]
    airbench_muon_head_init(model)
    # airbench94_muon: W at std 1, logits divided by the width 16
    assert float(head.params["W"].std()) * head.scale == pytest.approx(1 / 16, rel=1e-6)
    with pytest.raises(ValueError, match="the airbench net"):
        airbench_muon_optimizer(simple(), 128)


def test_schedule_falls_linearly_to_zero_and_the_whitening_bias_stops():
    s = airbench_muon_schedule(200)
    assert s(0) == 1.0 and s(50) == pytest.approx(0.75) and s(199) == pytest.approx(0.005)
    assert s(200) == 0.0
    model = airbench((4, 8, 8))
    opt = airbench_muon_optimizer(model, 100)

    class T:                                                      # the Trainer, as hooks see it
        optimizer = opt
    T.model = model
    hook = freeze_whiten_bias(3)
    hook(T, 3)
    whiten_group = opt.param_groups[1]
    assert [name for name, _, _ in whiten_group["params"]] == ["0.b"]
    assert whiten_group["lr_scale"] == 0.0 and opt.lrs[1] == 0.0 and opt.lrs[0] > 0


def test_a_few_steps_on_random_data_lower_the_loss():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, size=32)
    model = airbench((4, 8, 8), rng=1, whiten_images=x)
    airbench_muon_head_init(model)
    opt = airbench_muon_optimizer(model, len(y))
    frozen_W = model.layers[0].params["W"].copy()
    losses = []
    for _ in range(8):
        logits = model.forward(x, training=True)
        loss, dlogits = softmax_cross_entropy(logits, y, label_smoothing=0.2)
        model.backward(dlogits)
        opt.step()
        losses.append(loss)
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.8 * losses[0], losses
    np.testing.assert_array_equal(model.layers[0].params["W"], frozen_W)   # whitening: frozen
    for name, p, _ in model.named_parameters():                          # Muon's filters
        if p.ndim == 4:
            assert np.linalg.norm(p) == pytest.approx(np.sqrt(p.shape[-1]), rel=0.1), name
