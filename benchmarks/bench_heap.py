"""Page faults per training step with and without keep_freed_memory() (glibc's malloc).

    python benchmarks/bench_heap.py [--net simple] [--batch 128] [--steps 5]

minicnn.tune_process() raises glibc's mmap and trim thresholds so that the large arrays a
training step frees stay in the process for the next step (minicnn/fast/process.py,
keep_freed_memory). Each row runs in a fresh process that calls tune_process() as
training does; the second row sets MINICNN_KEEP_HEAP=0, which switches that setting off
(MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_ are removed from both environments).
Columns: whether the thresholds were raised (heap_kept); the minor page faults of
allocating a 64 MB array again after freeing one (16,384 pages of 4 KiB if none are
reused); the mean minor page faults per training step (forward + loss + backward + SGD
update, float32) over --steps steps after one warm-up step.
"""
import argparse
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

STEP = r"""
import resource, sys
import numpy as np
import minicnn
minicnn.tune_process()
from minicnn.fast import process
from minicnn.nn import softmax_cross_entropy
from minicnn.zoo import airbench, simple


def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


net, N, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
a = np.ones(16 << 20, np.float32); del a                # 64 MB, freed
f0 = faults()
a = np.ones(16 << 20, np.float32); del a                # again: reused, or fresh pages?
realloc = faults() - f0
model = simple(rng=0) if net == "simple" else airbench(rng=0)
rng = np.random.default_rng(0)
x = rng.standard_normal((N, 32, 32, 3)).astype(np.float32)    # (N, H, W, C)
y = rng.integers(0, 10, N)


def step():
    loss, d = softmax_cross_entropy(model.forward(x, True), y)
    model.backward(d)
    for _, p, g in model.named_parameters():
        p -= 1e-3 * g


step()                                                  # warm-up: compile, first allocations
f0 = faults()
for _ in range(steps):
    step()
print(process.heap_kept, realloc, (faults() - f0) / steps)
"""


def measure(net, batch, steps, keep):
    env = {k: v for k, v in os.environ.items()
           if k not in ("MINICNN_KEEP_HEAP", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    if not keep:
        env["MINICNN_KEEP_HEAP"] = "0"
    out = subprocess.run([sys.executable, "-c", STEP, net, str(batch), str(steps)], env=env,
                         capture_output=True, text=True, check=True)
    kept, realloc, per_step = out.stdout.split()
    return kept, int(realloc), float(per_step)


def main():
    # the options of bench_idle.py too: each benchmark script stands alone, on purpose
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--net", choices=("simple", "airbench"), default="simple")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    print(f"# {args.net}, batch {args.batch}: minor page faults, a fresh process per row; "
          f"per step: mean of {args.steps} after 1 warm-up")
    print(f"{'setting':24s} {'heap_kept':>9s} {'realloc_64MB':>12s} {'faults_per_step':>15s}")
    for name, keep in (("keep_freed_memory", True), ("MINICNN_KEEP_HEAP=0", False)):
        kept, realloc, per_step = measure(args.net, args.batch, args.steps, keep)
        print(f"{name:24s} {kept:>9s} {realloc:12d} {per_step:15.0f}", flush=True)


if __name__ == "__main__":
    main()
