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
              on its first layers (the data's side, up to the first trainable
              param): layers that can skip the dx computation then return None.
``fuses_with`` — the layer type (or tuple of types) this layer can absorb when it
              comes right after it (Conv2D: ReLU, MaxPool2D; BatchNorm: GELU);
              ``Sequential`` shows and runs such a run of layers as one step
              (``fused_count`` says how many follow: Conv2D takes a ReLU and then
              a 2x2 max-pool too).
``roles``   — what each param is for: ``"weight"``, ``"bias"``, ``"norm_scale"``,
              ``"norm_shift"``, ``"whitening_bias"``, ... Training recipes pick
              parameter groups by role, not by name or position.

``params``  — trainable arrays, by name (``"W"``, ``"b"``, ...).
``grads``   — their gradients, same names and shapes.
``buffers`` — arrays that are saved with the model but never trained
              (BatchNorm's running statistics).
``frozen``  — names of params that the optimizer must leave alone.

Checks. Every public entry point checks what it is given and raises an error that
names the layer (or function), the argument, what it accepts and what it got:

* constructor arguments: ``check_positive_int``, ``check_fraction`` and
  ``check_float_dtype`` below (ValueError / TypeError);
* ``forward``: ``check_input`` — a float32/float64 array of the right number of
  dimensions and channels (layers with params also want the params' dtype);
* ``backward``: ``check_forward_ran`` (RuntimeError before any forward) and
  ``check_backward`` — dy a float array of the shape of forward's output,
  returned in forward's dtype;
* ``output_shape``: ``check_example_shape`` — the shape of one example, so that
  ``Sequential.summary`` can say which layer does not fit the one before.
"""
import numpy as np

FLOAT_DTYPES = (np.float32, np.float64)      # what every layer computes in


# -- argument checks shared by the layers, Sequential and the loss --------------------
def is_int(value):
    """True for a Python or NumPy integer; False for a bool (True is not a size)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_positive_int(owner, label, value):
    """``value`` as an int if it is an integer >= 1, else a ValueError such as
    "Dense: out_features must be a positive int, got 0"."""
    if not is_int(value) or value < 1:
        raise ValueError(f"{owner}: {label} must be a positive int, got {value!r}")
    return int(value)


def check_fraction(owner, label, value, include_one=False):
    """``value`` as a float if it is a real number in [0, 1) (or [0, 1] with
    ``include_one``), else a ValueError naming the argument and what it got."""
    interval = "[0, 1]" if include_one else "[0, 1)"
    real = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_))
    if not real or not (0 <= value <= 1 if include_one else 0 <= value < 1):
        raise ValueError(f"{owner}: {label} must be in {interval}, got {value!r}")
    return float(value)


def check_float_dtype(owner, dtype):
    """``dtype`` as a np.dtype if it is float32 or float64 (the dtypes the kernels are
    written for), else a TypeError naming what it got."""
    try:
        dt = None if dtype is None else np.dtype(dtype)      # np.dtype(None) is float64
    except TypeError:
        dt = None
    if dt not in FLOAT_DTYPES:
        got = dt.name if dt is not None else repr(dtype)
        raise TypeError(f"{owner}: dtype must be float32 or float64, got {got}")
    return dt


