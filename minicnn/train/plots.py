"""PNG plots of training curves, confusion matrices and predictions.

Figures are drawn with matplotlib's object API (`Figure` + the Agg canvas),
never pyplot, so no display is needed and no global figure state is left
behind. Every function writes a PNG to `path` and returns `path`.
"""

import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _save(fig, path, dpi=100):
    """Write `fig` to `path` as PNG (creating the folder) and return `path`."""
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=dpi)
    return path


def plot_history(history, path):
    """Loss (left) and accuracy (right) per epoch, for train and validation.

    history: dict of equal-length lists, keys "epoch", "train_loss",
    "train_acc" and optionally "val_loss", "val_acc" (missing or empty when
    there is no validation split; those curves are then left out).
    """
    for key in ("train_loss", "train_acc"):
        if key not in history:
            raise KeyError(f"plot_history: history needs key {key!r}, got keys {sorted(history)}")
    n = len(history["train_loss"])
    epochs = list(history.get("epoch") or range(1, n + 1))
    fig = Figure(figsize=(10, 4), layout="constrained")
    for ax, metric, label in zip(fig.subplots(1, 2), ("loss", "acc"), ("loss", "accuracy")):
        for split, style in (("train", "o-"), ("val", "s--")):
            values = history.get(f"{split}_{metric}") or []
            if len(values) == 0:
                continue
            if len(values) != len(epochs):
                raise ValueError(f"plot_history: {split}_{metric} has {len(values)} values, "
                                 f"expected one per epoch ({len(epochs)})")
            ax.plot(epochs, values, style, markersize=3, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(label)
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def plot_confusion_matrix(cm, class_names, path, normalize=True):
    """Heatmap of a (K, K) confusion matrix, rows = true, columns = predicted.

    With normalize=True each row is divided by its total and the cells show
    percentages of that true class; otherwise the cells show counts.
    """
    cm = np.asarray(cm, dtype=np.float64)
    K = len(class_names)
    if cm.shape != (K, K):
        raise ValueError(f"plot_confusion_matrix: cm must be ({K}, {K}) for {K} class names, "
                         f"got shape {cm.shape}")
    if normalize:
        totals = cm.sum(axis=1, keepdims=True)
        values = np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0) * 100
        text, vmax = [[f"{v:.0f}" for v in row] for row in values], 100.0
    else:
        values = cm
        text, vmax = [[f"{int(v)}" for v in row] for row in values], max(cm.max(), 1.0)

    size = max(5.0, 0.6 * K + 2)
    fig = Figure(figsize=(size + 1, size), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(values, cmap="Blues", vmin=0, vmax=vmax)
    fig.colorbar(im, ax=ax, label="% of true class" if normalize else "count")
    for i in range(K):
        for j in range(K):
            dark = values[i, j] > 0.6 * vmax
            ax.text(j, i, text[i][j], ha="center", va="center", fontsize=8,
                    color="white" if dark else "black")
    ax.set_xticks(range(K), class_names, rotation=45, ha="right")
    ax.set_yticks(range(K), class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("confusion matrix" + (" (% of each true class)" if normalize else " (counts)"))
    return _save(fig, path)


def plot_predictions(images, y_true, y_pred, class_names, path, n=25):
    """Grid of the first n images titled with true and predicted label; wrong in red.

    images: (N, H, W, 3) uint8 in [0, 255], or float in [0, 1] (NHWC).
    y_true, y_pred: (N,) integer labels.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"plot_predictions: images must be NHWC (N, H, W, 3), "
                         f"got shape {images.shape}")
    if not len(images) == len(y_true) == len(y_pred):
        raise ValueError(f"plot_predictions: images, y_true, y_pred must have the same length, "
                         f"got {len(images)}, {len(y_true)}, {len(y_pred)}")
    if images.dtype != np.uint8:
        images = np.clip(images, 0.0, 1.0)
    n = min(n, len(images))
    if n < 1:
        raise ValueError(f"plot_predictions: need at least 1 image, got n={n}")
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    fig = Figure(figsize=(1.6 * cols, 1.8 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i >= n:
            continue
        t, p = int(y_true[i]), int(y_pred[i])
        ax.imshow(images[i], interpolation="nearest")
        ax.set_title(f"true: {class_names[t]}\npred: {class_names[p]}", fontsize=8,
                     color="black" if t == p else "red")
    fig.suptitle("true and predicted labels (wrong predictions in red)", fontsize=10)
    return _save(fig, path)
