"""The layer contract every minicnn layer follows.

Layout: image activations are NHWC, ``(N, H, W, C)`` — batch, height, width,
channels. With channels last, the matrix product at the heart of a convolution
writes its output directly in the next layer's layout (no transpose).

A layer

* ``forward(x, training)`` computes ``y`` and keeps what ``backward`` needs;
* ``backward(dy)`` returns ``dx = dL/dx`` and writes ``dL/dp`` for every
  trainable array ``p`` into ``self.grads[name]`` (same key, same shape, same
  array object every step, so optimizers can hold on to it);
* never changes a weight: optimizers do that, and they are separate.

Each built-in layer writes both passes twice: ``forward_reference`` /
``backward_reference``, plain NumPy beside the formula, and a fast version in
``minicnn/fast`` registered for the same layer and pass. ``forward`` and
``backward`` check their input and hand the work to the active backend
(``minicnn.backend``). A layer of your own only needs ``forward`` and ``backward``.

Declared attributes (what a container may rely on):

``needs_input_grad`` — True: ``backward`` returns dx. A container sets it to False
              on its first layer, whose input is the data: layers that can skip
              the dx computation then return None.
``fuses_with`` — the layer type this layer can absorb when it comes right after
              it (Conv2D: ReLU); ``Sequential`` shows and runs such pairs as
              one step.
``roles``   — what each param is for: ``"weight"``, ``"bias"``, ``"norm_scale"``,
              ``"norm_shift"``, ``"whitening_bias"``, ... Training recipes pick
              parameter groups by role, not by name or position.

``params``  — trainable arrays, by name (``"W"``, ``"b"``, ...).
``grads``   — their gradients, same names and shapes.
``buffers`` — arrays that are saved with the model but never trained
              (BatchNorm's running statistics).
``frozen``  — names of params that the optimizer must leave alone.
"""
import numpy as np


class Layer:
    """Base class: holds params/grads/buffers and checks inputs."""

    cached = ()          # names of the attributes forward keeps for backward
    fuses_with = None    # a layer type this one can absorb when it follows (see above)

    def __init__(self, name=None):
        self.name = name or type(self).__name__
        self.params = {}
        self.grads = {}
        self.buffers = {}
        self.frozen = set()
        self.roles = {}
        self.needs_input_grad = True
        self.ran_on = None           # the backend that ran the last forward

    # -- parameters -------------------------------------------------------
    def add_param(self, key, value, role="weight"):
        """Register a trainable array, a zeroed gradient beside it, and its role."""
        self.params[key] = value
        self.grads[key] = np.zeros_like(value)
        self.roles[key] = role

    def to(self, dtype):
        """Cast params, grads and buffers to ``dtype`` (float64 for gradient checks)."""
        for d in (self.params, self.grads, self.buffers):
            for k in d:
                d[k] = d[k].astype(dtype)
        return self

    def zero_grads(self):
        for g in self.grads.values():
            g.fill(0)

    # -- shapes and FLOPs (used by Sequential.summary) --------------------
    def output_shape(self, input_shape):
        """Shape of one example's output, given one example's input shape."""
        return input_shape

    def flops(self, input_shape):
        """Forward floating-point operations for ONE example (multiply-add = 2)."""
        return 0

    # -- the contract -----------------------------------------------------
    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def can_fuse(self, next_layer):
        """True when ``next_layer`` is exactly of type ``fuses_with``. Exact types on both
        sides: a subclass may compute something else, so it must declare fusion itself."""
        return ("fuses_with" in vars(type(self)) and self.fuses_with is not None
                and type(next_layer) is self.fuses_with)

    def release(self):
        """Drop what forward kept for backward. Inference calls this after each layer
        (``Sequential.predict``), so only one layer's input and output are alive at a time."""
        for attr in self.cached:
            setattr(self, attr, None)

    def __call__(self, x, training=False):
        return self.forward(x, training)

    def __repr__(self):
        return f"{self.name}()"

    # -- input checks shared by all layers ---------------------------------
    def check_input(self, x, ndim=None, channels=None):
        """Raise a clear error if ``x`` is not what this layer takes.

        ndim: expected number of dimensions (4 for NHWC images, 2 for (N, D)).
        channels: expected size of the last axis, or None for any.
        """
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{self.name}: expected a numpy array, got {type(x).__name__}")
        if x.dtype not in (np.float32, np.float64):
            raise TypeError(f"{self.name}: expected float32 or float64 input, got dtype {x.dtype}")
        if ndim is not None and x.ndim != ndim:
            layout = "(N, H, W, C)" if ndim == 4 else "(N, D)" if ndim == 2 else f"{ndim}-D"
            raise ValueError(f"{self.name}: expected a {ndim}-D input {layout}, "
                             f"got shape {x.shape}")
        if x.shape[0] == 0:
            raise ValueError(f"{self.name}: got an empty batch (shape {x.shape})")
        if channels is not None and x.shape[-1] != channels:
            raise ValueError(f"{self.name}: expected {channels} channels in the last axis, "
                             f"got shape {x.shape} ({x.shape[-1]} channels)")

    def check_backward(self, dy, expected_shape):
        if dy.shape != tuple(expected_shape):
            raise ValueError(f"{self.name}.backward: expected dy of shape {tuple(expected_shape)}, "
                             f"got {dy.shape} (call forward first, with the same batch)")