class Layer:
    """Base class: holds params/grads/buffers and checks inputs."""

    cached = ()          # names of the attributes forward keeps for backward
    fuses_with = None    # layer type(s) this one can absorb when they follow (see above)

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
        dtype = check_float_dtype(f"{self.name}.to", dtype)
        for d in (self.params, self.grads, self.buffers):
            for k in d:
                d[k] = d[k].astype(dtype)
        return self

    def zero_grads(self):
        for g in self.grads.values():
            g.fill(0)

    # -- shapes and FLOPs (used by Sequential.summary) --------------------
    def output_shape(self, input_shape):
        """Shape of one example's output, given one example's input shape (no batch
        axis). Raises a ValueError if the layer cannot take that shape (see
        ``check_example_shape``); this one, for layers of any shape, returns it as is."""
        return tuple(input_shape)

    def flops(self, input_shape):
        """Forward floating-point operations for ONE example (multiply-add = 2)."""
        return 0

    # -- the contract -----------------------------------------------------
    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def can_fuse(self, next_layer):
        """True when ``next_layer``'s type is exactly ``fuses_with`` (or one in it). Exact
        types on both sides: a subclass may compute something else, so it must declare
        fusion itself."""
        kinds = self.fuses_with if isinstance(self.fuses_with, tuple) else (self.fuses_with,)
        return "fuses_with" in vars(type(self)) and type(next_layer) in kinds

    def fused_count(self, following):
        """How many of ``following`` (the layers after this one, in order) this layer's
        fused step takes in: 1 when it can fuse with the next one (``can_fuse``), else 0.
        A layer that fuses a longer run says so here (Conv2D: ReLU, then a max-pool)."""
        return 1 if following and self.can_fuse(following[0]) else 0

    def takes_relu_backward(self, step_before):
        """True when this layer, first of a step, does the backward of the ReLU that made
        its input, given ``step_before``, the layers of the step before it (Conv2D does:
        ``backward(dy, through_relu=True)``; Sequential then skips that ReLU's). Here no."""
        return False

    def forward_fused(self, following, x, training=False):
        """This layer's forward and then those of ``following`` (the layers it takes in,
        ``fused_count``), as one step: a layer that declares ``fuses_with`` says here
        how it fuses them."""
        raise NotImplementedError(f"{self.name}: declares no fused forward")

    def backward_fused(self, following, dy):
        """Backward of a step made by ``forward_fused``: dL/d(the step's input) from
        dL/d(its output). Here the following layers' backward passes, last first, then
        this layer's; a layer whose fused forward keeps something else overrides it."""
        for layer in reversed(following):
            dy = layer.backward(dy)
        return self.backward(dy)

    def release(self):
        """Drop what forward kept for backward. Inference calls this after each layer
        (``Sequential.predict``), so only one layer's input and output are alive at a time;
        ``Sequential.backward`` calls it once the layer's backward has used them."""
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
        if x.dtype not in FLOAT_DTYPES:
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

    def check_params_dtype(self, x, param="W"):
        """Raise a TypeError unless ``x`` has the dtype of the param ``param``: a layer
        with weights computes in their dtype and does not cast its input silently."""
        expected = self.params[param].dtype
        if x.dtype != expected:
            raise TypeError(f"{self.name}: input dtype {x.dtype} does not match parameter dtype "
                            f"{expected}; cast the input or call model.to(dtype)")

    def check_example_shape(self, input_shape, ndim, channels=None):
        """``input_shape`` (one example, no batch axis) as a tuple, if it has ``ndim``
        axes and, when given, ``channels`` in the last; else a ValueError such as
        "Dense: expected an input of shape (100,) per example, got (256,)"."""
        shape = tuple(input_shape)
        axes = {3: ["H", "W", "C"], 1: ["D"]}.get(ndim, [f"d{k}" for k in range(ndim)])
        if channels is not None:
            axes[-1] = str(channels)
        if len(shape) != ndim or (channels is not None and shape[-1] != channels):
            layout = f"({axes[0]},)" if ndim == 1 else f"({', '.join(axes)})"
            raise ValueError(f"{self.name}: expected an input of shape {layout} per example, "
                             f"got {shape}")
        return shape

    def check_forward_ran(self, kept):
        """Raise a RuntimeError if backward comes before forward. ``kept``: what forward
        keeps for backward (the input, its shape, ...), None until forward has run."""
        if kept is None:
            raise RuntimeError(f"{self.name}.backward: call forward first (backward uses what "
                               f"forward kept)")

    def check_backward(self, dy, expected_shape, dtype=None):
        """Raise a clear error unless dy is a float array of ``expected_shape`` (the shape
        of forward's output). Returns dy, as a C-contiguous array of ``dtype`` (forward's
        dtype) when that is given: dx then has the dtype of x whatever dy's float dtype."""
        if not isinstance(dy, np.ndarray):
            raise TypeError(f"{self.name}.backward: expected dy as a numpy array, "
                            f"got {type(dy).__name__}")
        if dy.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{self.name}.backward: expected float32 or float64 dy, "
                            f"got dtype {dy.dtype}")
        if dy.shape != tuple(expected_shape):
            raise ValueError(f"{self.name}.backward: expected dy of shape {tuple(expected_shape)}, "
                             f"got {dy.shape} (call forward first, with the same batch)")
        return dy if dtype is None else np.ascontiguousarray(dy, dtype=dtype)
