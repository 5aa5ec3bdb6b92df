"""What Sequential's fused steps are worth: the same network with and without fusion.

    python benchmarks/bench_fusion.py [--nets airbench simple] [--batch 128 1000]
                                      [--reps 7]

Builds each network twice, ``Sequential(layers)`` (Conv2D + ReLU, Conv2D [+ ReLU] + 2x2
MaxPool2D and BatchNorm + GELU fused) and ``Sequential(copies of the layers, fuse=False)``, and times a training
step (forward, backward of a constant gradient) and an inference pass
(``predict(x, batch_size=N)``) of both, taking turns within each repetition (the one
going first alternates), median
over --reps after a warm-up, 2 threads, random images. Prints the medians and the
speed-up of fusion (> 1: fused is faster); the numbers of both are the same
(tests/nn/test_sequential.py).
"""
import argparse
import copy
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import minicnn  # noqa: E402

minicnn.tune_process()   # the settings training uses (minicnn/fast/process.py)
from minicnn import zoo  # noqa: E402
from minicnn.nn import Sequential  # noqa: E402


def train_step(model, x):
    y = model.forward(x, training=True)
    model.backward(np.full_like(y, 1.0 / len(x)))


def infer(model, x):
    model.predict(x, batch_size=len(x))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nets", nargs="+", default=["airbench", "simple"], choices=["airbench", "simple"])
    ap.add_argument("--batch", nargs="+", type=int, default=[128, 1000])
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args(argv)
    if min(args.batch) < 1 or args.reps < 1:
        ap.error(f"--batch and --reps must be >= 1, got {args.batch} and {args.reps}")
    print(f"# wall ms, median of {args.reps} after a warm-up, threads "
          f"{minicnn.fast.parallel.num_threads()}")
    print(f"{'net':9s} {'batch':>5s} {'pass':6s} {'fused':>9s} {'unfused':>9s} {'speed-up':>9s}  layers fused")
    for net in args.nets:
        fused = getattr(zoo, net)()
        unfused = Sequential(copy.deepcopy(fused.layers), fuse=False)
        fused_layers = sum(len(step) - 1 for step in fused.steps)
        for batch in args.batch:
            x = np.random.default_rng(0).standard_normal((batch, 32, 32, 3)).astype(np.float32)
            for label, run in (("train", train_step), ("infer", infer)):
                times = {"fused": [], "unfused": []}
                order = [("fused", fused), ("unfused", unfused)]
                for rep in range(args.reps + 1):             # the first round warms up
                    for name, model in order[::1 if rep % 2 else -1]:   # who goes first alternates
                        start = time.perf_counter()
                        run(model, x)
                        if rep:
                            times[name].append(time.perf_counter() - start)
                a, b = np.median(times["fused"]), np.median(times["unfused"])
                print(f"{net:9s} {batch:5d} {label:6s} {a * 1e3:9.1f} {b * 1e3:9.1f} "
                      f"{b / a:9.3f}  {fused_layers}", flush=True)


if __name__ == "__main__":
    main()
