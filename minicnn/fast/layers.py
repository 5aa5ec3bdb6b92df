"""The fast backend's passes for every layer but Conv2D (which has fast/conv.py).

Each function computes what the layer's reference method computes (the maths is
in minicnn/nn), with numba kernels that read and write each array once:

* ReLU, LeakyReLU, GELU: one parallel loop over the flat data (kernels/relu.py,
  kernels/gelu.py); no masks or temporaries.
* MaxPool2D: one pass that keeps the running max and the winning tap per channel
  (kernels/pooling.py); a NaN in a window wins it, as with np.max and np.argmax.
* BatchNorm: the statistics and the backward sums as float64 partial sums over a
  fixed number of row blocks (so the result does not depend on the thread count),
  and y and dx in one pass each (kernels/batchnorm.py). dx is written as
  p * dy + q * (x - mu) + r, the reference formula with xh = (x - mu) * istd
  expanded (istd = 1 / sqrt(var + eps)):

      p = gamma * istd,   q = -p * istd^2 * sum(dy * (x - mu)) / m,   r = -p * sum(dy) / m

* Dense: the products split over both cores with one-thread BLAS (parallel.py).

Pooling other than max, Flatten and Dropout are NumPy one-liners on both backends.
"""
import numpy as np

from ..backend import register
from ..nn.activations import GELU, LeakyReLU, ReLU
from ..nn.batchnorm import _BatchNorm
from ..nn.dense import Dense
from ..nn.pooling import MaxPool2D
from .kernels.batchnorm import (affine_backward, dsums_partials, gelu_dsums_partials,
                                moments_partials, normalize, normalize_gelu)
from .kernels.gelu import gelu_backward, gelu_forward
from .kernels.pooling import maxpool_backward, maxpool_forward
from .kernels.relu import leaky_relu_backward, leaky_relu_forward, relu_backward, relu_forward
from .kernels.sums import sum_blocks
from .parallel import parallel_matmul


def named(path_name):
    """Label a registered pass with the name summary(paths=True) shows for it."""
    def label(fn):
        fn.path_name = path_name
        return fn
    return label


# ---- elementwise: flat kernels fwd(x, y, *args), bwd(x, dy, dx, *args) -------------------
def elementwise_forward(layer, x, kernel, *args):
    layer.x = x
    y = np.empty_like(x)
    kernel(x.reshape(-1), y.reshape(-1), *args)
    return y


def elementwise_backward(layer, dy, kernel, *args):
    dx = np.empty_like(dy)
    kernel(layer.x.reshape(-1), dy.reshape(-1), dx.reshape(-1), *args)
    return dx


@register(ReLU, "forward")
@named("numba")
def relu_fast_forward(layer, x):
    return elementwise_forward(layer, x, relu_forward)


@register(ReLU, "backward")
def relu_fast_backward(layer, dy):
    return elementwise_backward(layer, dy, relu_backward)


@register(LeakyReLU, "forward")
@named("numba")
def leaky_relu_fast_forward(layer, x):
    return elementwise_forward(layer, x, leaky_relu_forward, x.dtype.type(layer.alpha))


@register(LeakyReLU, "backward")
def leaky_relu_fast_backward(layer, dy):
    return elementwise_backward(layer, dy, leaky_relu_backward, dy.dtype.type(layer.alpha))


@register(GELU, "forward")
@named("numba")
def gelu_fast_forward(layer, x):
    return elementwise_forward(layer, x, gelu_forward, layer.approximate)


@register(GELU, "backward")
def gelu_fast_backward(layer, dy):
    return elementwise_backward(layer, dy, gelu_backward, layer.approximate)


# ---- max pooling --------------------------------------------------------------------------
@register(MaxPool2D, "forward")
@named("numba")
def maxpool_fast_forward(layer, x):
    OH, OW, C = layer.output_shape(x.shape[1:])
    y = np.empty((x.shape[0], OH, OW, C), dtype=x.dtype)
    layer.arg = np.empty(y.shape, dtype=np.int8)      # one byte per output element
    maxpool_forward(x, layer.K, layer.S, y, layer.arg)
    return y


@register(MaxPool2D, "backward")
def maxpool_fast_backward(layer, dy):
    dx = np.empty(layer.x_shape, dtype=dy.dtype)
    maxpool_backward(dy, layer.arg, layer.K, layer.S, dx)
    return dx


# ---- batch normalisation ----------------------------------------------------------------
# x2, y2, dy2, dx2: the (m, C) matrices of the layer (m = N for BatchNorm1D, N*H*W for 2D)
@register(_BatchNorm, "forward")
@named("numba")
def batchnorm_fast_forward(layer, x2, training):
    y2 = np.empty_like(x2)
    normalize(x2, *batch_affine(layer, x2, training), y2)
    layer.x2 = x2
    return y2


