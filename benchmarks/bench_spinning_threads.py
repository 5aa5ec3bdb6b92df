"""CPU time burnt while the process sleeps right after a Winograd layer (spinning threads).

    python benchmarks/bench_spinning_threads.py [--channels 256] [--size 8] [--batch 2]

After a multi-threaded OpenBLAS call, OpenBLAS's worker threads keep spinning for a while
(about 0.1 s), taking a core from whatever runs next. The Winograd weight transform
(fast/kernels/winograd.py, weight_transform) is therefore a compiled loop, not a matrix
product, and the conv blocks run one-thread BLAS (fast/parallel.py). This
prints the process CPU time used during an --idle second sleep (median of --reps) that
starts right after: nothing; a forward pass of a 3x3 Conv2D(C, C) on the Winograd path;
a numpy matmul of two (--matmul x --matmul) float32 matrices on OpenBLAS's default
threads, 2 on 2 cores (for contrast: what a BLAS call in the transform would leave behind). The process calls
minicnn.tune_process() first, as training does. Near zero means no thread spins.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import minicnn  # noqa: E402

minicnn.tune_process()   # the settings training uses (minicnn/fast/process.py)
from minicnn.fast.rules import conv_paths  # noqa: E402
from minicnn.nn import Conv2D  # noqa: E402


def idle_cpu(before, idle, reps):
    """Median CPU seconds of this process during ``idle`` s of sleep right after before()."""
    used = []
    for _ in range(reps):
        time.sleep(0.3)                # let threads woken by what came earlier settle
        before()
        c0 = time.process_time()
        time.sleep(idle)
        used.append(time.process_time() - c0)
    return float(np.median(used))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--channels", type=int, default=256, help="C = F of the 3x3 layer (a multiple of 32)")
    ap.add_argument("--size", type=int, default=8, help="input maps size x size (>= 7)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--matmul", type=int, default=512)
    ap.add_argument("--idle", type=float, default=0.2, help="seconds of sleep measured")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    C = args.channels
    layer = Conv2D(C, C, 3, rng=0)
    x = np.random.default_rng(0).standard_normal((args.batch, args.size, args.size, C)).astype(np.float32)
    path = conv_paths(layer, x.shape)["forward"]
    layer.forward(x)                                   # compile, and the weights' first use
    a = np.random.default_rng(1).standard_normal((args.matmul, args.matmul)).astype(np.float32)
    a @ a
    print(f"# Conv2D({C}, {C}, 3) on {args.batch}x{args.size}x{args.size}x{C}: forward path "
          f"{path}; CPU ms during a {args.idle:g} s sleep right after (median of {args.reps})")
    for name, before in (("nothing", lambda: None), ("winograd forward", lambda: layer.forward(x)),
                         ("BLAS matmul", lambda: a @ a)):
        print(f"{name:24s} {idle_cpu(before, args.idle, args.reps) * 1e3:8.1f}", flush=True)


if __name__ == "__main__":
    main()
