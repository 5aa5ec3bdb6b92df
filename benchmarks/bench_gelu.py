"""Time the float32 GELU kernels (exact form) per element, forward and backward.

    python benchmarks/bench_gelu.py                      # the checkout's kernel vs libm's erfc
    python benchmarks/bench_gelu.py --against HEAD~1     # ... and the kernel of another commit

Subjects run alternately, `--reps` rounds, medians; NUMBA_NUM_THREADS sets the threads.
The libm subject is `gelu_forward_exact` (math.erfc per element) run on the same float32 data.
"""
import argparse
import importlib.util
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

import minicnn  # noqa: F401  (first: it sets numba's compile flags)
import numba
from minicnn.fast.kernels import gelu

ROOT = pathlib.Path(__file__).resolve().parent.parent
KERNEL_PATH = "minicnn/fast/kernels/gelu.py"


def kernel_module_at(revision, folder):
    """The GELU kernel module as it was at a git revision, imported from a copy."""
    source = subprocess.run(["git", "show", f"{revision}:{KERNEL_PATH}"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    path = pathlib.Path(folder) / "gelu_at_revision.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("gelu_at_revision", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1 << 22, help="elements (default 2^22)")
    parser.add_argument("--reps", type=int, default=9, help="rounds (default 9)")
    parser.add_argument("--against", metavar="REV", help="also time the kernel of this git revision")
    args = parser.parse_args(argv)
    if args.size < 1 or args.reps < 1:
        parser.error(f"--size and --reps must be >= 1, got {args.size} and {args.reps}")

    x = np.random.default_rng(0).standard_normal(args.size, dtype=np.float32)
    y, dx = np.empty_like(x), np.empty_like(x)
    kernels = {"this checkout": gelu}
    with tempfile.TemporaryDirectory() as folder:
        if args.against:
            kernels[args.against] = kernel_module_at(args.against, folder)
        subjects = {}
        for name, module in kernels.items():
            subjects[f"{name} forward"] = lambda m=module: m.gelu_forward_f32(x, y, False)
            subjects[f"{name} backward"] = lambda m=module: m.gelu_backward_f32(x, x, dx, False)
        subjects["libm erfc forward"] = lambda: gelu.gelu_forward_exact(x, y, False)
        times = {name: [] for name in subjects}
        for run in subjects.values():                    # compile and warm up
            run()
        for _ in range(args.reps):
            for name, run in subjects.items():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    print(f"# GELU float32 (exact form), {args.size} elements, numba threads "
          f"{numba.get_num_threads()}, median of {args.reps} alternated rounds")
    per_element = {name: 1e9 * float(np.median(seconds)) / args.size for name, seconds in times.items()}
    for name, ns in per_element.items():
        print(f"{name:28} {ns:6.2f} ns per element")
    return per_element


if __name__ == "__main__":
    main()
