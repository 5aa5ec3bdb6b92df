"""How fast one core, and both, can stream float32 arrays through memory.

    python benchmarks/bench_memory_bandwidth.py [--mb 64] [--reps 5] [--threads 1 2]

Per thread count T, each of T threads (numba kernels, nogil) runs the same loop on its
own arrays of --mb megabytes, all starting together; the figure is the bytes all
threads moved divided by the wall time of the slowest, best of --reps:

    copy    b[i] = a[i]              reads a, writes b  (2 x MB per thread)
    read    s += a[i]                reads a            (MB per thread)
    write   b[i] = 0                 writes b           (MB per thread)

Arrays much larger than the caches measure the path to memory (what a layer reading a
batch's activations and writing its output pays); small ones measure mostly the threads'
start and join. Every pass that
reads or writes a whole activation map (the Winograd transforms' copies, ReLU, pooling,
BatchNorm) is limited by the copy figure of as many cores as run it: when it grows
less than 2x from one thread to two, the cores share the memory path and such passes
do not scale with cores.
"""
import argparse
import os
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import minicnn  # noqa: E402,F401  (numba's flags, as the library sets them)
from numba import njit  # noqa: E402

@njit(nogil=True, fastmath=True)
def copy_kernel(a, b):
    for i in range(a.size):
        b[i] = a[i]


@njit(nogil=True, fastmath=True)
def read_kernel(a):
    total = np.float32(0.0)
    for i in range(a.size):            # fastmath: LLVM splits the sum over vector lanes
        total += a[i]
    return total


@njit(nogil=True)
def write_kernel(b):
    for i in range(b.size):
        b[i] = 0.0


KERNELS = {"copy": (lambda a, b: copy_kernel(a, b), 2),
           "read": (lambda a, b: read_kernel(a), 1),
           "write": (lambda a, b: write_kernel(b), 1)}


def gbytes_per_second(kernel, arrays, bytes_per_thread, reps):
    """Best (over reps) of: bytes moved by all threads / wall seconds until all finish."""
    best = 0.0
    for _ in range(reps):
        start = threading.Barrier(len(arrays) + 1)
        threads = [threading.Thread(target=lambda a=a, b=b: (start.wait(), kernel(a, b)))
                   for a, b in arrays]
        for t in threads:
            t.start()
        start.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - t0
        best = max(best, len(arrays) * bytes_per_thread / seconds / 1e9)
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=float, default=64.0, help="megabytes per array (default 64)")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = p.parse_args()
    if args.mb <= 0 or args.reps < 1 or min(args.threads) < 1:
        p.error(f"--mb must be > 0, --reps and --threads >= 1; got --mb {args.mb}, "
                f"--reps {args.reps}, --threads {args.threads}")
    n = max(1, int(args.mb * 1e6) // 4)
    arrays = [(np.ones(n, np.float32), np.zeros(n, np.float32)) for _ in range(max(args.threads))]
    for kernel, _ in KERNELS.values():                               # compile, touch pages
        kernel(*arrays[0])
    print(f"# float32 arrays of {4 * n / 1e6:.1f} MB per thread, best of {args.reps}; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'pass':6s} {'threads':>7s} {'GB/s':>8s}")
    for name, (kernel, arrays_touched) in KERNELS.items():
        for T in args.threads:
            rate = gbytes_per_second(kernel, arrays[:T], arrays_touched * 4 * n, args.reps)
            print(f"{name:6s} {T:7d} {rate:8.1f}")


if __name__ == "__main__":
    main()
