"""Pictures of what a trained network computes: filters, feature maps, saliency,
Grad-CAM, its worst mistakes and per-class scores.

Two kinds of function live here:

* **computations** on a model (plain arrays in, plain arrays out): ``layer_outputs``,
  ``saliency``, ``grad_cam``, ``worst_misclassified``. They use the model's hooks
  (``Sequential.forward_hooks`` / ``backward_hooks``) and ``input_gradient``, so they
  work on any ``Sequential`` and on either backend;
* **plots** (matplotlib's object API and the Agg canvas, as in plots.py): each writes a
  PNG to ``path`` and returns ``path``.

Images are NHWC. ``x`` is the standardised float32 input the network takes,
(N, 32, 32, 3); ``images`` are the same pictures as uint8 (N, 32, 32, 3) for display.

    from minicnn.train import pictures
    maps = pictures.saliency(model, x[:4], classes=pred[:4])      # (4, 32, 32, 3)
    pictures.plot_saliency(images[:4], maps, titles, "saliency.png")
"""
import numpy as np
from matplotlib.figure import Figure

from ..nn.conv import Conv2D
from .plots import _save


# -- computations ------------------------------------------------------------------------
def layer_outputs(model, x):
    """The output of every layer for the input x, in eval mode.

    x: (N, H, W, C) float. Returns a list with one entry per layer, ``outputs[i]`` =
    the output of layer i: (N, h, w, c) for image layers, (N, D) after Flatten.
    Uses a forward hook, which runs every layer on its own (no fused pairs, same
    numbers). Memory: a copy of every activation of the batch, so keep N small
    (one image of airbench94 is about 1.6 MB of float32 activations).
    """
    outputs = []

    def keep(i, layer, y):
        outputs.append(np.array(y, copy=True))

    model.forward_hooks.append(keep)
    try:
        model.forward(np.ascontiguousarray(x), training=False)
    finally:
        model.forward_hooks.remove(keep)
    return outputs


def _one_hot(classes, n, K, dtype):
    """(n, K) array with 1 at (row, classes[row]): dL/dlogits when L = that class's score."""
    classes = np.broadcast_to(np.asarray(classes, dtype=np.int64), (n,))
    if classes.min() < 0 or classes.max() >= K:
        raise ValueError(f"classes must be in [0, {K - 1}], got range "
                         f"[{classes.min()}, {classes.max()}]")
    onehot = np.zeros((n, K), dtype=dtype)
    onehot[np.arange(n), classes] = 1
    return onehot


def saliency(model, x, classes):
    """|d score / d x|: how much each input value moves the chosen class's score.

    For image n and class k = classes[n], the score is the logit s_k(x_n) (before
    the softmax, so the other classes do not enter). One backward pass with
    dL/dlogits = one-hot(k) gives, by the chain rule through every layer,
        dx[n, h, w, c] = d s_k(x_n) / d x[n, h, w, c]
    and the saliency map is its absolute value (Simonyan et al., 2014). Eval mode:
    BatchNorm is a fixed affine map, so each image's map depends on that image alone.

    x: (N, H, W, C) float32 (or float64 for gradient checks), standardised input.
    classes: (N,) int, or one int for every image.
    Returns (N, H, W, C), the dtype of x. For display take the max over C.
    """
    x = np.ascontiguousarray(x)
    logits = model.forward(x, training=False)                       # (N, K)
    dlogits = _one_hot(classes, len(x), logits.shape[1], logits.dtype)
    return np.abs(model.input_gradient(dlogits))


def last_spatial_layer(model, input_shape=(32, 32, 3)):
    """Index of the last layer whose output is an image with more than one pixel
    (h > 1 or w > 1): where Grad-CAM looks, the last conv block's feature maps."""
    shape, found = tuple(input_shape), None
    for i, layer in enumerate(model.layers):
        shape = layer.output_shape(shape)
        if len(shape) == 3 and shape[0] * shape[1] > 1:
            found = i
    if found is None:
        raise ValueError(f"grad_cam: no layer of the model outputs spatial maps for an input "
                         f"of shape {input_shape}")
    return found


def upsample_bilinear(maps, size):
    """Resize (N, h, w) maps to (N, size[0], size[1]) by bilinear interpolation.

    Pixel centres are aligned (output pixel j samples input position
    (j + 0.5) * h / H - 0.5, clamped to the border), as image libraries do.
    """
    N, h, w = maps.shape
    H, W = size

    def weights(n_in, n_out):
        pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, (pos - lo).astype(maps.dtype)

    r0, r1, fr = weights(h, H)
    c0, c1, fc = weights(w, W)
    rows = maps[:, r0, :] * (1 - fr)[None, :, None] + maps[:, r1, :] * fr[None, :, None]  # (N, H, w)
    return rows[:, :, c0] * (1 - fc) + rows[:, :, c1] * fc                                 # (N, H, W)


