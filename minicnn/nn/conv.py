"""Conv2D: 2-D convolution (cross-correlation, as in every DL library), NHWC.

Shapes: x (N, H, W, C), weights W (KH, KW, C, F), bias b (F,), stride S, and x
padded with zeros to x_pad (pad_top rows above, pad_left columns on the left, ...).
Output y (N, OH, OW, F), OH = (H + pad_top + pad_bottom - KH) // S + 1 (OW alike).

Forward: every output pixel is a dot product of one KHxKWxC window with each filter

    y[n, i, j, f] = b[f] + sum_{kh, kw, c} x_pad[n, i*S + kh, j*S + kw, c] * W[kh, kw, c, f]

Backward, given dy = dL/dy (N, OH, OW, F). Each weight W[kh, kw, c, f] met every
window once, so its gradient sums over all of them: the correlation of x with dy

    dW[kh, kw, c, f] = sum_{n, i, j} x_pad[n, i*S + kh, j*S + kw, c] * dy[n, i, j, f]
    db[f]            = sum_{n, i, j} dy[n, i, j, f]

and each input pixel sends back the gradient of every window it was in:

    dx_pad[n, i*S + kh, j*S + kw, c] += sum_f dy[n, i, j, f] * W[kh, kw, c, f]

(then dx is dx_pad without its padding). For stride 1 that sum is itself a
convolution — the "full" convolution of dy, padded by (KH-1-pad_top, KW-1-pad_left),
with the kernel flipped in space and transposed in channels:

    dx = conv(dy, Wflip),   Wflip[kh, kw, f, c] = W[KH-1-kh, KW-1-kw, c, f]

The reference code below computes all of this with one loop over the KH*KW taps:
for a fixed tap (kh, kw) the windows' entries form a shifted view of x_pad, and
the sums over c (forward) or over n, i, j (dW) are matrix products. The fast
backend (minicnn/fast/conv.py) computes the same sums by one of four algorithms;
``fast.rules`` says which runs for a given layer and shape, and
``model.summary(paths=True)`` shows it.
"""
import numpy as np

from .. import backend
from .activations import ReLU, relu_backward
from .init import as_rng, init_weight
from .layer import Layer, check_float_dtype, check_positive_int, is_int
from .pooling import MaxPool2D


def conv_output_size(size, k, stride, padding):
    """Output length and (before, after) padding along one axis.

    padding: an int p (p on both sides), "valid" (0) or "same" (output
    ceil(size / stride), the extra pixel of an odd total going after, as in
    TensorFlow).
    """
    if padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + k - size, 0)
        return out, total // 2, total - total // 2
    p = 0 if padding == "valid" else padding
    out = (size + 2 * p - k) // stride + 1
    return out, p, p


# ---- reference: the formulas in NumPy ------------------------------------------------
def pad_images(x, pads):
    """x (N, H, W, C) with zero borders pads = (top, bottom, left, right)."""
    top, bottom, left, right = pads
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))


def tap_view(x_pad, kh, kw, stride, OH, OW):
    """The entries of every window at tap (kh, kw): x_pad[:, i*S + kh, j*S + kw, :]
    for all output pixels (i, j) — a strided view (N, OH, OW, C), no copy."""
    return x_pad[:, kh:kh + stride * (OH - 1) + 1:stride, kw:kw + stride * (OW - 1) + 1:stride, :]


def conv2d_forward(x, W, b, stride, pads):
    """y (N, OH, OW, F) = sum over taps of (window entries at that tap) @ W[kh, kw], + b."""
    KH, KW, _, F = W.shape
    x_pad = pad_images(x, pads)
    OH = (x_pad.shape[1] - KH) // stride + 1
    OW = (x_pad.shape[2] - KW) // stride + 1
    y = np.zeros((x.shape[0], OH, OW, F), dtype=x.dtype)
    for kh in range(KH):
        for kw in range(KW):
            y += tap_view(x_pad, kh, kw, stride, OH, OW) @ W[kh, kw]      # (N,OH,OW,C) @ (C,F)
    if b is not None:
        y += b
    return y


