"""Softmax cross-entropy on integer labels, with optional label smoothing.

For logits z (N, K) and labels y (N,) in 0..K-1:

    log p  = z - logsumexp(z)                     (stable: subtract max(z) first)
    q      = (1 - eps) * onehot(y) + eps / K      (label smoothing eps; eps = 0: one-hot)
    L      = -(1/N) * sum_n sum_k q[n, k] * log p[n, k]
    dL/dz  = (softmax(z) - q) / N                  (N, K)
"""
import numpy as np

from .layer import FLOAT_DTYPES, check_fraction


def check_labels(logits, labels):
    if not isinstance(logits, np.ndarray) or logits.ndim != 2:
        raise ValueError(f"cross-entropy: expected logits of shape (N, K), got "
                         f"{getattr(logits, 'shape', type(logits).__name__)}")
    if logits.dtype not in FLOAT_DTYPES:
        raise TypeError(f"cross-entropy: expected float32/float64 logits, got {logits.dtype}")
    N, K = logits.shape
    if N == 0:
        raise ValueError("cross-entropy: got an empty batch (0 rows of logits)")
    labels = np.asarray(labels)
    if labels.shape != (N,):
        raise ValueError(f"cross-entropy: expected labels of shape ({N},), got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"cross-entropy: expected integer labels, got dtype {labels.dtype}")
    if labels.min() < 0 or labels.max() >= K:
        raise ValueError(f"cross-entropy: labels must be in [0, {K - 1}], got values from "
                         f"{labels.min()} to {labels.max()}")
    return labels


def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_cross_entropy(logits, labels, label_smoothing=0.0):
    """Return (loss, dlogits): the mean loss (a Python float) and dL/dlogits (N, K)."""
    labels = check_labels(logits, labels)
    label_smoothing = check_fraction("cross-entropy", "label_smoothing", label_smoothing)
    N, K = logits.shape
    logp = log_softmax(logits)                                   # (N, K)
    q = np.full((N, K), label_smoothing / K, dtype=logits.dtype)
    q[np.arange(N), labels] += 1 - label_smoothing
    loss = -float((q * logp).sum(dtype=np.float64)) / N
    dlogits = (np.exp(logp) - q) / logits.dtype.type(N)
    return loss, dlogits


class SoftmaxCrossEntropy:
    """The loss as an object: ``loss = ce(logits, labels)`` (or ``ce.forward(logits,
    labels)``), then ``ce.backward()`` returns dL/dlogits of that call."""

    def __init__(self, label_smoothing=0.0):
        self.label_smoothing = check_fraction("SoftmaxCrossEntropy", "label_smoothing",
                                              label_smoothing)
        self.dlogits = None

    def forward(self, logits, labels):
        """The mean loss (a float); keeps dL/dlogits (N, K) for backward."""
        loss, self.dlogits = softmax_cross_entropy(logits, labels, self.label_smoothing)
        return loss

    def __call__(self, logits, labels):
        return self.forward(logits, labels)

    def backward(self):
        if self.dlogits is None:
            raise RuntimeError("SoftmaxCrossEntropy.backward: call forward first "
                               "(loss = ce(logits, labels)); backward returns its dL/dlogits")
        return self.dlogits
