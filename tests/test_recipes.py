"""The airbench pieces: whitening, dirac init, the optimizer recipe, TTA."""
import numpy as np
import pytest

import minicnn as mc
from minicnn.evaluate import mirror, predict_logits
from minicnn.models import airbench, dirac_init
from minicnn.recipes import (airbench_lookahead, airbench_lr, airbench_optimizer,
                             airbench_schedule, freeze_whiten_bias)
from minicnn.whitening import patches, whitening_weights


def test_whitening_decorrelates_patches(rng):
    # Correlated channels: the whitened 2x2 patch features must have identity covariance.
    base = rng.standard_normal((64, 12, 12, 1))
    x = np.concatenate([base, 0.5 * base + 0.1 * rng.standard_normal(base.shape),
                        rng.standard_normal(base.shape)], axis=3)
    W = whitening_weights(x, 2, eps=0.0)
    assert W.shape == (2, 2, 3, 24)
    p = patches(x, 2)
    feats = (p - p.mean(0)) @ W.reshape(12, 24)[:, :12]
    np.testing.assert_allclose(np.cov(feats.T, bias=True), np.eye(12), atol=1e-6)
    np.testing.assert_array_equal(W[..., 12:], -W[..., :12])


def test_whiten_layer_is_frozen_in_airbench(rng):
    x = rng.standard_normal((10, 32, 32, 3)).astype(np.float32)
    model = airbench((8, 8, 8), whiten_images=x)
    names = [n for n, _, _ in model.named_parameters()]
    assert "0.W" not in names and "0.b" in names
    np.testing.assert_allclose(model[0].params["W"], whitening_weights(x, 2), rtol=1e-6)


def test_airbench_ablation_switches(rng):
    x = rng.standard_normal((10, 32, 32, 3)).astype(np.float32)
    plain = airbench((8, 8, 8), frozen_whiten=False, dirac=False, rng=0)
    assert "0.W" in [n for n, _, _ in plain.named_parameters()]     # first conv trains
    W = plain[2].params["W"]                                        # first 3x3 conv: no identity
    assert not np.allclose(W[1, 1, :, :8], np.eye(24, 8))
    assert np.allclose(airbench((8, 8, 8), rng=0)[2].params["W"][1, 1, :, :8], np.eye(24, 8))
    with pytest.raises(ValueError, match="frozen_whiten=False"):
        airbench((8, 8, 8), whiten_images=x, frozen_whiten=False)


def test_dirac_init_passes_channels_through(rng):
    conv = mc.Conv2D(4, 6, 3, bias=False, rng=0)
    dirac_init(conv)
    x = rng.standard_normal((2, 5, 5, 4)).astype(np.float32)
    y = conv.forward(x)
    np.testing.assert_allclose(y[..., :4], x, atol=1e-6)
    assert np.abs(y[..., 4:]).sum() > 0          # the extra filters keep their random init


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

    class T:
        optimizer = opt
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


def test_tta_levels(rng):
    model = airbench((4, 8, 8), rng=1)
    x = rng.standard_normal((3, 32, 32, 3)).astype(np.float32)
    plain = predict_logits(model, x, tta=0)
    flip = predict_logits(model, x, tta=1)
    np.testing.assert_allclose(flip, 0.5 * (plain + model.predict(np.ascontiguousarray(mirror(x)))),
                               rtol=1e-5, atol=1e-6)
    # level 1 and 2 are mirror-invariant by construction
    np.testing.assert_allclose(predict_logits(model, np.ascontiguousarray(mirror(x)), tta=1), flip,
                               rtol=1e-4, atol=1e-5)
    assert predict_logits(model, x, tta=2).shape == (3, 10)
    with pytest.raises(ValueError, match="tta must be 0, 1 or 2"):
        predict_logits(model, x, tta=3)
