"""Forward and backward time of EVERY minicnn layer type on a CIFAR-sized batch.

    python benchmarks/bench_every_layer.py [--batch 128] [--reps 7]

(bench_layers.py covers the conv shapes against PyTorch; this one covers the rest:
activations, pooling, BatchNorm, Dropout, Dense, Flatten and the loss.) Input is
float32 NHWC (N, 32, 32, 32) for image layers, i.e. the activations after the
first conv of the simple net; throughput is in input elements per second.
Median of --reps after one warm-up; prints a Markdown table.
"""
import argparse
import os
import sys

import numpy as np

import minicnn as mc

mc.tune_process()
from minicnn.nn import softmax_cross_entropy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_augment import median_seconds as timed  # noqa: E402  (one timer for both scripts)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--reps", type=int, default=7)
    a = p.parse_args()
    N, rng = a.batch, np.random.default_rng(0)
    img = rng.standard_normal((N, 32, 32, 32)).astype(np.float32)
    cases = [
        ("Conv2D 32->32 3x3", mc.Conv2D(32, 32, 3), img, True),
        ("ReLU", mc.ReLU(), img, True), ("LeakyReLU", mc.LeakyReLU(0.1), img, True),
        ("GELU exact", mc.GELU(), img, True), ("GELU tanh", mc.GELU(approximate=True), img, True),
        ("MaxPool2D 2", mc.MaxPool2D(2), img, True), ("MaxPool2D 3/2", mc.MaxPool2D(3, 2), img, True),
        ("AvgPool2D 2", mc.AvgPool2D(2), img, True),
        ("GlobalAvgPool2D", mc.GlobalAvgPool2D(), img, True),
        ("GlobalMaxPool2D", mc.GlobalMaxPool2D(), img, True),
        ("BatchNorm2D (train)", mc.BatchNorm2D(32), img, True),
        ("BatchNorm2D (eval)", mc.BatchNorm2D(32), img, False),
        ("Dropout 0.5", mc.Dropout(0.5), img, True), ("Flatten", mc.Flatten(), img, True),
        ("Dense 4096->512", mc.Dense(4096, 512), img[:, :8, :16, :].reshape(N, -1).copy(), True),
    ]
    print(f"batch {N}, float32, median of {a.reps}\n")
    print("| layer | input | forward ms | backward ms | forward Melem/s | backward Melem/s |")
    print("|---|---|---|---|---|---|")
    for name, layer, x, training in cases:
        y = layer.forward(x, training)
        dy = np.ones_like(y)
        f = timed(lambda: layer.forward(x, training), a.reps)
        layer.forward(x, training)
        b = timed(lambda: layer.backward(dy), a.reps)
        print(f"| {name} | {x.shape} | {f * 1e3:.2f} | {b * 1e3:.2f} | {x.size / f / 1e6:,.0f} | "
              f"{x.size / b / 1e6:,.0f} |")
    z, y = rng.standard_normal((N, 10)).astype(np.float32), rng.integers(0, 10, N)
    t = timed(lambda: softmax_cross_entropy(z, y, 0.2), a.reps)
    print(f"| softmax cross-entropy (loss + dlogits) | {z.shape} | {t * 1e3:.3f} | (included) | "
          f"{z.size / t / 1e6:,.0f} | |")


if __name__ == "__main__":
    main()
