"""Sequential: a network as a list of layers applied in order.

forward:   x -> layer_0 -> layer_1 -> ... -> logits
backward:  dlogits -> layer_n.backward -> ... -> layer_0.backward -> dx
           (each layer fills its own grads on the way)

Names: parameter ``key`` of layer ``i`` is called ``"i.key"`` (``"0.W"``,
``"3.gamma"``) in ``named_parameters()``, ``state_dict()`` and saved files.
"""
import os

import numpy as np

from .checkpoint import write_npz_atomic
from .layers.activations import ReLU
from .layers.base import Layer
from .layers.conv import Conv2D


class Sequential:
    def __init__(self, layers):
        layers = list(layers)
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential: item {i} is a {type(layer).__name__}, expected a Layer")
        if not layers:
            raise ValueError("Sequential: expected at least one layer, got none")
        self.layers = layers
        self.released = False      # True after predict: the layers hold nothing for backward
        # The first layer's input is the data: no one needs its gradient.
        self.layers[0].skip_input_grad = True

    def __iter__(self):
        return iter(self.layers)

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    # -- computation ----------------------------------------------------------
    def forward(self, x, training=False):
        x = self._run(x, training, release=False)
        self.released = False
        return x

    def _run(self, x, training, release):
        """Every layer's forward in turn. A Conv2D followed by a ReLU is fused: the conv
        applies the ReLU to each block of its output while it is in cache, and the ReLU
        layer only keeps the result for its backward (saves one pass over the largest
        activations). release: drop what each layer kept for backward (predict)."""
        layers, i = self.layers, 0
        while i < len(layers):
            layer = layers[i]
            fuse = (type(layer) is Conv2D and i + 1 < len(layers)   # exact types: a subclass
                    and type(layers[i + 1]) is ReLU)                 # may change forward
            if fuse:
                x = layers[i + 1].forward_fused(layer.forward(x, training, relu=True))
                if release:
                    layer.release()
                    layers[i + 1].release()
                i += 2
                continue
            x = layer.forward(x, training)
            if release:
                layer.release()
            i += 1
        return x

    __call__ = forward

    def backward(self, dy):
        """Backpropagate dL/dlogits; fills every layer's grads. Returns None
        (the input's gradient is skipped: see ``input_gradient``)."""
        if self.released:
            raise RuntimeError("Sequential.backward: the last pass was predict(), which keeps "
                               "nothing for backward; call forward(x, training=...) first")
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def input_gradient(self, dy):
        """Backward that also returns dL/dx for the network input (gradient checks)."""
        self.layers[0].skip_input_grad = False
        try:
            return self.backward(dy)
        finally:
            self.layers[0].skip_input_grad = True

    def predict(self, x, batch_size=500):
        """Logits for x in eval mode, computed batch by batch. Returns (N, K).

        Inference only: each layer releases what it kept for backward as soon as the
        next one has its input, so peak memory is about the largest layer's input +
        output, not the sum over all layers (as a training forward needs)."""
        if len(x) == 0:
            raise ValueError("Sequential.predict: got an empty input (0 examples)")
        outs = []
        for i in range(0, len(x), batch_size):
            outs.append(self._run(x[i:i + batch_size], training=False, release=True))
        self.released = True
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
        state = {}
        for i, layer in enumerate(self.layers):
            for key, a in list(layer.params.items()) + list(layer.buffers.items()):
                state[f"{i}.{key}"] = a.copy()
        return state

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
        """Load a file written by ``save`` (read with allow_pickle=False)."""
        try:
            with np.load(path, allow_pickle=False) as f:
                state = {k: f[k] for k in f.files}
        except (OSError, ValueError, EOFError) as e:
            raise ValueError(f"Sequential.load: cannot read {path!s} as an .npz weights file: {e}") from e
        self.load_state_dict(state)

    # -- description ------------------------------------------------------------
    def summary(self, input_shape=(32, 32, 3)):
        """A table of each layer's output shape, parameter count and forward FLOPs
        per example (multiply-add = 2). ``input_shape`` excludes the batch axis."""
        rows, shape, total_p, total_f = [], tuple(input_shape), 0, 0
        for i, layer in enumerate(self.layers):
            flops = layer.flops(shape)
            shape = layer.output_shape(shape)
            n = sum(p.size for p in layer.params.values())
            total_p, total_f = total_p + n, total_f + flops
            rows.append((f"{i}", repr(layer), str(shape), f"{n:,}", f"{flops / 1e6:.2f}"))
        rows.append(("", "total", "", f"{total_p:,}", f"{total_f / 1e6:.2f}"))
        head = ("#", "layer", "output (H, W, C)", "params", "MFLOPs")
        widths = [max(len(r[j]) for r in rows + [head]) for j in range(5)]
        fmt = "  ".join("{:<%d}" % w for w in widths)
        lines = [fmt.format(*head), "-" * (sum(widths) + 8)] + [fmt.format(*r) for r in rows]
        return "\n".join(lines)

    def flops(self, input_shape=(32, 32, 3)):
        total, shape = 0, tuple(input_shape)
        for layer in self.layers:
            total += layer.flops(shape)
            shape = layer.output_shape(shape)
        return total
