"""Speed of crop + flip augmentation on a (512, 32, 32, 3) float32 batch.

    python benchmarks/bench_augment.py [--batch 512] [--reps 20] [--threads K]

Times, after a warm-up call (numba compilation), the median of --reps runs of:
  fused      random_crop_flip: offsets, flip bits and one numba pass (what CropFlip uses)
  separate   random_crop then random_flip (two passes)
  reference  crop_flip_reference, the plain-NumPy twin (np.pad per image)
and prints images per second for each. The kernel is numba-parallel over images; on a
machine whose cores are busy with other work, --threads 1 can be faster (printed: the
thread count and the load average, to read the figures by).
"""
import argparse
import os
import sys
import time

import numba
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from minicnn.data import crop_flip_reference, random_crop, random_crop_flip, random_flip  # noqa: E402


def median_seconds(fn, reps):
    fn()                                             # warm-up: compile / fill caches
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--threads", type=int, default=None, help="numba threads (default: all)")
    args = p.parse_args()
    if args.threads:
        numba.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 32, 32, 3)).astype(np.float32)   # (N, H, W, C)

    def reference():
        dy, dx = rng.integers(0, 9, size=(2, len(x)))
        return crop_flip_reference(x, dy, dx, rng.random(len(x)) < 0.5, 4, "reflect")

    cases = {"fused": lambda: random_crop_flip(x, rng, pad=4, mode="reflect"),
             "separate": lambda: random_flip(random_crop(x, rng, pad=4, mode="reflect"), rng),
             "reference": reference}
    print(f"crop(pad=4, reflect) + flip on {x.shape} float32, median of {args.reps} reps, "
          f"{numba.get_num_threads()} numba threads, load average {os.getloadavg()[0]:.1f}")
    for name, fn in cases.items():
        s = median_seconds(fn, args.reps if name != "reference" else max(3, args.reps // 4))
        print(f"  {name:10s} {s * 1e3:8.2f} ms/batch  {len(x) / s:12,.0f} images/s")


if __name__ == "__main__":
    main()
