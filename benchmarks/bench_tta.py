"""What test-time augmentation costs: airbench94 logits on 10,000 images at TTA levels
0, 1 and 2 (1, 2 and 6 views per image) and a few batch sizes, alternated.

    python benchmarks/bench_tta.py [--images 10000] [--batch 500 2000] [--reps 3]

Random images and a freshly built model (the time does not depend on the weights);
wall clock on all threads, one untimed pass each first, medians. Prints seconds per
evaluation of all the images and images-views per second.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import minicnn  # noqa: E402
from minicnn.train.evaluate import predict_logits  # noqa: E402
from minicnn.zoo import airbench  # noqa: E402

VIEWS = {0: 1, 1: 2, 2: 6}       # images the network sees per test image, per TTA level


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--batch", type=int, nargs="+", default=[500, 2000])
    ap.add_argument("--tta", type=int, nargs="+", choices=sorted(VIEWS), default=[2])
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.images, 32, 32, 3)).astype(np.float32)   # (N, 32, 32, 3)
    model = airbench((64, 256, 256), rng=0)
    cases = [(tta, batch) for tta in args.tta for batch in args.batch]
    times = {case: [] for case in cases}
    for rep in range(args.reps + 1):                     # rep 0: untimed warm-up
        for tta, batch in cases:
            start = time.perf_counter()
            predict_logits(model, x, tta=tta, batch_size=batch)
            if rep:
                times[tta, batch].append(time.perf_counter() - start)
    print(f"# airbench94, {args.images} images, median of {args.reps}, threads "
          f"{minicnn.fast.parallel.num_threads()}")
    print("| TTA level | views | batch | seconds | image-views/s |")
    print("|---|---|---|---|---|")
    result = {}
    for tta, batch in cases:
        seconds = float(np.median(times[tta, batch]))
        result[tta, batch] = seconds
        print(f"| {tta} | {VIEWS[tta]} | {batch} | {seconds:.1f} | "
              f"{VIEWS[tta] * args.images / seconds:.0f} |")
    return result


if __name__ == "__main__":
    minicnn.tune_process()               # the process-wide settings training uses
    main()