def grad_cam(model, x, classes, layer_index=None):
    """Grad-CAM (Selvaraju et al., 2017): where in the image the evidence for a class lies.

    A = output of layer L (default: ``last_spatial_layer``), (N, h, w, C) feature maps;
    s_k = the logit of class k = classes[n]. With one backward pass from
    dL/dlogits = one-hot(k), the backward hook on layer L gives dA = d s_k / d A, and
        weights[n, c] = mean over (h, w) of dA[n, :, :, c]            (N, C)
        cam[n]        = ReLU( sum_c weights[n, c] * A[n, :, :, c] )    (N, h, w)
    upsampled bilinearly to the input's H x W. Non-negative: only the evidence *for*
    class k is kept. Memory: one copy of A and dA.

    x: (N, H, W, C) float, standardised. classes: (N,) int or one int.
    Returns (cam (N, H, W) >= 0 in the dtype of x, L).
    """
    x = np.ascontiguousarray(x)
    L = last_spatial_layer(model, x.shape[1:]) if layer_index is None else layer_index
    if not 0 <= L < len(model.layers):
        raise ValueError(f"grad_cam: layer_index must be in [0, {len(model.layers) - 1}], got {L}")
    seen = {}

    def keep_output(i, layer, y):
        if i == L:
            seen["A"] = np.array(y, copy=True)

    def keep_gradient(i, layer, dy):
        if i == L:
            seen["dA"] = np.array(dy, copy=True)

    model.forward_hooks.append(keep_output)
    model.backward_hooks.append(keep_gradient)
    try:
        logits = model.forward(x, training=False)
        model.backward(_one_hot(classes, len(x), logits.shape[1], logits.dtype))
    finally:
        model.forward_hooks.remove(keep_output)
        model.backward_hooks.remove(keep_gradient)
    A, dA = seen["A"], seen["dA"]
    if A.ndim != 4:
        raise ValueError(f"grad_cam: layer {L} ({model.layers[L]!r}) outputs shape {A.shape}, "
                         f"expected feature maps (N, h, w, C)")
    weights = dA.mean(axis=(1, 2))                                   # (N, C)
    cam = np.maximum(np.einsum("nhwc,nc->nhw", A, weights), 0)       # (N, h, w)
    return upsample_bilinear(cam, x.shape[1:3]).clip(0).astype(x.dtype), L


def worst_misclassified(y_true, probs, n=12):
    """Indices of the n wrong predictions made with the highest confidence.

    y_true: (N,) int labels; probs: (N, K) class probabilities. A prediction is
    argmax(probs[i]); it is wrong when that differs from y_true[i]; the worst are
    those with the largest probs[i, argmax]. Returns (m,) int64, m <= n, worst first.
    """
    probs = np.asarray(probs)
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != np.asarray(y_true))
    order = np.argsort(-probs[wrong, pred[wrong]], kind="stable")
    return wrong[order[:n]].astype(np.int64)


# -- plots -------------------------------------------------------------------------------
def _to_unit(a):
    """Rescale an array to [0, 1] by its own min and max (a constant array -> 0.5)."""
    a = np.asarray(a, dtype=np.float64)
    lo, hi = a.min(), a.max()
    return np.full_like(a, 0.5) if hi - lo < 1e-12 else (a - lo) / (hi - lo)


def _display(images):
    """uint8 images pass through; floats are clipped to [0, 1]."""
    images = np.asarray(images)
    return images if images.dtype == np.uint8 else np.clip(images, 0.0, 1.0)


def _check_images(images, who, n=None):
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{who}: images must be NHWC (N, H, W, 3), got shape {images.shape}")
    if n is not None and len(images) != n:
        raise ValueError(f"{who}: expected {n} images (one per map), got {len(images)}")
    return images


def first_conv(model):
    """(index, layer) of the model's first Conv2D."""
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Conv2D):
            return i, layer
    raise ValueError("first_conv: the model has no Conv2D layer")


