"""Sequential: a network as a list of layers applied in order.

forward:   x -> layer_0 -> layer_1 -> ... -> logits
backward:  dlogits -> layer_n.backward -> ... -> layer_0.backward -> dx
           (each layer fills its own grads on the way)

Names: parameter ``key`` of layer ``i`` is called ``"i.key"`` (``"0.W"``,
``"3.gamma"``) in ``named_parameters()``, ``state_dict()`` and saved files.

Steps: the layers run in ``steps``, a list made once when the model is built. A
step is one layer, or a fused run: a layer that declares ``fuses_with`` followed by
exactly that type (``fused_count`` says how many) runs as one step (``forward_fused``,
``backward_fused``), saving passes over large activations: Conv2D + ReLU computes
y = max(conv(x), 0) block by block while the output is in cache; Conv2D + a 2x2
MaxPool2D (after a ReLU or not) pools each block of the conv's output there and never
writes the full map, nor the full gradient on the way back; BatchNorm + GELU computes
GELU(BN(x)) from x in one pass each way without keeping BN's output. A Conv2D step
whose input a ReLU made (the ReLU ends the step before, perhaps followed by that
step's fused max-pool) does the ReLU's backward in its own (``relu_folds``,
``Layer.takes_relu_backward``): dL/dz = dx where x > 0, else 0, which the fast
backend's Winograd dx kernel applies as it writes dx; that ReLU's backward is then
skipped. ``fold_relus = False`` turns this off. ``summary()``
shows each fused layer; ``Sequential(layers, fuse=False)`` runs every layer on its own
(same numbers: fusion changes no result).

Hooks, for looking inside (traces, feature maps, saliency): ``forward_hooks`` and
``backward_hooks`` are lists of functions ``hook(i, layer, array)``, called with the
output of layer i after its forward pass, and with dL/d(output of layer i) before its
backward pass. While a hook of either kind is set, every layer runs on its own (no
fusion, no ReLU folds), so each one's output and gradient exist to be seen; the numbers
are the same either way. Backward runs the steps the last forward ran.

The first layer's input is the data, whose gradient nobody needs: before each
backward pass Sequential sets ``needs_input_grad`` to False on every layer up to the
first with a trainable (not frozen) param, so ``backward`` stops there and returns
None. Freezing the params of the first layers (airbench stops training its
whitening bias after 3 epochs) thus also stops their backward pass
(``input_gradient`` computes dL/dx when wanted, e.g. for gradient checks or saliency).

Memory: what forward keeps for backward is let go as soon as it has been used, layer
by layer on the way down, as PyTorch frees its graph: by the time the large
gradients of the first layers exist, the later layers' saved inputs are gone, and
nothing is held between training steps. A second backward over the same forward
therefore raises, unless the first was ``backward(dy, retain=True)``.
"""
import os

import numpy as np

from .. import backend
from ..checkpoint import write_npz_atomic
from .layer import Layer, check_positive_int, is_int


