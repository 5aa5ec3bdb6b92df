"""Numerical gradient checking: does backward agree with the definition of a derivative?

For a layer f and a fixed random R of f's output shape, take the scalar
L(x, p) = sum(f(x; p) * R). Backward with dy = R gives the analytic gradients
dL/dx and dL/dp. Central differences give the numerical ones, element by element:

    dL/dx[i] ~ (L(x + h e_i) - L(x - h e_i)) / (2h)          error O(h^2)

and each array is compared with the relative error

    rel = ||analytic - numeric||_2 / max(||analytic||_2 + ||numeric||_2, tiny)

Work in float64 (``layer.to(np.float64)``): with h = 1e-6 a correct backward
gives rel ~ 1e-9 or less; a wrong one gives rel ~ 1e-1. Inputs should stay away
from kinks (ReLU at 0, ties in max-pooling) by more than h.
"""
import numpy as np


def relative_error(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / max(denom, 1e-300))


def numerical_gradient(f, a, h=1e-6):
    """d f() / d a by central differences; ``a`` is perturbed in place and restored."""
    grad = np.zeros_like(a, dtype=np.float64)
    flat, gflat = a.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = f()
        flat[i] = old - h
        fm = f()
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * h)
    return grad


def check_layer(layer, x, training=True, h=1e-6, seed=0, before_forward=None):
    """Compare ``layer.backward`` with central differences.

    layer: any minicnn layer, already in float64.
    x: a float64 input batch.
    before_forward: optional callable run before every forward (e.g. to reset a
        Dropout layer's random generator so every evaluation draws the same mask).
    Returns {"x": rel_err, "<param>": rel_err, ...}.
    """
    if x.dtype != np.float64:
        raise TypeError(f"check_layer: use float64 inputs for gradient checks, got {x.dtype}")
    before = before_forward or (lambda: None)
    saved = {k: v.copy() for k, v in layer.buffers.items()}

    def restore():
        for k, v in saved.items():
            layer.buffers[k][...] = v
        before()

    restore()
    y = layer.forward(x, training)
    R = np.random.default_rng(seed).standard_normal(y.shape)

    def loss():
        restore()
        return float(np.sum(layer.forward(x, training) * R))

    restore()
    layer.forward(x, training)
    layer.needs_input_grad = True
    dx = layer.backward(R)
    analytic = {"x": dx}
    analytic.update({k: layer.grads[k].copy() for k in layer.params if k not in layer.frozen})
    errors = {"x": relative_error(dx, numerical_gradient(loss, x, h))}
    for k in layer.params:
        if k not in layer.frozen:
            errors[k] = relative_error(analytic[k], numerical_gradient(loss, layer.params[k], h))
    restore()
    return errors


def check_model(model, loss_fn, x, labels, training=True, h=1e-6, check_input=True):
    """End-to-end check of a Sequential and a loss ``loss_fn(logits, labels) -> (loss, dlogits)``.
    Returns {"x": rel_err, "<i.key>": rel_err, ...} for the input (unless
    ``check_input=False``, which saves one forward pass per input element) and
    every trainable array."""
    if x.dtype != np.float64:
        raise TypeError(f"check_model: use float64 inputs for gradient checks, got {x.dtype}")
    saved = {}
    for i, layer in enumerate(model.layers):
        for k, v in layer.buffers.items():
            saved[(i, k)] = v.copy()

    def restore():
        for (i, k), v in saved.items():
            model.layers[i].buffers[k][...] = v

    def loss():
        restore()
        return loss_fn(model.forward(x, training), labels)[0]

    restore()
    _, dlogits = loss_fn(model.forward(x, training), labels)
    dx = model.input_gradient(dlogits)
    analytic = {name: g.copy() for name, _, g in model.named_parameters()}
    errors = {"x": relative_error(dx, numerical_gradient(loss, x, h))} if check_input else {}
    for name, p, _ in model.named_parameters():
        errors[name] = relative_error(analytic[name], numerical_gradient(loss, p, h))
    restore()
    return errors