def plot_filters(model, path, max_filters=64):
    """The first convolution's filters as a grid of small RGB images.

    W: (KH, KW, C, F); filter f is the KH x KW x C image W[:, :, :, f], shown with
    its own min and max mapped to black and white (a filter's sign and scale are
    arbitrary; its pattern is what it looks for). C = 3 shows colour, other C the
    mean over channels (grey). At most ``max_filters`` filters, drawn as one mosaic
    image: each filter enlarged to 16 x 16 pixels (nearest neighbour), 2-pixel gaps.
    """
    i, conv = first_conv(model)
    W = conv.params["W"]
    KH, KW, C, F = W.shape
    n = min(F, max_filters)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    tile, gap = 16, 2
    mosaic = np.ones((rows * (tile + gap) - gap, cols * (tile + gap) - gap, 3))
    ys, xs = (np.arange(tile) * KH) // tile, (np.arange(tile) * KW) // tile
    for f in range(n):
        w = _to_unit(W[:, :, :, f])                                  # (KH, KW, C)
        w = w if C == 3 else np.repeat(w.mean(axis=2, keepdims=True), 3, axis=2)
        r, c = divmod(f, cols)
        mosaic[r * (tile + gap):r * (tile + gap) + tile,
               c * (tile + gap):c * (tile + gap) + tile] = w[np.ix_(ys, xs)]
    fig = Figure(figsize=(0.45 * cols + 1.0, 0.45 * rows + 0.6), layout="constrained")
    ax = fig.subplots()
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_xticks([(tile + gap) * c + tile / 2 - 0.5 for c in range(cols)], range(cols),
                  fontsize=6)
    ax.set_yticks([(tile + gap) * r + tile / 2 - 0.5 for r in range(rows)],
                  [str(r * cols) for r in range(rows)], fontsize=6)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(f"layer {i} {conv.name}: {n} of {F} filters, {KH}x{KW}x{C}\n"
                 f"(filter = row label + column label)", fontsize=8)
    return _save(fig, path, dpi=120)


def channel_mosaic(maps, channels, tile=32, gap=2, cmap="viridis"):
    """One RGB strip of the first ``channels`` maps (h, w, c), side by side.

    Each map is scaled to [0, 1] by its own min and max, enlarged to tile x tile by
    repeating pixels (nearest neighbour: a 3x3 map stays visibly 3x3), coloured with
    ``cmap``, and separated by ``gap`` white columns. Returns (tile, n * (tile + gap)
    - gap, 3) float in [0, 1], n = min(channels, c).
    """
    from matplotlib import colormaps
    h, w, c = maps.shape
    n = min(channels, c)
    strip = np.ones((tile, n * (tile + gap) - gap, 3))
    rows = (np.arange(tile) * h) // tile                   # nearest source row of each pixel
    cols = (np.arange(tile) * w) // tile
    colour = colormaps[cmap]
    for k in range(n):
        enlarged = _to_unit(maps[:, :, k])[np.ix_(rows, cols)]      # (tile, tile)
        strip[:, k * (tile + gap):k * (tile + gap) + tile] = colour(enlarged)[:, :, :3]
    return strip


def plot_feature_maps(model, image, x, path, channels=8, class_names=None):
    """The feature maps of one image through every layer: one row per layer.

    image: (H, W, 3) uint8 for display; x: (H, W, C) its standardised input.
    Row i shows the first ``channels`` channels of layer i's output (h, w, c), each
    on its own colour scale (``channel_mosaic``); a layer with a vector output (D,)
    shows its first 64 values as bars (the last row is the logits). Uses
    ``layer_outputs``: memory is one copy of every activation of this one image.
    """
    outputs = layer_outputs(model, x[None])
    rows = len(outputs) + 1
    row_height = 0.95
    fig = Figure(figsize=(1.0 * channels + 2.0, row_height * rows + 0.7))
    fig.subplots_adjust(left=0.2, right=0.98, top=1 - 0.7 / fig.get_figheight(), bottom=0.02,
                        hspace=0.25)
    axes = fig.subplots(rows, 1)
    strip_width = channels * 34 - 2                      # channel_mosaic's width for n = channels
    axes[0].imshow(_display(image), interpolation="nearest", extent=(0, 32, 32, 0))
    axes[0].set_xlim(0, strip_width)

    def label(ax, text):
        box = ax.get_position()
        fig.text(0.01, (box.y0 + box.y1) / 2, text, ha="left", va="center", fontsize=7)

    label(axes[0], "input")
    for i, (ax, layer, y) in enumerate(zip(axes[1:], model.layers, outputs)):
        y = y[0]
        label(ax, f"{i} {layer.name}\n{'x'.join(map(str, y.shape))}")
        if y.ndim == 3:
            ax.imshow(channel_mosaic(y, channels), interpolation="nearest")
            ax.set_xlim(-0.5, strip_width - 0.5)
        else:
            values = y[:64]
            ax.bar(np.arange(len(values)), values, color="tab:blue")
            if class_names is not None and len(y) == len(class_names):
                ax.set_xticks(range(len(y)), class_names, fontsize=6)
            ax.tick_params(labelsize=6)
    for ax in axes:
        if ax.images:
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
    fig.suptitle(f"feature maps of one image: the first {channels} channels of each layer, "
                 f"each on its own colour scale", fontsize=9)
    return _save(fig, path, dpi=80)


