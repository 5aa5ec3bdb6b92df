"""Backends: who computes a layer's forward and backward pass.

minicnn has two, and every built-in layer runs on both:

* ``"reference"`` — the plain NumPy code written beside each layer's formula, in
  ``minicnn/nn/*.py`` (the layer's ``forward_reference`` / ``backward_reference``
  methods). Slow, short, obviously the formula: the code to read first.
* ``"fast"`` (the default) — numba kernels, blocked matrix products and the
  convolution's four algorithms, in ``minicnn/fast``. Each implementation is
  registered here for one layer type and one pass (``register``), and tested
  against the reference.

Choosing one, for the whole process or for a block of code::

    minicnn.use_backend("reference")             # from now on
    with minicnn.use_backend("reference"):       # only inside the block
        logits = model.forward(x)

A layer's backward always runs on the backend that ran its forward (what one
keeps for the other is private to that backend). A layer type the fast backend
has not registered a pass for runs that pass on the reference code.

Optimizers use the same registry: SGD's step is registered as (SGD, "update")
(``minicnn/fast/optim.py``) and ``SGD.update`` asks for it on the fast backend.
"""
BACKENDS = ("fast", "reference")

_fast = {}                 # (layer or optimizer type, pass) -> function(layer, *args)
_fast_path_names = None    # function(layer, x_shape) -> {pass: name}, set by minicnn.fast
_active = "fast"


def register(layer_type, pass_name):
    """Decorator: ``fn(layer, *args)`` computes ``pass_name`` ("forward" or "backward")
    of ``layer_type`` on the fast backend."""
    def add(fn):
        _fast[(layer_type, pass_name)] = fn
        return fn
    return add


def register_path_names(describe):
    """The fast backend's ``describe(layer, x_shape) -> {"forward", "dx", "dW": name}``."""
    global _fast_path_names
    _fast_path_names = describe


def path_names(layer, x_shape):
    """{"forward", "dx", "dW"} -> the code that runs each pass of ``layer`` for an input
    of ``x_shape`` (batch axis included) on the active backend ("numpy": the same plain
    code on both backends)."""
    if _active == "fast" and _fast_path_names is not None:
        return _fast_path_names(layer, x_shape)
    where = "reference" if hasattr(layer, "forward_reference") else "numpy"
    return {"forward": where, "dx": where, "dW": where}


def current_backend():
    """The name of the active backend, "fast" or "reference"."""
    return _active


class use_backend:
    """Switch backends now; used as a context manager, switch back at the end of the block."""

    def __init__(self, name):
        global _active
        if name not in BACKENDS:
            raise ValueError(f"use_backend: unknown backend {name!r}; expected one of {BACKENDS}")
        self.previous, _active = _active, name

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        global _active
        _active = self.previous
        return False


def fast_implementation(layer_type, pass_name):
    """The fast backend's function for this pass of ``layer_type`` (a layer's or an
    optimizer's), or None.

    A subclass inherits its base class's fast code, unless it redefines any reference
    method (``forward_reference``, ``backward_pool_reference``, ``update_reference``, ...;
    any pass, since forward and backward share what forward keeps): then it has changed
    the maths, and all its passes run its own reference code."""
    for cls in layer_type.__mro__:
        fn = _fast.get((cls, pass_name))
        if fn is not None:
            return fn
        if any(name.endswith("_reference") for name in vars(cls)):
            return None
    return None


def run(layer, pass_name, *args, **kwargs):
    """Compute one pass of ``layer`` on the active backend (a forward pass: "forward",
    or a fused step's, "forward_gelu") or on the backend that ran its forward (backward)."""
    if pass_name.startswith("forward"):
        fast = _active == "fast" and fast_implementation(type(layer), pass_name) is not None
        layer.ran_on = "fast" if fast else "reference"      # the code that actually runs
    elif layer.ran_on is None:
        raise RuntimeError(f"{layer.name}.{pass_name}: call forward first (backward uses what "
                           f"forward kept)")
    fn = fast_implementation(type(layer), pass_name) if layer.ran_on == "fast" else None
    if fn is None:
        return getattr(layer, pass_name + "_reference")(*args, **kwargs)
    return fn(layer, *args, **kwargs)
