"""The SGD update as one pass over a param (numba, flat 1-D float32 arrays, in place).

For each element, with d the direction and v the momentum buffer (minicnn/optim/sgd.py):

    decoupled decay:   p = p * shrink          shrink = 1 - lr * wd
    L2 decay:          d = p * wd + g          (else d = g)
    momentum:          v = v * mu + d;   step = v * mu + d (Nesterov) or v
    no momentum:       step = d
                       p = p - lr * step

The reference (``SGD.update_reference``) does the same with whole-array NumPy
operations: up to three temporaries of p's size and four or five passes over memory;
here each element is read and written once. No fastmath: every product and sum rounds
to float32 as NumPy's does (no fused multiply-add), so both give the same bits. The
scalars are float32, as NumPy casts a Python float that meets a float32 array.
"""
import numpy as np
from numba import njit, prange

PARALLEL_FROM = 1 << 15         # elements: a smaller param is updated on one core


@njit(inline="always")
def sgd_element(p, g, v, i, lr, wd, shrink, mu, l2, decoupled, momentum, nesterov):
    """Update element i of p (and of v with momentum); see the module docstring."""
    p_i, d = p[i], g[i]
    if decoupled:
        p_i = p_i * shrink
    elif l2:
        d = p_i * wd + d
    step = d
    if momentum:
        v_i = v[i] * mu + d
        v[i] = v_i
        step = v_i * mu + d if nesterov else v_i
    p[i] = p_i - lr * step


@njit(cache=True)
def sgd_update_serial(p, g, v, lr, wd, shrink, mu, l2, decoupled, momentum, nesterov):
    for i in range(p.size):
        sgd_element(p, g, v, i, lr, wd, shrink, mu, l2, decoupled, momentum, nesterov)


@njit(parallel=True, cache=True)
def sgd_update_parallel(p, g, v, lr, wd, shrink, mu, l2, decoupled, momentum, nesterov):
    for i in prange(p.size):
        sgd_element(p, g, v, i, lr, wd, shrink, mu, l2, decoupled, momentum, nesterov)


def sgd_update(p, g, v, lr, wd, mu, nesterov, decoupled):
    """p (and v) updated in place. p, g, v: flat float32 arrays that share no memory (v
    empty when mu == 0); lr, wd, mu: Python floats. Which terms apply is decided here,
    on the Python floats, as the reference decides (a tiny mu or wd is not 0 there even
    where its float32 is)."""
    f32 = np.float32
    decay = wd > 0.0
    kernel = sgd_update_parallel if p.size >= PARALLEL_FROM else sgd_update_serial
    kernel(p, g, v, f32(lr), f32(wd), f32(1.0 - lr * wd), f32(mu), decay and not decoupled,
           decay and bool(decoupled), mu > 0.0, bool(nesterov))