def conv2d_backward(dy, x, W, stride, pads):
    """(dx, dW, db) of conv2d_forward, tap by tap: dW[kh, kw] contracts the tap's window
    entries with dy over (n, i, j); dx_pad gets dy @ W[kh, kw].T added at the same places."""
    KH, KW, C, F = W.shape
    N, OH, OW, _ = dy.shape
    x_pad = pad_images(x, pads)
    dx_pad = np.zeros_like(x_pad)
    dW = np.zeros_like(W)
    dy_rows = dy.reshape(-1, F)                                            # (N*OH*OW, F)
    for kh in range(KH):
        for kw in range(KW):
            window = tap_view(x_pad, kh, kw, stride, OH, OW)               # (N, OH, OW, C)
            dW[kh, kw] = window.reshape(-1, C).T @ dy_rows                 # (C, F)
            tap_view(dx_pad, kh, kw, stride, OH, OW)[...] += dy @ W[kh, kw].T
    top, _, left, _ = pads
    dx = dx_pad[:, top:top + x.shape[1], left:left + x.shape[2], :]
    db = dy_rows.sum(axis=0)
    return np.ascontiguousarray(dx), dW, db


def relu_flag(through_relu):
    """{"through_relu": True}, or {} when False: the flag is passed on only when set, so
    a subclass's backward(dy) or backward_reference(dy), which know nothing of it, still
    work wherever it is not asked for."""
    return {"through_relu": True} if through_relu else {}


def is_2x2_max_pool(layer):
    """True for a MaxPool2D (exactly) of 2x2 windows at stride 2: the pool Conv2D fuses."""
    return type(layer) is MaxPool2D and (layer.K, layer.S) == (2, 2)


