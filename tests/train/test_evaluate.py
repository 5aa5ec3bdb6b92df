"""Evaluation (minicnn/train/evaluate.py): test-time augmentation levels."""
import numpy as np
import pytest

from minicnn.train import mirror, predict_logits
from minicnn.zoo import airbench


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
