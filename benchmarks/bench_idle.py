"""How an idle pause slows the next pass: the reason for the benchmark's --warm.

    python benchmarks/bench_idle.py [--net simple] [--batch 128] [--reps 8]

Times minicnn inference (model.predict, one batch) in four conditions, median of
--reps each: back to back; after a 0.5 s sleep; after the sleep and then 30 ms or
100 ms of busy-waiting on one core. On the 2-core EPYC VM the cores lower their
clock when idle, so a pass that follows a pause runs slower until they are back up.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import minicnn  # noqa: E402

minicnn.tune_process()   # the settings training uses (minicnn/fast/process.py)
from minicnn.zoo import airbench, simple  # noqa: E402


def busy_wait(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--net", choices=("simple", "airbench"), default="simple")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--reps", type=int, default=8)
    args = ap.parse_args()
    model = simple(rng=0) if args.net == "simple" else airbench(rng=0)
    x = np.random.default_rng(0).standard_normal((args.batch, 32, 32, 3)).astype(np.float32)
    model.predict(x, batch_size=args.batch)                        # compile, allocate
    print(f"# {args.net}, batch {args.batch}, inference ms (median of {args.reps})")
    for name, pause, spin in [("back to back", 0, 0), ("after 0.5 s sleep", 0.5, 0),
                              ("sleep, then 30 ms busy", 0.5, 0.03),
                              ("sleep, then 100 ms busy", 0.5, 0.1)]:
        times = []
        for _ in range(args.reps):
            time.sleep(pause)
            busy_wait(spin)
            t = time.perf_counter()
            model.predict(x, batch_size=args.batch)
            times.append(time.perf_counter() - t)
        print(f"{name:26s} {np.median(times) * 1e3:7.1f}", flush=True)


if __name__ == "__main__":
    main()
