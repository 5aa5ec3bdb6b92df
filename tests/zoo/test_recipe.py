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