def plot_saliency(images, maps, titles, path):
    """Each image beside its saliency map, one row per image.

    images: (N, H, W, 3) uint8; maps: (N, H, W, C) from ``saliency``, shown as
    max over C (the largest gradient of any channel at that pixel), scaled per image.
    titles: N strings (e.g. "cat: d score(cat) / dx").
    """
    maps = np.asarray(maps)
    images = _check_images(images, "plot_saliency", len(maps))
    n = len(images)
    fig = Figure(figsize=(4.2, 2.1 * n), layout="constrained")
    axes = np.asarray(fig.subplots(n, 2)).reshape(n, 2)
    for k in range(n):
        axes[k, 0].imshow(_display(images[k]), interpolation="nearest")
        axes[k, 0].set_title(titles[k], fontsize=8)
        axes[k, 1].imshow(_to_unit(maps[k].max(axis=-1)), cmap="hot", interpolation="nearest")
        axes[k, 1].set_title("|d score / d input|", fontsize=8)
        for ax in axes[k]:
            ax.axis("off")
    return _save(fig, path)


def plot_grad_cam(images, cams, titles, path, alpha=0.5):
    """Each image, and the same image with its Grad-CAM map overlaid, one row per image.

    images: (N, H, W, 3) uint8; cams: (N, H, W) >= 0 from ``grad_cam``, each scaled
    to [0, 1] by its maximum and drawn in the "jet" colour map with opacity ``alpha``.
    """
    cams = np.asarray(cams, dtype=np.float64)
    images = _check_images(images, "plot_grad_cam", len(cams))
    n = len(images)
    fig = Figure(figsize=(4.2, 2.1 * n), layout="constrained")
    axes = np.asarray(fig.subplots(n, 2)).reshape(n, 2)
    for k in range(n):
        peak = cams[k].max()
        cam = cams[k] / peak if peak > 0 else cams[k]
        axes[k, 0].imshow(_display(images[k]), interpolation="nearest")
        axes[k, 0].set_title(titles[k], fontsize=8)
        axes[k, 1].imshow(_display(images[k]), interpolation="nearest")
        axes[k, 1].imshow(cam, cmap="jet", alpha=alpha, vmin=0, vmax=1, interpolation="bilinear")
        axes[k, 1].set_title("Grad-CAM" + ("" if peak > 0 else " (all zero)"), fontsize=8)
        for ax in axes[k]:
            ax.axis("off")
    return _save(fig, path)


def plot_misclassified(images, y_true, probs, class_names, path, cols=4):
    """Misclassified images, each titled with its true class and top-3 predictions.

    images: (N, H, W, 3) uint8 (e.g. the test images at ``worst_misclassified``);
    y_true: (N,) int; probs: (N, K) probabilities. Title: "true: cat" and three lines
    "dog 81%" ... in decreasing probability.
    """
    probs = np.asarray(probs)
    images = _check_images(images, "plot_misclassified", len(probs))
    n = len(images)
    if n == 0:
        raise ValueError("plot_misclassified: no images to show")
    cols = min(cols, n)
    rows = int(np.ceil(n / cols))
    fig = Figure(figsize=(2.2 * cols, 2.9 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    top3 = np.argsort(-probs, axis=1, kind="stable")[:, :3]          # (N, 3)
    for k, ax in enumerate(axes):
        ax.axis("off")
        if k >= n:
            continue
        ax.imshow(_display(images[k]), interpolation="nearest")
        t = int(y_true[k])
        ax.set_title(f"true: {class_names[t]}", fontsize=8, color="black")
        text = "\n".join(f"{class_names[j]} {probs[k, j]:.0%}" for j in top3[k])
        ax.text(0.5, -0.04, text, transform=ax.transAxes, ha="center", va="top", fontsize=7,
                color="darkred")
    fig.suptitle("most confident mistakes: true class, then the top-3 predictions", fontsize=9)
    return _save(fig, path)


def plot_class_metrics(per_class, class_names, path):
    """Grouped bars of precision, recall and F1 for every class.

    per_class: dict with lists "precision", "recall", "f1" of K floats in [0, 1]
    (metrics.json's "per_class", or ``classification_report``'s output).
    """
    K = len(class_names)
    for key in ("precision", "recall", "f1"):
        if len(per_class.get(key, ())) != K:
            raise ValueError(f"plot_class_metrics: per_class[{key!r}] must hold {K} values "
                             f"(one per class), got {len(per_class.get(key, ()))}")
    fig = Figure(figsize=(max(6.0, 0.75 * K + 1.5), 3.6), layout="constrained")
    ax = fig.subplots()
    at = np.arange(K)
    for j, (key, colour) in enumerate((("precision", "tab:blue"), ("recall", "tab:orange"),
                                       ("f1", "tab:green"))):
        ax.bar(at + (j - 1) * 0.27, per_class[key], width=0.27, label=key, color=colour)
    ax.set_xticks(at, class_names, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("score")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncols=3, loc="lower right")
    ax.set_title("per-class precision, recall and F1")
    return _save(fig, path)