def batch_affine(layer, x2, training):
    """(mu, a, beta) in x2's dtype, y = (x - mu) * a + beta, a = gamma / std: from the
    batch statistics in training (and the running ones updated), else the running ones.
    Sets layer.mu and layer.istd (float64) for backward."""
    m, C = x2.shape
    if training:
        shift = layer.moment_shift(x2)         # sums of x - shift stay accurate if |mu| >> std
        sums = moments_partials(x2, shift, np.empty((sum_blocks(m), 2, C))).sum(axis=0)
        totals = layer.batch_total(np.concatenate([[m], sums.ravel()]))   # whole batch
        m, sums = totals[0], totals[1:].reshape(2, C)
        mu = shift + sums[0] / m                                    # float64 (C,)
        var = np.maximum(sums[1] - sums[0] * sums[0] / m, 0.0) / m
        layer.update_running_stats(mu, var, m)
        layer.rows = m
    else:
        mu = layer.buffers["running_mean"].astype(np.float64)
        var = layer.buffers["running_var"].astype(np.float64)
    layer.mu, layer.istd = mu, 1.0 / np.sqrt(var + layer.eps)        # float64 (C,)
    return kept_affine(layer, x2.dtype)


def kept_affine(layer, dtype):
    """(mu, a, beta) of the last forward, in ``dtype`` (the same numbers it used)."""
    return (layer.mu.astype(dtype), (layer.params["gamma"] * layer.istd).astype(dtype),
            layer.params["beta"].astype(dtype))


@register(_BatchNorm, "backward")
def batchnorm_fast_backward(layer, dy2, sums=None, dx2=None):
    """dx2 (a new array unless given; dy2 itself may be given) from dy2; ``sums``: the
    (2, C) sums of dy and dy * (x - mu) if already made (the pair with GELU)."""
    x2, dtype = layer.x2, layer.x2.dtype
    m, C = x2.shape
    p = layer.params["gamma"] * layer.istd                            # float64 (C,)
    trainable = [k for k in ("beta", "gamma") if k not in layer.frozen]
    if sums is None and (layer.training or trainable):
        sums = dsums_partials(x2, dy2, layer.mu, np.empty((sum_blocks(m), 2, C))).sum(axis=0)
    if layer.training or trainable:
        if "beta" in trainable:
            layer.grads["beta"][...] = sums[0]                        # sum dy
        if "gamma" in trainable:
            layer.grads["gamma"][...] = sums[1] * layer.istd          # sum dy * xh
    if layer.training:
        sums, m = layer.batch_total(sums), layer.rows          # over the whole batch
        q = -p * layer.istd ** 2 * sums[1] / m
        r = -p * sums[0] / m
    else:                                     # eval: a fixed affine map, dx = p * dy
        q = r = np.zeros(C)
    dx2 = np.empty_like(dy2) if dx2 is None else dx2
    affine_backward(x2, dy2, layer.mu.astype(dtype), p.astype(dtype), q.astype(dtype),
                    r.astype(dtype), dx2)
    return dx2


# BatchNorm + GELU as one step (nn/batchnorm.py): one-pass kernels for float32 and GELU's
# exact form; otherwise the two layers' fast passes one after the other, keeping z = BN(x).
@register(_BatchNorm, "forward_gelu")
@named("numba")
def batchnorm_gelu_fast_forward(layer, x2, training, approximate):
    if approximate or x2.dtype != np.float32:
        layer.z2 = batchnorm_fast_forward(layer, x2, training)
        y2 = np.empty_like(x2)
        gelu_forward(layer.z2.reshape(-1), y2.reshape(-1), approximate)
        return y2
    y2 = np.empty_like(x2)
    normalize_gelu(x2, *batch_affine(layer, x2, training), y2)
    layer.x2, layer.z2 = x2, None             # backward recomputes z from x
    return y2


@register(_BatchNorm, "backward_gelu")
def batchnorm_gelu_fast_backward(layer, dy2, approximate):
    dz2 = np.empty_like(dy2)                  # dL/dz, then dx in its place
    if layer.z2 is not None:                  # z was kept (the two-pass forward)
        gelu_backward(layer.z2.reshape(-1), dy2.reshape(-1), dz2.reshape(-1), approximate)
        return batchnorm_fast_backward(layer, dz2, dx2=dz2)
    x2 = layer.x2
    partials = np.empty((sum_blocks(x2.shape[0]), 2, x2.shape[1]))
    sums = gelu_dsums_partials(x2, dy2, *kept_affine(layer, x2.dtype), layer.mu, partials,
                               dz2).sum(axis=0)
    return batchnorm_fast_backward(layer, dz2, sums, dx2=dz2)


# ---- dense ----------------------------------------------------------------------------------
@register(Dense, "forward")
@named("blas")
def dense_fast_forward(layer, x):
    layer.x = x
    y = parallel_matmul(x, layer.params["W"])                       # (N, F)
    if layer.use_bias:
        y += layer.params["b"]
    if layer.scale != 1.0:
        y *= y.dtype.type(layer.scale)
    return y


@register(Dense, "backward")
def dense_fast_backward(layer, dy):
    if "W" not in layer.frozen:
        parallel_matmul(layer.x.T, dy, out=layer.grads["W"])
    if layer.use_bias and "b" not in layer.frozen:
        layer.grads["b"][...] = dy.sum(axis=0)
    if not layer.needs_input_grad:
        return None
    return parallel_matmul(dy, layer.params["W"].T)
