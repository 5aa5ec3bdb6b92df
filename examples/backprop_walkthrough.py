"""Watch backpropagation go through a small CNN, layer by layer, and check every gradient.

    python examples/backprop_walkthrough.py

One batch of 4 random 8x8 RGB images goes forward through

    Conv2D(3 -> 8, 3x3) -> MaxPool2D(2) -> ReLU -> Flatten -> Dense(128 -> 10)
    -> softmax cross-entropy

and then backward, from the loss down to the images. For every layer the script prints
its shapes, its backward formula, and one cmp() line per gradient, in the style of
Karpathy's "Neural Networks: Zero to Hero", lecture 5:

    name                    shape          | exact: bool | approximate: bool | maxdiff: float

The gradient under test is the one minicnn trains with: the fast backend's backward
(numba kernels and blocked products, float32). Each one is compared twice:

  * vs numerical: central differences, dL/dt ~ (L(t + h) - L(t - h)) / 2h for every
    element t, in float64 on the plain NumPy code (minicnn.gradcheck.numerical_gradient).
    This is the definition of a derivative: it knows nothing of the formulas it checks.
    (float64 against float32: never exact, only approximate.)
  * vs reference: the same layer's plain NumPy backward, written beside its formula in
    minicnn/nn, run on the same x and dy (minicnn.use_backend("reference")).

"exact" means equal bit for bit; "approximate" means equal up to float32 rounding.
Then the script writes a layer of its own, Swish, in about 20 lines, and gradient-checks
it with minicnn.gradcheck.check_layer. It needs no data set. docs/backprop.md derives
every formula printed here.
"""
import copy

import numpy as np

import minicnn
from minicnn.fast.rules import layer_paths
from minicnn.gradcheck import check_layer, numerical_gradient
from minicnn.nn import Conv2D, Dense, Flatten, Layer, MaxPool2D, ReLU, softmax_cross_entropy

# -- config -----------------------------------------------------------------------------------
SEED = 0
N, H, W, C = 4, 8, 8, 3          # a batch of 4 images, 8x8 pixels, 3 channels (NHWC)
FILTERS = 8                      # the convolution's output channels
CLASSES = 10
STEP = 1e-6                      # h of the central differences (float64)
# "approximate": |mine - oracle| <= ATOL + RTOL * |oracle| everywhere. float32 keeps about
# 7 significant digits, so the fast gradients can agree that far and no further.
RTOL, ATOL = 1e-4, 1e-7
# check_layer's verdict: a correct backward gives a relative error near 1e-9 in float64,
# a wrong one near 1e-1.
PASS_BELOW = 1e-6

# The backward formula of each layer, as the printout shows it (docs/backprop.md derives them).
FORMULAS = {
    "Dense": ["dx = dy @ W.T  (N, D);   dW = x.T @ dy  (D, F);   db = sum_n dy[n]  (F,)"],
    "Flatten": ["dx = dy.reshape(x.shape): a reshape moves no numbers, nor does its backward"],
    "ReLU": ["dx = dy * [x > 0]: the gradient passes where the input was positive, else stops"],
    "MaxPool2D": ["dx = dy sent to the winner of each 2x2 window (a tie: the first), 0 elsewhere"],
    "Conv2D": ["dW[kh,kw,c,f] = sum_{n,i,j} x_pad[n,i+kh,j+kw,c] dy[n,i,j,f]: x correlated with dy",
               "db[f] = sum_{n,i,j} dy[n,i,j,f];  dx = full convolution of dy, flipped kernel"],
}


def cmp(name, mine, oracle):
    """Print one comparison line of a computed gradient with an oracle's, and return
    (exact, approximate, maxdiff)."""
    mine, oracle = np.asarray(mine), np.asarray(oracle)
    if mine.shape != oracle.shape:
        exact, approximate, maxdiff = False, False, np.inf
    else:
        exact = bool(np.array_equal(mine, oracle))
        approximate = bool(np.allclose(mine, oracle, rtol=RTOL, atol=ATOL))
        maxdiff = float(np.abs(mine.astype(np.float64) - oracle).max())
    print(f"  {name:<26} {str(mine.shape):<14} | exact: {str(exact):<5} | "
          f"approximate: {str(approximate):<5} | maxdiff: {maxdiff:.1e}")
    return exact, approximate, maxdiff


