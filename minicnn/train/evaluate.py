"""Evaluation: batched predictions with optional test-time augmentation (TTA).

TTA averages the network's logits over transformed copies of each image:
    level 0:  logits(x)
    level 1:  (logits(x) + logits(mirror(x))) / 2
    level 2:  level 1 averaged (weight 1/2) with the mean of the mirror pair of
              the image translated by one pixel (pad 1 with reflection, crop at
              (0, 0) and (2, 2)) (weight 1/2) — airbench94's scheme.
Images are NHWC (N, H, W, C).
"""
import numpy as np

from ..nn.loss import softmax_cross_entropy


def mirror(x):
    return x[:, :, ::-1, :]


def _logits(model, x, batch_size):
    return model.predict(np.ascontiguousarray(x), batch_size=batch_size)


def predict_logits(model, x, tta=0, batch_size=500):
    """Logits (N, K) in eval mode, averaged over ``tta`` level 0, 1 or 2 views."""
    if tta not in (0, 1, 2):
        raise ValueError(f"predict_logits: tta must be 0, 1 or 2, got {tta!r}")
    out = _logits(model, x, batch_size)
    if tta == 0:
        return out
    out = 0.5 * (out + _logits(model, mirror(x), batch_size))
    if tta == 1:
        return out
    pad = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    H, W = x.shape[1:3]
    shifted = 0.0
    for dy, dx in ((0, 0), (2, 2)):
        view = pad[:, dy:dy + H, dx:dx + W, :]
        shifted = shifted + 0.25 * (_logits(model, view, batch_size)
                                    + _logits(model, mirror(view), batch_size))
    return 0.5 * out + 0.5 * shifted


def evaluate(model, x, y, tta=0, batch_size=500):
    """Mean cross-entropy, accuracy and the predicted labels on (x, y)."""
    logits = predict_logits(model, x, tta, batch_size)
    loss, _ = softmax_cross_entropy(logits, y)
    pred = logits.argmax(axis=1)
    return {"loss": loss, "accuracy": float((pred == y).mean()), "pred": pred}
