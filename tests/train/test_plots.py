"""Tests for minicnn.train.plots: each function writes a readable PNG of the expected size."""

import numpy as np
import pytest
from matplotlib.image import imread

from minicnn.train.plots import plot_confusion_matrix, plot_history, plot_predictions

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NAMES = ["airplane", "automobile", "bird", "cat", "deer",
         "dog", "frog", "horse", "ship", "truck"]


def check_png(path, width, height):
    """Assert `path` is a PNG of width x height pixels that matplotlib can read."""
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    img = imread(path)
    assert img.shape[:2] == (height, width)
    assert img.std() > 0.01  # something was drawn, not a blank canvas


def test_plot_history_with_validation(tmp_path):
    history = {"epoch": [1, 2, 3], "train_loss": [2.0, 1.5, 1.2], "train_acc": [0.3, 0.5, 0.6],
               "val_loss": [1.9, 1.6, 1.4], "val_acc": [0.35, 0.45, 0.55]}
    path = tmp_path / "history.png"
    assert plot_history(history, path) == path
    check_png(path, 1000, 400)


@pytest.mark.parametrize("val", [None, []])
def test_plot_history_without_validation(tmp_path, val):
    history = {"epoch": [1, 2], "train_loss": [2.0, 1.5], "train_acc": [0.3, 0.5]}
    if val is not None:
        history.update(val_loss=val, val_acc=val)
    path = plot_history(history, tmp_path / "sub" / "history.png")
    check_png(path, 1000, 400)


def test_plot_history_bad_input(tmp_path):
    with pytest.raises(KeyError, match="train_loss"):
        plot_history({"epoch": [1]}, tmp_path / "h.png")
    with pytest.raises(ValueError, match="val_loss has 1 values"):
        plot_history({"epoch": [1, 2], "train_loss": [1, 2], "train_acc": [0, 1],
                      "val_loss": [1], "val_acc": [0, 1]}, tmp_path / "h.png")


@pytest.mark.parametrize("normalize", [True, False])
def test_plot_confusion_matrix(tmp_path, normalize):
    rng = np.random.default_rng(0)
    cm = rng.integers(0, 50, size=(10, 10)) + np.diag(np.full(10, 500))
    cm[3] = 0  # a class with no samples must not divide by zero
    path = plot_confusion_matrix(cm, NAMES, tmp_path / "cm.png", normalize=normalize)
    check_png(path, 900, 800)
    with pytest.raises(ValueError, match=r"\(10, 10\).*got shape \(3, 3\)"):
        plot_confusion_matrix(np.eye(3), NAMES, tmp_path / "cm.png")


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_plot_predictions(tmp_path, dtype):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(30, 32, 32, 3)).astype(np.uint8)
    if dtype == np.float32:
        images = images.astype(np.float32) / 255
    y_true = rng.integers(0, 10, size=30)
    y_pred = np.where(rng.random(30) < 0.7, y_true, (y_true + 1) % 10)
    path = plot_predictions(images, y_true, y_pred, NAMES, tmp_path / "pred.png")
    check_png(path, 800, 900)  # 25 images -> 5 x 5 grid of 1.6 x 1.8 inch cells
    path = plot_predictions(images, y_true, y_pred, NAMES, tmp_path / "pred6.png", n=6)
    check_png(path, 480, 360)  # 6 images -> 3 columns x 2 rows


def test_plot_predictions_bad_shape(tmp_path):
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\).*got shape \(4, 3, 32, 32\)"):
        plot_predictions(np.zeros((4, 3, 32, 32)), [0] * 4, [0] * 4, NAMES, tmp_path / "p.png")
