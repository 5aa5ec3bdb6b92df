"""The ready-made networks (minicnn/zoo/nets.py): airbench's frozen whitening layer, its
ablation switches and dirac init, gradients end to end, and the FLOP counts."""
import numpy as np
import pytest

import minicnn as mc
from minicnn.gradcheck import check_model
from minicnn.nn.loss import softmax_cross_entropy
from minicnn.zoo import airbench, dirac_init, simple, whitening_weights


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


def test_airbench_gradcheck_end_to_end(rng):
    model = airbench(widths=(2, 3, 3), dtype=np.float64)
    x = rng.standard_normal((2, 25, 25, 3))        # 25 -> 24 -> 12 -> 6 -> 3 -> 1
    # dx of every layer type is checked elsewhere; here the parameters, end to end.
    errors = check_model(model, lambda z, y: softmax_cross_entropy(z, y, 0.2), x, np.array([1, 7]),
                         check_input=False)
    assert "0.W" not in errors and "0.b" in errors      # whitening weights are frozen
    bad = {k: v for k, v in errors.items() if not v < 1e-6}
    assert not bad, bad


def test_flops_match_published_figures():
    assert simple().flops() / 1e6 == pytest.approx(53.2, abs=0.1)
    assert airbench().flops() / 1e6 == pytest.approx(236.3, abs=0.5)
    text = simple().summary()
    assert "Dense(4096->512" in text and "(8, 8, 64)" in text and "53.2" in text
