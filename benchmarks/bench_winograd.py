"""The measurement behind Conv2D's Winograd rule: F(4x4, 3x3) against the path taken otherwise.

    python benchmarks/bench_winograd.py [--batch 128] [--reps 5] [--shapes C,F,H ...]

For 3x3 shapes of the bundled nets (and a few around them), times the forward pass and
dx of Conv2D(C, F, 3) (F(4x4, 3x3)) and dW (F(3x3, 4x4)) with the Winograd paths
allowed and forbidden, interleaved, median of --reps after a warm-up, wall clock on all
threads (the rule is about the 2 threads a network runs on: an earlier Winograd kernel
won on one core and lost on two). Prints ms and the speed-up (> 1: Winograd is faster).
The shapes run whatever the rule says; dx rows only where the product's output (C)
fills at least 3/4 of its 32-wide tiles (rules.winograd_width_fits: 24 runs as 32), dW
rows where C % 4 == 0 and F % 16 == 0, which the kernels need.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import minicnn  # noqa: E402

minicnn.tune_process()   # the settings training uses (minicnn/fast/process.py)
from bench_common import rule_bench_args, set_up_pass, time_pass  # noqa: E402
from minicnn.fast.rules import winograd_width_fits  # noqa: E402
from minicnn.nn import Conv2D  # noqa: E402

# (C, F, H): the simple net's 3x3 convs (dx of 32->64 is the 64->32 product), airbench94's,
# 128->128, and the two that lose (3 input channels; 3x3 maps)
SHAPES = [(32, 32, 32), (32, 64, 16), (64, 64, 16), (24, 64, 31), (64, 64, 15), (64, 256, 15),
          (256, 64, 15), (256, 256, 7), (128, 128, 8), (3, 32, 32), (256, 256, 3)]


def main(argv=None):
    args = rule_bench_args(__doc__, shapes=True, argv=argv)
    rng = np.random.default_rng(0)
    print(f"# batch {args.batch}, wall ms (median of {args.reps}), threads "
          f"{minicnn.fast.parallel.num_threads()}")
    print(f"{'C->F @HxW':16s} {'op':4s} {'winograd':>9s} {'other':>9s} {'speed-up':>9s}")
    for C, F, H in args.shapes or SHAPES:
        layer = Conv2D(C, F, 3, padding="same", bias=False, rng=0)
        x = rng.standard_normal((args.batch, H, H, C)).astype(np.float32)
        dy = rng.standard_normal((args.batch, H, H, F)).astype(np.float32)
        ops = ["fwd"] + ["dx"] * winograd_width_fits(C) + ["dW"] * (C % 4 == 0 and F % 16 == 0)
        for op in ops:
            set_up_pass(layer, op)
            times = {True: [], False: []}
            for rep in range(args.reps + 1):                   # rep 0: warm-up
                for allow in (True, False):
                    layer.allow_winograd = allow
                    layer.forced_paths = {"forward": "winograd", "dx": "winograd",
                                          "dW": "winograd"} if allow else {}
                    seconds = time_pass(layer, op, x, dy)
                    if rep:
                        times[allow].append(seconds)
            layer.forced_paths = {}
            w, o = np.median(times[True]), np.median(times[False])
            print(f"{C:>4d}->{F:<4d} @{H:>2d}x{H:<2d} {op:4s} {w * 1e3:9.1f} {o * 1e3:9.1f} "
                  f"{o / w:9.2f}", flush=True)


if __name__ == "__main__":
    main()
