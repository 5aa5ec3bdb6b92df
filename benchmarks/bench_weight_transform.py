"""The Winograd weight transform U = G g G^T: the compiled loop the forward and dx run
(fast/kernels/winograd.py, weight_transform) against its twin, the same float64 sums
over NumPy slices (weight_transform_over_slices), for the 3x3 layer shapes of the
bundled nets.

    python benchmarks/bench_weight_transform.py [--reps 20]

Both give the same numbers to the last bit (tests/fast/test_winograd.py); wall ms,
medians of --reps calls each, alternated. The transform runs once per forward pass and
once per dx of every Winograd layer, whatever the batch size: at batch 128 it is a
visible share of a 256->256 layer on 7x7 maps.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import minicnn  # noqa: E402
from minicnn.fast.kernels.winograd import weight_transform  # noqa: E402
from minicnn.fast.kernels.winograd import (  # noqa: E402
    weight_transform_over_slices as transform_over_slices)

SHAPES = [(24, 64), (64, 64), (64, 256), (256, 256), (32, 32), (64, 128), (128, 128)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"# wall ms, median of {args.reps}, alternated")
    print("| C -> F | compiled loop | NumPy slices | speed-up |")
    print("|---|---|---|---|")
    result = {}
    for C, F in SHAPES:
        W = rng.standard_normal((3, 3, C, F)).astype(np.float32)
        times = {weight_transform: [], transform_over_slices: []}
        for rep in range(args.reps + 1):                 # rep 0: untimed (compiles)
            for fn in times:
                start = time.perf_counter()
                fn(W)
                if rep:
                    times[fn].append(time.perf_counter() - start)
        compiled, slices = (float(np.median(times[fn])) for fn in (weight_transform, transform_over_slices))
        result[C, F] = compiled, slices
        print(f"| {C} -> {F} | {compiled * 1e3:.2f} | {slices * 1e3:.2f} | {slices / compiled:.1f}x |")
    return result


if __name__ == "__main__":
    minicnn.tune_process()               # the process-wide settings training uses
    main()