class Sequential:
    def __init__(self, layers, fuse=True):
        layers = list(layers)
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential: item {i} is a {type(layer).__name__}, expected a Layer")
        if not layers:
            raise ValueError("Sequential: expected at least one layer, got none")
        self.layers = layers
        self.forward_ran = False   # True once forward has run: backward has something to use
        self.released = None       # "predict()" or "backward()" after those: the layers hold nothing for backward
        self.set_input_grads(wanted=False)
        self.steps = self.plan_steps(fuse)
        self.fold_relus = fuse         # ReLU backward in the next Conv2D's (relu_folds)
        self.ran_steps = self.steps    # the steps of the last forward (all single with hooks)
        self.forward_hooks, self.backward_hooks = [], []

    def plan_steps(self, fuse=True):
        """[(i,), (i, i + 1, ...), ...]: the layers in order, each fused run as one step."""
        steps, i = [], 0
        while i < len(self.layers):
            taken = self.layers[i].fused_count(self.layers[i + 1:]) if fuse else 0
            steps.append(tuple(range(i, i + 1 + taken)))
            i += 1 + taken
        return steps

    @property
    def relu_folds(self):
        """{s}: the steps whose first layer does the backward of the ReLU that made its
        input (``takes_relu_backward``), when backward runs the planned steps."""
        return {s for s in range(1, len(self.steps)) if self.folds_relu(self.steps, s)}

    def folds_relu(self, steps, s):
        """True when step s of ``steps`` does the ReLU backward of step s - 1."""
        if not self.fold_relus or not 0 < s < len(steps):
            return False
        first = self.layers[steps[s][0]]
        return first.takes_relu_backward([self.layers[i] for i in steps[s - 1]])

    def step_layers(self, step):
        """(the step's first layer, the layers it takes in) for a step of ``steps``."""
        return self.layers[step[0]], tuple(self.layers[j] for j in step[1:])

    def __iter__(self):
        return iter(self.layers)

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    # -- computation ----------------------------------------------------------
    def forward(self, x, training=False):
        x = self._run(x, training, release=False)
        self.forward_ran, self.released = True, None
        return x

    def _run(self, x, training, release):
        """Every step's forward in turn. release: drop what each layer kept for backward
        as soon as the next has its input (predict)."""
        hooks = self.forward_hooks
        unfused = hooks or self.backward_hooks
        self.ran_steps = self.steps if not unfused else [(i,) for i in range(len(self.layers))]
        for step in self.ran_steps:
            if len(step) > 1:                                  # a layer + the ones it fuses
                first, following = self.step_layers(step)
                x = first.forward_fused(following, x, training)
            else:
                x = self.layers[step[0]].forward(x, training)
                for hook in hooks:
                    hook(step[0], self.layers[step[0]], x)
            if release:
                for i in step:
                    self.layers[i].release()
        return x

    __call__ = forward

    def backward(self, dy, retain=False):
        """Backpropagate dL/dlogits; fills every layer's grads. Returns None (the first
        layer does not compute the input's gradient: see ``input_gradient``).

        Each layer lets go of what its forward kept once its backward has run;
        ``retain=True`` keeps all of it, so that backward can run again on the same
        forward (for example with the gradient of another loss)."""
        self.check_can_backward()
        self.set_input_grads(wanted=False)
        return self.backward_through_layers(dy, retain)

    def check_can_backward(self):
        """Raise a RuntimeError, saying why, unless the layers hold a forward's saved inputs."""
        if self.released == "predict()":
            raise RuntimeError("Sequential.backward: the last pass was predict(), which keeps "
                               "nothing for backward; call forward(x, training=...) first")
        if self.released == "backward()":
            raise RuntimeError("Sequential.backward: backward already ran on the last forward and "
                               "let go of what it kept; call forward again, or pass retain=True "
                               "to the first backward")
        if not self.forward_ran:
            raise RuntimeError("Sequential.backward: call forward first (each layer's backward "
                               "uses what its forward kept)")

    def backward_through_layers(self, dy, retain=False):
        if self.backward_hooks and any(len(step) > 1 for step in self.ran_steps):
            raise RuntimeError("Sequential.backward: backward hooks were set after a forward "
                               "that ran fused steps, whose inner gradients do not exist; "
                               "set the hooks before forward")
        for s in reversed(range(len(self.ran_steps))):
            step = self.ran_steps[s]
            if dy is None:                   # below the first trainable layer: nothing to do
                break
            dy = self.step_backward(s, dy)
            if not retain:
                for i in step:
                    self.layers[i].release()     # its saved input is used up: free it now
        if not retain:
            for layer in self.layers:        # the layers below the first trainable one too
                layer.release()
            self.released = "backward()"
        return dy

    def step_backward(self, s, dy):
        """dL/d(the input of step s of ``ran_steps``) from dL/d(its output): its layers'
        backward passes, with the ReLU folds where the planned steps ran and no hook
        is set (``relu_folds``): step s does the ReLU backward of the step before when
        it folds, and its own ReLU's was done by step s + 1 when that one folds."""
        steps = self.ran_steps
        folding = steps is self.steps and not self.backward_hooks
        relu_done = folding and self.folds_relu(steps, s + 1)
        options = {"through_relu": True} if folding and self.folds_relu(steps, s) else {}
        step = steps[s]
        if len(step) > 1:
            first, following = self.step_layers(step)
            if relu_done:
                options["relu_done"] = True
            return first.backward_fused(following, dy, **options)
        if relu_done:                        # a ReLU on its own, whose backward was done
            return dy
        for hook in self.backward_hooks:
            hook(step[0], self.layers[step[0]], dy)
        return self.layers[step[0]].backward(dy, **options)

    def first_trainable(self):
        """Index of the first layer with a param that is not frozen (the last layer if none)."""
        return next((i for i, layer in enumerate(self.layers)
                     if any(key not in layer.frozen for key in layer.params)), len(self.layers) - 1)

    def set_input_grads(self, wanted):
        """needs_input_grad on every layer: False up to the first trainable one (nothing
        below it has anything to train), unless the input's gradient is ``wanted``."""
        first = self.first_trainable()
        for i, layer in enumerate(self.layers):
            layer.needs_input_grad = wanted or i > first

    def input_gradient(self, dy, retain=False):
        """Backward that also returns dL/dx for the network input (gradient checks)."""
        self.check_can_backward()
        self.set_input_grads(wanted=True)
        try:
            return self.backward_through_layers(dy, retain)
        finally:
            self.set_input_grads(wanted=False)

    def predict(self, x, batch_size=500):
        """Logits for x in eval mode, computed batch by batch. Returns (N, K).

        Inference only: each layer releases what it kept for backward as soon as the
        next one has its input, so peak memory is about the largest layer's input +
        output, not the sum over all layers (as a training forward needs)."""
        batch_size = check_positive_int("Sequential.predict", "batch_size", batch_size)
        if not isinstance(x, np.ndarray):
            raise TypeError(f"Sequential.predict: expected a numpy array, got {type(x).__name__}")
        if len(x) == 0:
            raise ValueError("Sequential.predict: got an empty input (0 examples)")
        outs = []
        for i in range(0, len(x), batch_size):
            outs.append(self._run(x[i:i + batch_size], training=False, release=True))
        self.released = "predict()"
        return np.concatenate(outs)

    # -- parameters -------------------------------------------------------------
    def named_parameters(self):
        """Yield (name, param, grad) for every trainable, unfrozen array."""
        for i, layer in enumerate(self.layers):
            for key, p in layer.params.items():
                if key not in layer.frozen:
                    yield f"{i}.{key}", p, layer.grads[key]

    def named_arrays(self):
        """Yield (name, array) for every param (frozen ones too) and buffer: the live
        arrays, not copies (for weight averaging that also covers BatchNorm statistics)."""
        for i, layer in enumerate(self.layers):
            for key, a in list(layer.params.items()) + list(layer.buffers.items()):
                yield f"{i}.{key}", a

    def roles(self):
        """{"i.key": role} for every param, frozen ones too (Layer.roles): what recipes
        choose parameter groups by."""
        return {f"{i}.{key}": role for i, layer in enumerate(self.layers)
                for key, role in layer.roles.items()}

    def parameters(self):
        return [p for _, p, _ in self.named_parameters()]

    def gradients(self):
        return [g for _, _, g in self.named_parameters()]

    def num_params(self, trainable_only=False):
        if trainable_only:
            return sum(p.size for p in self.parameters())
        return sum(p.size for layer in self.layers for p in layer.params.values())

    def to(self, dtype):
        for layer in self.layers:
            layer.to(dtype)
        return self

    # -- saving and loading -----------------------------------------------------
    def state_dict(self):
        """Every param (frozen ones too) and buffer, as ``{"i.key": array}`` copies."""
        return {name: a.copy() for name, a in self.named_arrays()}

    def load_state_dict(self, state):
        """Copy arrays into the model in place. Missing, unexpected or
        mismatched arrays raise a ValueError that lists them."""
        expected = {}
        for i, layer in enumerate(self.layers):
            for key, a in list(layer.params.items()) + list(layer.buffers.items()):
                expected[f"{i}.{key}"] = (layer, key, a)
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        problems = []
        if missing:
            problems.append(f"missing arrays {missing}")
        if unexpected:
            problems.append(f"unexpected arrays {unexpected}")
        for name in sorted(set(expected) & set(state)):
            layer, key, a = expected[name]
            got = np.asarray(state[name])
            if got.shape != a.shape:
                problems.append(f"{name} ({layer.name}.{key}): expected shape {a.shape}, "
                                f"got {got.shape}")
            elif not np.issubdtype(got.dtype, np.floating):
                problems.append(f"{name} ({layer.name}.{key}): expected a float array, got {got.dtype}")
        if problems:
            raise ValueError("Sequential.load_state_dict: " + "; ".join(problems))
        for name, (layer, key, a) in expected.items():
            a[...] = state[name]

    def save(self, path):
        """Write the state dict to an ``.npz`` file (no pickle), atomically: the old
        file stays whole until the new one is complete. ".npz" is appended if missing."""
        path = os.fspath(path)
        write_npz_atomic(path if path.endswith(".npz") else path + ".npz", self.state_dict())

    def load(self, path):
        """Load a file written by ``save``, without pickle and within bounds: the file is
        checked whole before any array is read (``checkpoint.read_npz``).

        Raises FileNotFoundError if there is no file at ``path``, and CheckpointError (a
        ValueError) naming the file if it cannot be read (not a regular file, truncated,
        damaged, oversized, object arrays) or does not hold this model's arrays.
        """
        from ..checkpoint import CheckpointError, read_npz
        path = os.fspath(path)
        try:
            state = read_npz(path)
        except CheckpointError as e:
            raise CheckpointError(f"Sequential.load: cannot read {e}") from e
        try:
            self.load_state_dict(state)
        except ValueError as e:
            raise CheckpointError(f"Sequential.load: {path} does not hold this model's "
                                  f"weights: {e}") from e

    # -- description ------------------------------------------------------------
    def summary(self, input_shape=(32, 32, 3), paths=False, batch_size=128):
        """A table of each layer's output shape, parameter count and forward FLOPs per
        example (multiply-add = 2). ``input_shape`` excludes the batch axis. Layers
        fused into the one before them are marked. ``paths=True`` adds which code
        computes each layer's forward pass, dx and dW on the active backend, for a
        batch of ``batch_size`` (a Conv2D's choice depends on its map sizes, channels
        and dtype: fast/rules.py). A layer that cannot take the shape the one before gives raises a ValueError
        (``layer_shapes``)."""
        batch_size = check_positive_int("Sequential.summary", "batch_size", batch_size)
        fused_into = {j: step[0] for step in self.steps for j in step[1:]}
        rows, total_p, total_f = [], 0, 0
        for i, (in_shape, shape) in enumerate(self.layer_shapes(input_shape)):
            layer = self.layers[i]
            flops = layer.flops(in_shape)
            n = sum(p.size for p in layer.params.values())
            total_p, total_f = total_p + n, total_f + flops
            name = repr(layer) + (f"  [fused into {fused_into[i]}]" if i in fused_into else "")
            row = [f"{i}", name, str(shape), f"{n:,}", f"{flops / 1e6:.2f}"]
            if paths:
                row += list(self.layer_paths(i, (batch_size,) + in_shape))
            rows.append(tuple(row))
        extra = ("", "", "") if paths else ()
        rows.append(("", "total", "", f"{total_p:,}", f"{total_f / 1e6:.2f}") + extra)
        head = ("#", "layer", "output (H, W, C)", "params", "MFLOPs")
        if paths:
            head += ("forward", "dx", "dW")
        widths = [max(len(r[j]) for r in rows + [head]) for j in range(len(head))]
        fmt = "  ".join("{:<%d}" % w for w in widths)
        lines = [fmt.format(*head), "-" * (sum(widths) + 2 * len(widths) - 2)]
        lines += [fmt.format(*r) for r in rows]
        if paths:
            lines.append(f"backend: {backend.current_backend()}, batch {batch_size}")
        return "\n".join(lines)

    def layer_paths(self, i, x_shape):
        """(forward, dx, dW): which code runs each pass of layer i for an input of shape
        x_shape (batch axis included), on the active backend. "-" where a pass is not
        computed: no trainable params, frozen weights, the first layer's dx."""
        layer = self.layers[i]
        paths = backend.path_names(layer, x_shape)
        trainable = [k for k in layer.params if k not in layer.frozen]
        dW = paths["dW"] if trainable else "-"
        if trainable and "W" in layer.params and "W" in layer.frozen:
            dW = "db only"
        return paths["forward"], paths["dx"] if layer.needs_input_grad else "-", dW

    def flops(self, input_shape=(32, 32, 3)):
        """Forward FLOPs for one example of ``input_shape`` (no batch axis)."""
        return sum(layer.flops(in_shape)
                   for layer, (in_shape, _) in zip(self.layers, self.layer_shapes(input_shape)))

    def layer_shapes(self, input_shape=(32, 32, 3)):
        """[(input shape, output shape)] of every layer, for one example of ``input_shape``
        (no batch axis), from each layer's ``output_shape``. A layer that cannot take the
        shape that arrives raises a ValueError naming its index, the layer, that shape and
        what the layer expects (before any data is run through the network)."""
        shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else ()
        if not shape or not all(is_int(d) and d >= 1 for d in shape):
            raise ValueError(f"Sequential: input_shape must be a tuple of positive ints, one "
                             f"example without the batch axis such as (32, 32, 3), "
                             f"got {input_shape!r}")
        shapes = []
        for i, layer in enumerate(self.layers):
            try:
                out = tuple(layer.output_shape(shape))
            except ValueError as e:
                source = "the input" if i == 0 else f"layer {i - 1}"
                raise ValueError(f"Sequential: layer {i}, {layer!r}, cannot take shape {shape} "
                                 f"from {source}: {e}") from e
            shapes.append((shape, out))
            shape = out
        return shapes
