"""Where a training step (or an inference pass) spends its time, layer by layer.

    python benchmarks/profile_step.py --net airbench --batch 128 --mode train
    NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/profile_step.py --cpu-clock ...

Times each layer's forward and backward (train) or forward + release (infer), the loss
and the SGD update, as the mean of --reps steps after one warm-up step. --fused times
the steps as training runs them instead (Sequential.steps: Conv2D + ReLU + MaxPool2D,
BatchNorm + GELU as one step each, a ReLU's backward done by the Conv2D after it,
each step's layers let go of after its backward).
--cpu-clock
measures process CPU time instead of wall time: with one thread, that is the work each
layer costs a core, and it stays meaningful on a machine shared with other jobs (wall
time does not). Per-layer wall times with 2 threads include waiting for the other core.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import minicnn  # noqa: E402

minicnn.tune_process()   # the settings training uses (minicnn/fast/process.py)
from minicnn.nn import softmax_cross_entropy  # noqa: E402
from minicnn.optim import SGD  # noqa: E402
from minicnn.zoo import airbench, simple  # noqa: E402


def profile(model, x, labels, mode, reps, clock, fused=False):
    """(fwd, bwd, other, units, out): per unit, mean seconds of its forward and backward;
    other = (loss, update); units: tuples of layer indices, each layer on its own or, with
    ``fused``, Sequential's steps; out: the last forward's output."""
    units = model.steps if fused else [(i,) for i in range(len(model.layers))]
    fwd, bwd, other = np.zeros(len(units)), np.zeros(len(units)), np.zeros(2)
    optimizer = SGD(model.named_parameters(), lr=1e-3)
    for rep in range(reps + 1):
        w = 0.0 if rep == 0 else 1.0 / reps                      # step 0 is the warm-up
        h = x
        for j, unit in enumerate(units):
            first, following = model.step_layers(unit)
            t = clock()
            h = (first.forward_fused(following, h, mode == "train") if following
                 else first.forward(h, mode == "train"))
            if mode == "infer":
                for i in unit:
                    model.layers[i].release()
            fwd[j] += w * (clock() - t)
        if mode == "infer":
            continue
        t = clock()
        _, d = softmax_cross_entropy(h, labels)                  # d: (N, 10)
        other[0] += w * (clock() - t)
        for j in reversed(range(len(units))):
            if d is None:                     # below the first trainable layer
                break
            t = clock()
            d = model.step_backward(j, d) if fused else model.layers[j].backward(d)
            if fused:
                for i in units[j]:
                    model.layers[i].release()
            bwd[j] += w * (clock() - t)
        t = clock()
        optimizer.step()
        other[1] += w * (clock() - t)
    return fwd, bwd, other, units, h


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--net", choices=["airbench", "simple"], default="airbench")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--mode", choices=["train", "infer"], default="train")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--cpu-clock", action="store_true", help="process CPU time, not wall time")
    p.add_argument("--freeze-first", action="store_true",
                   help="freeze the first layer's params (fast94 after its whitening bias stops "
                        "training): backward stops above it")
    p.add_argument("--fused", action="store_true",
                   help="time Sequential's fused steps (as training runs them), not each layer")
    args = p.parse_args(argv)
    model = simple() if args.net == "simple" else airbench()
    if args.freeze_first:
        model.layers[0].frozen.update(model.layers[0].params)
    model.set_input_grads(wanted=False)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 32, 32, 3), dtype=np.float32)   # (N, H, W, C)
    labels = rng.integers(0, 10, args.batch)
    clock = time.process_time if args.cpu_clock else time.perf_counter
    fwd, bwd, other, units, _ = profile(model, x, labels, args.mode, args.reps, clock,
                                        args.fused)
    total = fwd.sum() + bwd.sum() + other.sum()
    conv = sum(fwd[j] + bwd[j] for j, unit in enumerate(units)
               if type(model.layers[unit[0]]).__name__ == "Conv2D")
    print(f"# {args.net}{' (first layer frozen)' if args.freeze_first else ''}, batch {args.batch}, "
          f"{args.mode}, {'fused steps' if args.fused else 'layers unfused'}, "
          f"{'CPU' if args.cpu_clock else 'wall'} ms, mean of {args.reps} after 1 warm-up; "
          f"numba threads {minicnn.fast.parallel.num_threads()}")
    print(f"{'#':>2} {'step' if args.fused else 'layer':46s} {'forward':>8s} {'backward':>8s} "
          f"{'share':>6s}")
    for j, unit in enumerate(units):
        name = ("+".join(type(model.layers[i]).__name__ for i in unit) if args.fused
                else repr(model.layers[unit[0]]))
        share = (fwd[j] + bwd[j]) / total
        print(f"{unit[0]:2d} {name[:46]:46s} {1e3 * fwd[j]:8.2f} {1e3 * bwd[j]:8.2f} "
              f"{100 * share:5.1f}%")
    if args.mode == "train":
        print(f"   loss {1e3 * other[0]:.2f} ms, SGD update {1e3 * other[1]:.2f} ms")
    what = "steps led by a convolution" if args.fused else "convolutions"
    print(f"   total {1e3 * total:.1f} ms; {what} {100 * conv / total:.0f}%")


if __name__ == "__main__":
    main()
