"""Classify image files with a trained run: ``minicnn-predict --run RUN_DIR img.png ...``.

Each image (PNG or JPEG, any size) is converted to RGB, resized to 32x32,
standardised with the training run's channel statistics, and classified
(averaging the image and its mirror). Prints the top-3 classes with probabilities.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .fast.process import tune_process
from .train.evaluate import predict_logits
from .nn.loss import softmax
from .train.metrics import topk
from .zoo import airbench, simple


def load_run(run_dir):
    """Rebuild the model of a run directory written by examples/train_cifar10.py."""
    run_dir = Path(run_dir)
    config_path, weights = run_dir / "config.json", run_dir / "model.npz"
    for path in (config_path, weights):
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: expected a finished run directory "
                                    f"(config.json and model.npz) from examples/train_cifar10.py")
    config = json.loads(config_path.read_text())
    if config["model"] == "airbench":
        model = airbench(tuple(config["widths"]))
    else:
        model = simple()
    model.load(weights)
    return model, config


def read_images(paths, size=32):
    """(N, size, size, 3) uint8 from image files."""
    from PIL import Image, UnidentifiedImageError
    out = []
    for p in paths:
        try:
            with Image.open(p) as im:
                im = im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
                out.append(np.asarray(im, dtype=np.uint8))
        except FileNotFoundError:
            raise FileNotFoundError(f"image not found: {p}") from None
        except (UnidentifiedImageError, OSError) as e:
            raise ValueError(f"{p}: not a readable PNG/JPEG image ({e})") from None
    return np.stack(out)


def classify(model, config, images, k=3):
    """Top-k (class index, probability) per image for uint8 images (N, 32, 32, 3)."""
    mean = np.asarray(config["mean"], np.float32)
    std = np.asarray(config["std"], np.float32)
    x = (images.astype(np.float32) / 255 - mean) / std
    probs = softmax(predict_logits(model, x, tta=1))
    return topk(probs, k)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("images", nargs="+", help="PNG or JPEG files")
    p.add_argument("--run", required=True, help="run directory written by examples/train_cifar10.py")
    p.add_argument("--top", type=int, default=3)
    args = p.parse_args(argv)
    tune_process()
    try:
        model, config = load_run(args.run)
        idx, probs = classify(model, config, read_images(args.images), args.top)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    names = config["class_names"]
    lines = []
    for path, row_i, row_p in zip(args.images, idx, probs):
        lines.append(f"{path}: " + ", ".join(f"{names[i]} {q:.1%}" for i, q in zip(row_i, row_p)))
    print("\n".join(lines))
    return lines


def cli():
    """The ``minicnn-predict`` command: exit status 0 on success (``main`` returns the
    printed lines, which a console script would otherwise take for an error)."""
    main()
    return 0


if __name__ == "__main__":
    sys.exit(cli())
