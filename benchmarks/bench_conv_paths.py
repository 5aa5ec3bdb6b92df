"""The measurement behind the rule's small-map rows: each Conv2D pass on every path that can run it.

    python benchmarks/bench_conv_paths.py [--batch 128] [--reps 5] [--shapes C,F,H ...]
                                          [--paths shifts taps im2col]

For 3x3 "same" layers on small maps (C->F on H x H), times the forward pass, dx and dW
(each alone: backward with W frozen, or with needs_input_grad off) with the layer's
path forced to each of --paths in turn, the paths taking turns within each
repetition (random order), median of --reps after a warm-up, wall clock on all
threads. Prints ms per path, each other path's time over the first's (> 1: the first
is faster), and the path the rule picks. dx's "im2col" is the flipped-kernel product where
F <= C, else col2im.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import minicnn  # noqa: E402

minicnn.tune_process()   # the settings training uses (minicnn/fast/process.py)
from bench_common import rule_bench_args, set_up_pass, time_pass  # noqa: E402
from minicnn.fast.parallel import num_threads  # noqa: E402
from minicnn.fast.rules import conv_paths  # noqa: E402
from minicnn.nn import Conv2D  # noqa: E402

# airbench94's last conv (256->256 @3x3) and the maps around it
SHAPES = [(256, 256, 3), (128, 128, 3), (64, 64, 3), (256, 256, 4), (256, 256, 5),
          (128, 128, 5), (256, 256, 7)]


def main(argv=None):
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--paths", nargs="+", default=["shifts", "taps", "im2col"],
                       choices=["shifts", "taps", "im2col", "direct", "winograd"])
    known, rest = extra.parse_known_args(argv)
    args = rule_bench_args(__doc__, shapes=True, argv=rest)
    args.paths = known.paths
    if args.batch < 1 or args.reps < 1:
        raise SystemExit(f"--batch and --reps must be >= 1; got --batch {args.batch}, "
                         f"--reps {args.reps}")
    rng = np.random.default_rng(0)
    print(f"# batch {args.batch}, wall ms (median of {args.reps}, paths in random order), "
          f"threads {num_threads()}")
    print(f"{'C->F @HxW':16s} {'pass':5s} " + " ".join(f"{q:>9s}" for q in args.paths)
          + " " + " ".join(f"{q + '/' + args.paths[0]:>14s}" for q in args.paths[1:]) + "  rule")
    for C, F, H in args.shapes or SHAPES:
        layer = Conv2D(C, F, 3, padding="same", bias=False, rng=0)
        x = rng.standard_normal((args.batch, H, H, C)).astype(np.float32)
        dy = rng.standard_normal((args.batch, H, H, F)).astype(np.float32)
        rule = conv_paths(layer, x.shape)
        for op, pass_name in (("fwd", "forward"), ("dx", "dx"), ("dW", "dW")):
            set_up_pass(layer, op)
            times = {q: [] for q in args.paths}
            for rep in range(args.reps + 1):                   # rep 0: warm-up
                for q in rng.permutation(args.paths):
                    forced = "col2im" if (q == "im2col" and op == "dx" and F > C) else q
                    layer.forced_paths = {pass_name: forced}
                    seconds = time_pass(layer, op, x, dy)
                    if rep:
                        times[q].append(seconds)
            layer.forced_paths = {}
            ms = {q: 1e3 * float(np.median(times[q])) for q in args.paths}
            first = ms[args.paths[0]]
            print(f"{C:>4d}->{F:<4d} @{H:>2d}x{H:<2d} {op:5s} "
                  + " ".join(f"{ms[q]:9.2f}" for q in args.paths) + " "
                  + " ".join(f"{ms[q] / first:14.2f}" for q in args.paths[1:])
                  + f"  {rule[pass_name]}", flush=True)


if __name__ == "__main__":
    main()
