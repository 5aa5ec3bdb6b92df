"""Batch normalisation over every axis but the last (channels).

BatchNorm2D takes NHWC (N, H, W, C); BatchNorm1D takes (N, C). Both see the
input as a matrix x of shape (m, C), m = N*H*W (or N).

training (batch statistics):
    mu  = mean(x),  var = mean((x - mu)^2)            per channel, (C,)
    xh  = (x - mu) / sqrt(var + eps)
    y   = gamma * xh + beta
    running_mean <- (1 - momentum) * running_mean + momentum * mu
    running_var  <- (1 - momentum) * running_var  + momentum * var * m / (m - 1)
backward:
    dbeta  = sum(dy),   dgamma = sum(dy * xh)
    dx     = gamma / sqrt(var + eps) * (dy - mean(dy) - xh * mean(dy * xh))
eval (running statistics, a fixed affine map):
    y  = gamma * (x - running_mean) / sqrt(running_var + eps) + beta
    dx = dy * gamma / sqrt(running_var + eps)

Params: gamma (scale, role "norm_scale"), beta (shift, role "norm_shift"), (C,)
each; either can be frozen (``freeze_scale``/``freeze_shift``), which keeps it out
of the optimizer. Buffers: running_mean, running_var — saved with the model, never
trained.

Where dx comes from: xh depends on x directly and through mu and var, which every
row shares, so dL/dx[r] collects three terms (m rows, per channel):

    dxh   = gamma * dy
    dvar  = sum_r dxh * (x - mu) * (-1/2) (var + eps)^(-3/2)
    dmu   = -sum_r dxh / sqrt(var + eps)          (the dvar term through mu sums to 0)
    dx    = dxh / sqrt(var + eps) + dvar * 2 (x - mu) / m + dmu / m

which simplifies to the one-line form above. The reference code below computes
exactly that form; the fast backend (fast/layers.py) computes the same sums in
one pass with float64 partial sums and no full-size temporaries.

Followed by GELU (``fuses_with``), the two run as one step of Sequential:
y = GELU(BN(x)). On the fast backend (float32, exact GELU) forward writes y straight
from x, and backward makes dz = dy * GELU'(z) and BN's two sums in one pass,
recomputing z = BN(x) from x: neither keeps z, the map between them. Elsewhere the
pair runs as the two layers would.
"""
import numpy as np

from .. import backend
from .activations import GELU, gelu, gelu_backward
from .layer import Layer, check_float_dtype, check_fraction, check_positive_int


# ---- reference: the formulas in NumPy ------------------------------------------------
def batchnorm_forward(x2, gamma, beta, mu, var, eps):
    """y (m, C) = gamma * xh + beta, xh = (x - mu) / sqrt(var + eps); returns (y, xh)."""
    xh = (x2 - mu) / np.sqrt(var + eps)
    return gamma * xh + beta, xh


def batchnorm_backward(dy2, xh, gamma, var, eps, training, batch_mean=None):
    """(dx, dgamma, dbeta) for y = gamma * xh + beta; in training mu and var depend on x.

    batch_mean(a) -> the per-channel mean of a (m, C) over the whole batch; by default
    a.mean(axis=0) (SyncBatchNorm: over the rows of every process)."""
    dbeta = dy2.sum(axis=0)
    dgamma = (dy2 * xh).sum(axis=0)
    scale = gamma / np.sqrt(var + eps)
    if not training:                       # eval: a fixed affine map
        return dy2 * scale, dgamma, dbeta
    batch_mean = batch_mean or (lambda a: a.mean(axis=0))
    dx = scale * (dy2 - batch_mean(dy2) - xh * batch_mean(dy2 * xh))
    return dx, dgamma, dbeta


