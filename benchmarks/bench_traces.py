"""Cost of the training-time traces (minicnn/train/traces.py) on airbench94.

    python benchmarks/bench_traces.py [--batch 1024] [--every 50] [--rounds 5]
                                      [--widths 64 256 256] [--histogram-reps 2]

Runs blocks of --every training steps through Trainer.train_epoch (the code a real run
uses), with tracing off and with tracing every --every steps, alternating (the order
swaps each round, so both see the same machine load). A traced block holds exactly one
traced step, as every stretch of --every steps of a real run does. Prints the median
block time of each, the overhead (on - off) / off, the extra seconds of one traced
step, and the overhead that extra implies at other intervals. Then it times single
steps with and without histograms (taken at two steps of a run by default) and prints
what they add to a fast94_sgd run (480 steps).

The batches are random standardised images, reused every step (the time of a step does
not depend on the pixel values), without augmentation: the overhead is relative to the
bare training steps, so it slightly over-states the share of a real run's time.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import minicnn  # noqa: E402

minicnn.tune_process()   # the settings training uses (minicnn/fast/process.py)

import numpy as np  # noqa: E402

from minicnn.train import Trainer  # noqa: E402
from minicnn.train.traces import DEFAULT_TRACE_EVERY, TraceRecorder  # noqa: E402
from minicnn.zoo import (airbench, airbench_lookahead, airbench_optimizer,  # noqa: E402
                         airbench_schedule)

FAST94_STEPS = 480           # 10 epochs of 48 steps of 1024 images


class RepeatedBatch:
    """A loader that yields the same (x, y) batch ``steps`` times (one "epoch")."""

    def __init__(self, x, y, steps):
        self.x, self.batch, self.steps = x, y, steps
        self.y = np.zeros(steps * len(y), np.int8)      # Trainer reads len(loader.y) only

    def __iter__(self):
        for _ in range(self.steps):
            yield self.x, self.batch


def timed_block(trainer, loader, steps, tracer):
    """Seconds for ``steps`` training steps starting at a multiple of ``steps``."""
    loader.steps = steps
    trainer.tracer = tracer
    trainer.step = -(-trainer.step // steps) * steps         # align: one traced step per block
    start = time.perf_counter()
    trainer.train_epoch(1)
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--every", type=int, default=DEFAULT_TRACE_EVERY)
    p.add_argument("--rounds", type=int, default=5, help="off/on block pairs (median taken)")
    p.add_argument("--widths", type=int, nargs=3, default=[64, 256, 256])
    p.add_argument("--histogram-reps", type=int, default=2)
    args = p.parse_args()

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 32, 32, 3)).astype(np.float32)   # (N, 32, 32, 3)
    y = rng.integers(0, 10, args.batch)
    model = airbench(tuple(args.widths), rng=0, whiten_images=x)
    loader = RepeatedBatch(x, y, args.every)
    total = 10 ** 6
    lookahead, decay = airbench_lookahead(model, total)
    trainer = Trainer(model, airbench_optimizer(model, args.batch), loader,
                      airbench_schedule(total), total, label_smoothing=0.2, lookahead=lookahead,
                      lookahead_decay=decay, progress=False)
    tracer = TraceRecorder(model, every=args.every, histogram_steps=())

    print(f"airbench{tuple(args.widths)}, batch {args.batch}, tracing every {args.every} steps, "
          f"{args.rounds} rounds, load average {os.getloadavg()[0]:.1f}", flush=True)
    # warm-up: numba compiles, caches fill, and the unfused paths a traced step runs
    timed_block(trainer, loader, 2, None)
    timed_block(trainer, loader, 1, TraceRecorder(model, every=1, histogram_steps=()))
    off, on = [], []
    for r in range(args.rounds):
        for mode in (("off", "on") if r % 2 == 0 else ("on", "off")):
            seconds = timed_block(trainer, loader, args.every, tracer if mode == "on" else None)
            (on if mode == "on" else off).append(seconds)
            print(f"  round {r + 1} {mode:3s} {seconds:8.2f} s", flush=True)
    t_off, t_on = float(np.median(off)), float(np.median(on))
    step = t_off / args.every
    extra = t_on - t_off
    print(f"median block of {args.every} steps: off {t_off:.2f} s, on {t_on:.2f} s "
          f"-> overhead {100 * extra / t_off:+.2f}% (one step {step:.3f} s, "
          f"a traced step +{extra:.3f} s)")
    print("implied overhead at other intervals: " + ", ".join(
        f"every {k}: {100 * extra / (k * step):.2f}%" for k in (10, 25, 50, 100)))

    if args.histogram_reps > 0:
        plain, with_hist = [], []
        for _ in range(args.histogram_reps):
            plain.append(timed_block(trainer, loader, 1, None))
            hist_tracer = TraceRecorder(model, every=10 ** 9, histogram_steps=(trainer.step,))
            with_hist.append(timed_block(trainer, loader, 1, hist_tracer))
        hist_extra = float(np.median(with_hist) - np.median(plain))
        print(f"a traced step with histograms: +{hist_extra:.3f} s over a plain step; two of them "
              f"add {100 * 2 * hist_extra / (FAST94_STEPS * step):.2f}% to {FAST94_STEPS} steps")


if __name__ == "__main__":
    main()