class Conv2D(Layer):
    """2-D convolution on NHWC input.

    Args:
        in_channels, out_channels: C and F.
        kernel_size: int or (KH, KW).
        stride: int.
        padding: int, "same" or "valid".
        bias: add a learned bias per output channel.
        init: "he" (normal, for ReLU-family nets) or "glorot" (uniform).
        rng: np.random.Generator or int seed, for the initial weights.
        dtype: parameter dtype (float32 for training, float64 for gradient checks).

    Params: W (KH, KW, C, F), role "weight"; b (F,), role "bias".
    Keeps a reference to x for backward. A ReLU right after it can be fused into
    its forward pass (``fuses_with``): y = max(conv(x), 0) in one pass; so can a 2x2,
    stride-2 MaxPool2D, whose windows the fast backend's Winograd blocks hold whole,
    alone or after such a ReLU (conv, ReLU and pool as one step).

    Switches read by the fast backend only (fast/rules.py; tests and benchmarks use
    them): ``allow_winograd``, ``allow_direct`` (False: never that path),
    ``taps_min_padding`` (the share of padding taps from which the tap-class path
    runs; None: the rule's; > 1: never), ``forced_paths`` ({pass: path}, run that
    path whatever the rule says), ``max_chunk_bytes`` (a cap on one im2col block).
    """

    cached = ("x",)
    fuses_with = (ReLU, MaxPool2D)

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding="same",
                 bias=True, init="he", rng=None, dtype=np.float32, name=None,
                 max_chunk_bytes=64 << 20):
        super().__init__(name)
        in_channels = check_positive_int(self.name, "in_channels", in_channels)
        out_channels = check_positive_int(self.name, "out_channels", out_channels)
        if is_int(kernel_size):
            KH = KW = check_positive_int(self.name, "kernel_size", kernel_size)
        elif isinstance(kernel_size, (tuple, list)) and len(kernel_size) == 2:
            KH, KW = (check_positive_int(self.name, "kernel_size", k) for k in kernel_size)
        else:
            raise ValueError(f"{self.name}: kernel_size must be a positive int or a pair "
                             f"(KH, KW) of them, got {kernel_size!r}")
        stride = check_positive_int(self.name, "stride", stride)
        if not (padding in ("same", "valid") or (is_int(padding) and padding >= 0)):
            raise ValueError(f"{self.name}: padding must be a non-negative int, 'same' or 'valid', "
                             f"got {padding!r}")
        max_chunk_bytes = check_positive_int(self.name, "max_chunk_bytes", max_chunk_bytes)
        dtype = check_float_dtype(self.name, dtype)
        self.C, self.F, self.KH, self.KW = in_channels, out_channels, KH, KW
        self.stride, self.padding, self.use_bias = stride, padding, bias
        self.max_chunk_bytes = max_chunk_bytes
        self.taps_min_padding = None                # None: the rule's default
        self.allow_direct = True
        self.allow_winograd = True
        self.forced_paths = {}
        fan_in, fan_out = KH * KW * in_channels, KH * KW * out_channels
        self.add_param("W", init_weight((KH, KW, in_channels, out_channels), fan_in, fan_out,
                                        init, as_rng(rng), dtype))
        if bias:
            self.add_param("b", np.zeros(out_channels, dtype=dtype), role="bias")
        self.x = None

    def __repr__(self):
        return (f"{self.name}({self.C}->{self.F}, k={self.KH}x{self.KW}, s={self.stride}, "
                f"p={self.padding!r}, bias={self.use_bias})")

    def paddings(self, H, W):
        """(OH, OW) and the zero borders (top, bottom, left, right) for an H x W input."""
        OH, top, bottom = conv_output_size(H, self.KH, self.stride, self.padding)
        OW, left, right = conv_output_size(W, self.KW, self.stride, self.padding)
        if OH < 1 or OW < 1:
            raise ValueError(f"{self.name}: input {H}x{W} is smaller than the "
                             f"{self.KH}x{self.KW} kernel with padding {self.padding!r}")
        return (OH, OW), (top, bottom, left, right)

    def geometry(self, H, W):
        """(OH, OW, pad_top, pad_left) for an H x W input."""
        (OH, OW), (top, _, left, _) = self.paddings(H, W)
        return OH, OW, top, left

    def output_shape(self, input_shape):
        H, W, _ = self.check_example_shape(input_shape, 3, channels=self.C)
        OH, OW, _, _ = self.geometry(H, W)
        return (OH, OW, self.F)

    def flops(self, input_shape):
        OH, OW, _ = self.output_shape(input_shape)
        return 2 * OH * OW * self.KH * self.KW * self.C * self.F

    # -- the passes ------------------------------------------------------------------
    def can_fuse(self, next_layer):
        """A ReLU, or a MaxPool2D of 2x2 windows at stride 2."""
        return super().can_fuse(next_layer) and (type(next_layer) is not MaxPool2D
                                                 or is_2x2_max_pool(next_layer))

    def fused_count(self, following):
        """2 for a ReLU followed by a 2x2, stride-2 MaxPool2D (the three run as one
        step), else 1 for either of them alone, else 0."""
        taken = super().fused_count(following)
        if (taken and type(following[0]) is ReLU and len(following) > 1
                and is_2x2_max_pool(following[1])):
            return 2
        return taken

    def forward_fused(self, following, x, training=False):
        """(ReLU,): y = max(conv(x), 0) in one pass; the ReLU keeps y for its backward.
        (MaxPool2D,) and (ReLU, MaxPool2D): pool(conv(x)), or pool(max(conv(x), 0)).
        The fast backend's Winograd path pools each block of outputs while it is in
        cache and never writes the full map; the pool keeps what its own forward would
        (its argmax). ReLU and a max-pool commute, max(pool(z), 0) = pool(max(z, 0)),
        and so do their gradients (below), so the ReLU keeps the pooled output for its
        backward: a quarter of the map it would keep after the conv."""
        kinds = tuple(type(layer) for layer in following)
        if kinds == (ReLU,):
            return following[0].forward_fused(self.forward(x, training, relu=True))
        self.check_input(x, ndim=4, channels=self.C)
        self.check_params_dtype(x)
        OH, OW, _, _ = self.geometry(x.shape[1], x.shape[2])
        pool, relu = following[-1], kinds[0] is ReLU
        pool.output_shape((OH, OW, self.F))              # raises if smaller than a window
        pooled = backend.run(self, "forward_pool", np.ascontiguousarray(x), training, pool, relu)
        return following[0].forward_fused(pooled) if relu else pooled

    def takes_relu_backward(self, step_before):
        """A Conv2D (exactly: a subclass may compute something else) after a ReLU on its
        own, a Conv2D + ReLU, or a Conv2D + ReLU + 2x2 max-pool, whose ReLU runs its
        backward at the pooled size, on the mask of this layer's input (pooled > 0)."""
        kinds = [type(layer) for layer in step_before]
        return type(self) is Conv2D and kinds in ([ReLU], [Conv2D, ReLU],
                                                  [Conv2D, ReLU, MaxPool2D])

    def backward_fused(self, following, dy, through_relu=False, relu_done=False):
        """(ReLU,): the ReLU's backward, then this layer's. (ReLU, MaxPool2D): the ReLU's
        backward at the pooled size first, then the pool's, then this layer's. The same
        numbers as the three in turn: the pool's argmax is taken over max(z, 0), and at
        that tap z > 0 exactly where the pooled output is > 0, the ReLU's mask. The
        pool's backward and this layer's run as one (``backward_pooled``).
        through_relu: as ``backward``. relu_done: the layer after this step already did
        the fused ReLU's backward (its ``through_relu``), so dy passes it unchanged."""
        kinds = tuple(type(layer) for layer in following)
        if kinds not in ((ReLU,), (MaxPool2D,), (ReLU, MaxPool2D)):
            if through_relu or relu_done:
                raise ValueError(f"{self.name}: no ReLU fold for a step with {kinds}")
            return super().backward_fused(following, dy)
        if kinds[0] is ReLU and not relu_done:
            dy = following[0].backward(dy)
        if kinds[-1] is MaxPool2D:
            return self.backward_pooled(following[-1], dy, **relu_flag(through_relu))
        return self.backward(dy, **relu_flag(through_relu))

    def backward_pooled(self, pool, dy, through_relu=False):
        """dx (or None) from dy = dL/d(pool(this layer's output)), for the max-pool fused
        after it; fills grads W and b: the pool's backward, then this layer's. The fast
        backend's Winograd kernels read dy through the pool's argmax instead of the
        unpooled map, which is never written. through_relu: as ``backward``."""
        self.check_forward_ran(self.x)
        N, H, W, _ = self.x.shape
        OH, OW, _, _ = self.geometry(H, W)
        dy = pool.check_backward(dy, (N,) + pool.output_shape((OH, OW, self.F)), self.x.dtype)
        return backend.run(self, "backward_pool", dy, pool, **relu_flag(through_relu))

    def forward_pool_reference(self, x, training, pool, relu=False):
        return pool.forward(self.forward_reference(x, training, relu))

    def backward_pool_reference(self, dy, pool, through_relu=False):
        return self.backward_reference(pool.backward(dy), **relu_flag(through_relu))

    def forward(self, x, training=False, relu=False):
        """y (N, OH, OW, F); relu=True returns max(y, 0) (the fused Conv2D + ReLU)."""
        self.check_input(x, ndim=4, channels=self.C)
        self.check_params_dtype(x)
        self.geometry(x.shape[1], x.shape[2])             # raises if the input is too small
        return backend.run(self, "forward", np.ascontiguousarray(x), training, relu)

    def backward(self, dy, through_relu=False):
        """dx (N, H, W, C), or None when not needs_input_grad; fills grads W and b.

        through_relu=True, for an input x that a ReLU made (x = max(z, 0), or a max-pool
        of that): dL/dz instead of dL/dx, that is dx where x > 0 and 0 elsewhere, the
        ReLU's backward done here (Sequential asks for it and skips the ReLU's). On the
        fast backend's Winograd path the mask is applied as dx is written, which saves
        a pass over the map; the numbers are the same."""
        self.check_forward_ran(self.x)
        N, H, W, _ = self.x.shape
        OH, OW, _, _ = self.geometry(H, W)
        dy = self.check_backward(dy, (N, OH, OW, self.F), self.x.dtype)
        return backend.run(self, "backward", dy, **relu_flag(through_relu))

    def forward_reference(self, x, training=False, relu=False):
        self.x = x
        _, pads = self.paddings(x.shape[1], x.shape[2])
        y = conv2d_forward(x, self.params["W"], self.params.get("b"), self.stride, pads)
        return np.maximum(y, 0) if relu else y

    def backward_reference(self, dy, through_relu=False):
        _, pads = self.paddings(self.x.shape[1], self.x.shape[2])
        dx, dW, db = conv2d_backward(dy, self.x, self.params["W"], self.stride, pads)
        if "W" not in self.frozen:
            self.grads["W"][...] = dW
        if self.use_bias and "b" not in self.frozen:
            self.grads["b"][...] = db
        if not self.needs_input_grad:
            return None
        return relu_backward(self.x, dx) if through_relu else dx
