"""The measurement behind forward_tiles_per_block: Winograd forward time against block size.

    python benchmarks/bench_winograd_blocks.py [--batch 128] [--reps 5] [--shapes C,F,H ...]
                                               [--tiles 32 48 64 96]

For 3x3 shapes of the bundled nets (and the dx products of the widening ones: 256->64
is the dx of 64->256), times winograd_forward with every block size of --tiles, the
sizes taking turns within each repetition; prints the median time at the first size
and each other size's speed-up over it (> 1: faster), on all threads. Larger blocks
read U (36 x C x F floats) fewer times per batch, but their V and M (36 x tiles x
(C + F) floats) fall out of L2 sooner; which wins depends on the layer and on the
core's L2 size, printed first.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import minicnn  # noqa: E402

minicnn.tune_process()   # the settings training uses (minicnn/fast/process.py)
from bench_common import rule_bench_args  # noqa: E402
from minicnn.fast import conv_winograd  # noqa: E402

SHAPES = [(32, 32, 32), (32, 64, 16), (64, 32, 16), (64, 64, 16), (24, 64, 31), (64, 32, 31),
          (64, 64, 15), (64, 256, 15), (256, 64, 15), (256, 256, 7)]


def main(argv=None):
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--tiles", type=int, nargs="+", default=[32, 48, 64, 96])
    known, rest = extra.parse_known_args(argv)
    args = rule_bench_args(__doc__, shapes=True, argv=rest)
    if min(known.tiles) < 1:
        raise SystemExit(f"--tiles: block sizes must be >= 1, got {known.tiles}")
    rng = np.random.default_rng(0)
    print(f"# batch {args.batch}, wall ms (median of {args.reps}), threads "
          f"{minicnn.fast.parallel.num_threads()}, L2 per core "
          f"{conv_winograd.l2_cache_bytes() // 1024} KiB")
    first = known.tiles[0]
    print(f"{'C->F @HxW':16s} {'ms at ' + str(first):>10s}  " + "  ".join(
        f"{'x at ' + str(t):>8s}" for t in known.tiles[1:]) + "   rule")
    saved = conv_winograd.TILES_PER_BLOCK, conv_winograd.forward_tiles_per_block
    try:
        for C, F, H in args.shapes or SHAPES:
            x = rng.standard_normal((args.batch, H, H, C)).astype(np.float32)
            W = (rng.standard_normal((3, 3, C, F)) * 0.05).astype(np.float32)
            conv_winograd.TILES_PER_BLOCK = saved[0]
            rule = saved[1](C, F)                          # what Conv2D uses on this machine
            conv_winograd.forward_tiles_per_block = lambda C_, F_: conv_winograd.TILES_PER_BLOCK
            times = {t: [] for t in known.tiles}
            for rep in range(args.reps + 1):             # the first round warms up
                for t in known.tiles:
                    conv_winograd.TILES_PER_BLOCK = t
                    start = time.perf_counter()
                    conv_winograd.winograd_forward(x, W, None, 1, 1, H, H)
                    if rep:
                        times[t].append(time.perf_counter() - start)
            base = np.median(times[first])
            print(f"{C:4d}->{F:<4d} @{H:2d}x{H:<2d}  {base * 1e3:10.2f}  " + "  ".join(
                f"{base / np.median(times[t]):8.3f}" for t in known.tiles[1:]) + f"   {rule}")
    finally:
        conv_winograd.TILES_PER_BLOCK, conv_winograd.forward_tiles_per_block = saved


if __name__ == "__main__":
    main()
