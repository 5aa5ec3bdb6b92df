"""Dense (fully connected) and Flatten.

Dense, x (N, D), W (D, F), b (F,):
    forward   y  = x @ W + b                    (N, F)
    backward  dW = x.T @ dy      (D, F)
              db = sum_n dy[n]   (F,)
              dx = dy @ W.T      (N, D)

Flatten: (N, H, W, C) -> (N, H*W*C) in NHWC order; backward reshapes back.

The fast backend computes the same three products on both cores, each block a
one-thread BLAS call (fast/parallel.py says why).
"""
import numpy as np

from .. import backend
from .layer import Layer, check_float_dtype, check_positive_int
from .init import as_rng, init_weight


class Dense(Layer):
    """y = x @ W + b.  Params: W (in_features, out_features), b (out_features,).

    ``scale`` multiplies the output (airbench divides its last layer's logits by 9):
    y = scale * (x @ W + b), and the backward pass carries the same factor.
    """

    cached = ("x",)

    def __init__(self, in_features, out_features, bias=True, init="glorot", rng=None,
                 dtype=np.float32, scale=1.0, name=None):
        super().__init__(name)
        in_features = check_positive_int(self.name, "in_features", in_features)
        out_features = check_positive_int(self.name, "out_features", out_features)
        dtype = check_float_dtype(self.name, dtype)
        self.D, self.F, self.use_bias, self.scale = in_features, out_features, bias, float(scale)
        self.add_param("W", init_weight((in_features, out_features), in_features, out_features,
                                        init, as_rng(rng), dtype))
        if bias:
            self.add_param("b", np.zeros(out_features, dtype=dtype), role="bias")
        self.x = None

    def __repr__(self):
        return f"{self.name}({self.D}->{self.F}, bias={self.use_bias})"

    def output_shape(self, input_shape):
        self.check_example_shape(input_shape, 1, channels=self.D)
        return (self.F,)

    def flops(self, input_shape):
        return 2 * self.D * self.F

    def forward(self, x, training=False):
        self.check_input(x, ndim=2, channels=self.D)
        self.check_params_dtype(x)
        return backend.run(self, "forward", x)

    def backward(self, dy):
        """dx (N, D), or None when not needs_input_grad; fills grads W and b."""
        self.check_forward_ran(self.x)
        dy = self.check_backward(dy, (self.x.shape[0], self.F), self.x.dtype)
        if self.scale != 1.0:
            dy = dy * dy.dtype.type(self.scale)             # y = scale * (x @ W + b)
        return backend.run(self, "backward", dy)

    def forward_reference(self, x):
        self.x = x
        y = x @ self.params["W"]                            # (N, D) @ (D, F)
        if self.use_bias:
            y = y + self.params["b"]
        return y * y.dtype.type(self.scale) if self.scale != 1.0 else y

    def backward_reference(self, dy):
        if "W" not in self.frozen:
            self.grads["W"][...] = self.x.T @ dy            # (D, N) @ (N, F)
        if self.use_bias and "b" not in self.frozen:
            self.grads["b"][...] = dy.sum(axis=0)
        return dy @ self.params["W"].T if self.needs_input_grad else None


class Flatten(Layer):
    x_shape = None                                 # the input's shape, kept by forward

    def output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def forward(self, x, training=False):
        self.check_input(x)
        self.x_shape, self.x_dtype = x.shape, x.dtype
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        self.check_forward_ran(self.x_shape)
        dy = self.check_backward(dy, (self.x_shape[0], int(np.prod(self.x_shape[1:]))),
                                 self.x_dtype)
        return dy.reshape(self.x_shape)