class _BatchNorm(Layer):
    ndim = None

    cached = ("x2", "xh", "z2")
    x2 = None
    z2 = None           # the pair with GELU, where it is kept: BN's output (GELU's input)

    def __init__(self, channels, momentum=0.1, eps=1e-5, freeze_scale=False,
                 freeze_shift=False, scale_init=1.0, dtype=np.float32, name=None):
        super().__init__(name)
        channels = check_positive_int(self.name, "channels", channels)
        momentum = check_fraction(self.name, "momentum", momentum, include_one=True)
        if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating)) or not eps > 0:
            raise ValueError(f"{self.name}: eps must be a number > 0, got {eps!r}")
        dtype = check_float_dtype(self.name, dtype)
        self.C, self.momentum, self.eps = channels, momentum, float(eps)
        self.add_param("gamma", np.full(channels, scale_init, dtype=dtype), role="norm_scale")
        self.add_param("beta", np.zeros(channels, dtype=dtype), role="norm_shift")
        self.buffers["running_mean"] = np.zeros(channels, dtype=dtype)
        self.buffers["running_var"] = np.ones(channels, dtype=dtype)
        if freeze_scale:
            self.frozen.add("gamma")
        if freeze_shift:
            self.frozen.add("beta")

    def __repr__(self):
        return f"{self.name}({self.C}, frozen={sorted(self.frozen)})"

    def flops(self, input_shape):
        return 4 * int(np.prod(input_shape))

    def output_shape(self, input_shape):
        return self.check_example_shape(input_shape, self.ndim - 1, channels=self.C)

    def forward(self, x, training=False):
        return backend.run(self, "forward", self.input_matrix(x, training),
                           training).reshape(x.shape)

    def backward(self, dy):
        return backend.run(self, "backward", self.grad_matrix(dy)).reshape(self.x_shape)

    def forward_fused(self, following, x, training=False):
        """y = GELU(BN(x)) as one step (module docstring); the GELU layer keeps nothing."""
        (gelu_layer,) = following
        gelu_layer.check_input(x)
        return backend.run(self, "forward_gelu", self.input_matrix(x, training), training,
                           gelu_layer.approximate).reshape(x.shape)

    def backward_fused(self, following, dy):
        (gelu_layer,) = following
        return backend.run(self, "backward_gelu", self.grad_matrix(dy),
                           gelu_layer.approximate).reshape(self.x_shape)

    def input_matrix(self, x, training):
        """x checked and seen as (m, C); remembers the mode and x's shape."""
        self.check_input(x, ndim=self.ndim, channels=self.C)
        if x.dtype != self.params["gamma"].dtype:
            raise TypeError(f"{self.name}: input dtype {x.dtype} does not match parameter dtype "
                            f"{self.params['gamma'].dtype}")
        x2 = np.ascontiguousarray(x).reshape(-1, self.C)               # (m, C)
        if training and x2.shape[0] < 2:
            raise ValueError(f"{self.name}: training mode needs more than one value per "
                             f"channel to normalise, got input shape {x.shape}")
        self.training, self.x_shape = training, x.shape
        return x2

    def grad_matrix(self, dy):
        """dy checked against forward's output and seen as (m, C)."""
        self.check_forward_ran(self.x2)
        dy = self.check_backward(dy, self.x_shape, self.x2.dtype)
        return np.ascontiguousarray(dy).reshape(-1, self.C)

    def update_running_stats(self, mu, var, m):
        """running <- (1 - momentum) * running + momentum * batch (var unbiased: * m/(m-1))."""
        rm, rv, mom = self.buffers["running_mean"], self.buffers["running_var"], self.momentum
        rm[...] = (1 - mom) * rm + mom * mu
        rv[...] = (1 - mom) * rv + mom * var * m / (m - 1)

    # -- the whole batch: on one process its rows are all here ---------------------------
    def batch_total(self, sums):
        """Per-channel sums over this process's rows -> sums over the whole batch.
        One process holds the whole batch, so they are the same; ``SyncBatchNorm2D``
        (minicnn/distributed.py) adds them up across processes. Float64 arrays."""
        return sums

    def moment_shift(self, x2):
        """A per-channel value near the mean, subtracted before the moments are summed
        so the sums stay accurate when |mean| >> std: here the first row."""
        return x2[0].astype(np.float64)

    def batch_moments(self, x2):
        """(mean, biased variance, rows) of x2 (m, C) over the whole batch, float64."""
        m = self.batch_total(np.array([x2.shape[0]], np.float64))[0]
        mu = self.batch_total(x2.sum(axis=0, dtype=np.float64)) / m
        var = self.batch_total(((x2 - mu) ** 2).sum(axis=0)) / m
        return mu, var, m

    def batch_mean(self, a):
        """Per-channel mean of a (m, C) over the whole batch (forward's row count)."""
        return (self.batch_total(a.sum(axis=0, dtype=np.float64)) / self.rows).astype(a.dtype)

    def forward_reference(self, x2, training):
        self.x2 = x2
        if training:
            mu, var, self.rows = self.batch_moments(x2)                   # (C,) each
            self.update_running_stats(mu, var, self.rows)
            mu, var = mu.astype(x2.dtype), var.astype(x2.dtype)
        else:
            mu, var = self.buffers["running_mean"], self.buffers["running_var"]
        self.var = var
        y2, self.xh = batchnorm_forward(x2, self.params["gamma"], self.params["beta"], mu, var,
                                        self.eps)
        return y2

    def forward_gelu_reference(self, x2, training, approximate):
        self.z2 = self.forward_reference(x2, training)
        return gelu(self.z2, approximate)

    def backward_gelu_reference(self, dy2, approximate):
        return self.backward_reference(gelu_backward(self.z2, dy2, approximate))

    def backward_reference(self, dy2):
        dx2, dgamma, dbeta = batchnorm_backward(dy2, self.xh, self.params["gamma"], self.var,
                                                self.eps, self.training, self.batch_mean)
        if "gamma" not in self.frozen:
            self.grads["gamma"][...] = dgamma
        if "beta" not in self.frozen:
            self.grads["beta"][...] = dbeta
        return dx2


class BatchNorm2D(_BatchNorm):
    """Batch norm for NHWC images (N, H, W, C): statistics over N, H, W."""
    ndim = 4
    fuses_with = GELU


class BatchNorm1D(_BatchNorm):
    """Batch norm for features (N, C): statistics over N."""
    ndim = 2
    fuses_with = GELU