# -- the net ------------------------------------------------------------------------------------
def build_net(rng):
    """The five layers, in float32, as minicnn trains them.

    MaxPool2D comes before ReLU: the same outputs as ReLU then MaxPool2D (max and ReLU
    commute), and no ties. After a ReLU, a window of four zeros has no single winner:
    nudging one of them up by h makes it the max, nudging it down does not, so central
    differences give dy / 2 to all four, while backward (by its convention) gives dy to
    the first. That is a kink of the function, not a bug in either: numerical checks
    must stay away from kinks."""
    return [Conv2D(C, FILTERS, kernel_size=3, padding="same", rng=rng),
            MaxPool2D(2),
            ReLU(),
            Flatten(),
            Dense(FILTERS * (H // 2) * (W // 2), CLASSES, rng=rng)]


def loss_from(layers, i, a, labels):
    """The loss as a function of a, the input of layers[i]: layers i.. forward, then the loss."""
    for layer in layers[i:]:
        a = layer.forward(a, training=True)
    return softmax_cross_entropy(a, labels)[0]


def numerical(layers64, i, a64, labels, t):
    """dL/dt by central differences, where t is a64 (the float64 input of layers[i]) or a
    parameter of layers64[i]; run on the reference backend, which only follows the formulas."""
    with minicnn.use_backend("reference"):
        return numerical_gradient(lambda: loss_from(layers64, i, a64, labels), t, STEP)


def walk_through_backprop():
    """Forward one batch, then backward layer by layer, printing shapes, formulas, cmp lines."""
    # -- data: a seeded random batch (the gradients do not care where the pixels came from) ---
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((N, H, W, C)).astype(np.float32)        # (N, H, W, C)
    labels = rng.integers(0, CLASSES, size=N)                        # (N,)

    # -- the net, and a float64 twin with the very same weights, for the numerical oracle -----
    layers = build_net(rng)
    layers64 = [copy.deepcopy(layer).to(np.float64) for layer in layers]

    # -- forward, on the fast backend (the default) -------------------------------------------
    print("forward (fast backend):")
    acts = [x]                             # acts[i]: the input of layers[i]; acts[-1]: the logits
    for layer in layers:
        acts.append(layer.forward(acts[-1], training=True))
        print(f"  {layer!r:<46} {str(acts[-2].shape):<14} -> {acts[-1].shape}")
    loss, dlogits = softmax_cross_entropy(acts[-1], labels)
    print(f"  {'softmax cross-entropy':<46} {str(acts[-1].shape):<14} -> loss {loss:.4f} "
          f"(uniform guess: ln {CLASSES} = {np.log(CLASSES):.4f})")
    acts64 = [a.astype(np.float64) for a in acts]       # the same point, for the float64 oracle

    # -- backward, from the loss down; every gradient against both oracles ---------------------
    print("\nbackward, last layer first: each gradient of the fast backend vs numerical and "
          "vs reference")
    print("\nloss      dlogits = (softmax(logits) - onehot(labels)) / N   (N, K)")
    print("          (the loss is the same NumPy code on both backends: no reference line)")
    cmp("dlogits vs numerical", dlogits,
        numerical(layers64, len(layers), acts64[-1], labels, acts64[-1]))

    dy = dlogits
    for i in reversed(range(len(layers))):
        layer, kind = layers[i], type(layers[i]).__name__
        dx = layer.backward(dy)                                       # fast backend
        grads = {key: g.copy() for key, g in layer.grads.items()}     # its dL/dW, dL/db
        with minicnn.use_backend("reference"):                        # same x, same dy
            layer.forward(acts[i], training=True)
            dx_reference = layer.backward(dy)
        paths = layer_paths(layer, acts[i].shape)   # the code each pass runs on the fast backend
        passes = ("forward", "dx", "dW") if layer.params else ("forward", "dx")
        print(f"\n{kind:<9} dy {dy.shape} -> dx {dx.shape}   fast backend: "
              + ", ".join(f"{p} {paths[p]}" for p in passes))
        for line in FORMULAS[kind]:
            print(f"          {line}")
        for key in layer.params:              # perturb the parameter itself, in the float64 twin
            cmp(f"{kind}.d{key} vs numerical", grads[key],
                numerical(layers64, i, acts64[i], labels, layers64[i].params[key]))
            cmp(f"{kind}.d{key} vs reference", grads[key], layer.grads[key])
        cmp(f"{kind}.dx vs numerical", dx, numerical(layers64, i, acts64[i], labels, acts64[i]))
        cmp(f"{kind}.dx vs reference", dx, dx_reference)
        dy = dx                         # the chain rule: this layer's dx is the dy of the one below


# -- your own layer -----------------------------------------------------------------------------
def sigmoid(x):
    """1 / (1 + exp(-x)), written with tanh: the same value, and no overflow for x << 0."""
    return 0.5 * (1 + np.tanh(0.5 * x))


class Swish(Layer):
    """Swish (also called SiLU): y = x * s, with s = sigmoid(x).

    Backward, by the product rule and ds/dx = s (1 - s):
        dy/dx = s + x * s * (1 - s),   so   dx = dy * (s + x * s * (1 - s))
    Any input shape; forward keeps x for backward; no parameters.
    """

    cached = ("x",)

    def forward(self, x, training=False):
        self.x = x
        return x * sigmoid(x)

    def backward(self, dy):
        s = sigmoid(self.x)
        return dy * (s + self.x * s * (1 - s))


class SwishWithoutProductRule(Swish):
    """A classic slip: differentiating x * s as if s did not depend on x (no product rule)."""

    def backward(self, dy):
        return dy * sigmoid(self.x)


def check_your_own_layer():
    print("\nyour own layer: Swish, y = x * s, s = sigmoid(x); dx = dy * (s + x s (1 - s))")
    x64 = np.random.default_rng(SEED).standard_normal((N, H, W, C))    # float64 for the check
    for layer in (Swish(), SwishWithoutProductRule()):
        error = check_layer(layer, x64)["x"]           # relative error of dx vs central differences
        verdict = "PASS" if error < PASS_BELOW else "FAIL"
        print(f"  check_layer({type(layer).__name__}()): relative error of dx {error:.1e}  "
              f"{verdict}")


if __name__ == "__main__":
    walk_through_backprop()
    check_your_own_layer()
