"""How fast each register tile multiplies, alone, in the three ways the kernels call it.

    NUMBA_NUM_THREADS=1 python benchmarks/bench_tiles.py [--tiles 3x32 4x32 8x32 4x64]
                                                        [--seconds 0.3]

Times the micro-kernel of kernels/microkernel.py at several (P, FB) shapes, compiled
here from ``tile_source`` (so shapes that tiles.py does not hold can be tried), on
operands that stay in L1/L2, one core, and prints GFLOP/s (2 flops per multiply-add).
Read them against the core's FMA peak (benchmarks/bench_fma_peak.py). The patterns:

* ``forward``  the Winograd products M_k = V_k @ U_k: P tiles (rows of V, C apart) x FB
  output channels, C steps; U's block of FB channels read in a run (as winograd.py).
* ``dW``       the Winograd dW products V_k^T @ E_k on strided reads: P input channels
  (adjacent in V) x FB output channels, one step per tile (V rows C apart, E rows F apart).
* ``dW-padded`` the same with rows DW_ROW_PAD floats further apart (C + 16, F + 16),
  as the wide layers' V and E are laid out (conv_winograd.py).

Shapes (C, F, tiles) are those of airbench94's layers at a block's size. The figures
say which tile keeps the FMA units busy on this CPU; whole-layer and whole-step effects
are measured by bench_winograd.py and compare_trees.py.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import minicnn  # noqa: E402,F401  (numba's compile flags: fast/__init__.py)
from numba import njit  # noqa: E402

from minicnn.fast.conv_winograd import DW_ROW_PAD as PAD  # noqa: E402  (dW-padded's rows)
from minicnn.fast.kernels.microkernel import tile_source  # noqa: E402

CASES = {"forward": [(32, 32, 96), (64, 64, 96), (256, 256, 96)],
         "dW": [(64, 64, 32), (64, 256, 32), (256, 256, 128)],
         "dW-padded": [(256, 256, 128)]}


def compile_tiles(shapes):
    """{(P, FB): njit tile function}, compiled from tile_source without numba's cache."""
    source = "import numpy as np\nfrom numba import njit, uint64\n" + "".join(
        tile_source(P, FB).replace("cache=True", "cache=False") for P, FB in shapes)
    namespace = {}
    exec(compile(source, "<generated tiles>", "exec"), namespace)
    return {(P, FB): namespace[f"tile_{P}x{FB}"] for P, FB in shapes}


def make_driver(tile, P, FB, pattern):
    """A compiled loop calling ``tile`` over a whole (C, F, T) product ``reps`` times."""
    @njit(nogil=True, boundscheck=False)
    def forward(a, b, out, C, F, T, reps):          # out (T, F) = a (T, C) @ b (F/FB, C, FB)
        one = np.zeros(1, np.int64)
        for _ in range(reps):
            for fb in range(F // FB):
                for t in range(0, T - P + 1, P):
                    tile(a, t * C, one, C, 1, b, fb * C * FB, one, FB, C, out, t * F + fb * FB,
                         F, False)

    @njit(nogil=True, boundscheck=False)
    def grad(a, b, out, C, F, T, reps):             # out (C, F) += a (T, C)^T @ b (T, F)
        one = np.zeros(1, np.int64)
        for _ in range(reps):
            for c in range(0, C - P + 1, P):
                for fb in range(F // FB):
                    tile(a, c, one, 1, C, b, fb * FB, one, F, T, out, c * F + fb * FB, F, True)

    @njit(nogil=True, boundscheck=False)
    def grad_padded(a, b, out, C, F, T, reps):      # the same, rows C + PAD and F + PAD apart
        one = np.zeros(1, np.int64)
        for _ in range(reps):
            for c in range(0, C - P + 1, P):
                for fb in range(F // FB):
                    tile(a, c, one, 1, C + PAD, b, fb * FB, one, F + PAD, T, out,
                         c * F + fb * FB, F, True)
    return {"forward": forward, "dW": grad, "dW-padded": grad_padded}[pattern]


def rates(drivers, pattern, C, F, T, seconds, rounds=5):
    """{(P, FB): GFLOP/s} of each driver on the same random operands: ~``seconds`` per
    timing, the tiles taking turns for ``rounds`` rounds (so a machine whose speed drifts
    slows them alike), the best round of each."""
    rng = np.random.default_rng(0)
    a = rng.random(T * (C + PAD), dtype=np.float32)           # room for padded rows
    b = rng.random(T * (F + PAD) + C * F, dtype=np.float32)
    out = np.zeros(max(T, C) * F, np.float32)
    reps, flops, best = {}, {}, {}
    for (P, FB), driver in drivers.items():
        driver(a, b, out, C, F, T, 1)                               # compile, warm the caches
        t = time.perf_counter()
        driver(a, b, out, C, F, T, 1)
        reps[P, FB] = max(1, int(seconds / max(time.perf_counter() - t, 1e-7)))
        flops[P, FB] = 2 * (T // P * P if pattern == "forward" else T) * C * F * reps[P, FB]
        best[P, FB] = float("inf")
    for _ in range(rounds):
        for key, driver in drivers.items():
            out[:] = 0                                 # dW accumulates: keep the values small
            t = time.perf_counter()
            driver(a, b, out, C, F, T, reps[key])
            best[key] = min(best[key], time.perf_counter() - t)
    return {key: flops[key] / best[key] / 1e9 for key in drivers}


def parse_tile(text):
    try:
        P, FB = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a tile as PxFB (e.g. 8x32), got {text!r}")
    if P < 1 or FB < 1 or FB % 8:
        raise argparse.ArgumentTypeError(f"expected P >= 1 and FB a multiple of 8, got {text!r}")
    return P, FB


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiles", nargs="+", type=parse_tile,
                    default=[(3, 32), (4, 32), (8, 32), (4, 64)], help="P x FB shapes")
    ap.add_argument("--patterns", nargs="+", choices=list(CASES), default=list(CASES))
    ap.add_argument("--seconds", type=float, default=0.3, help="time per measurement")
    args = ap.parse_args(argv)
    from minicnn.fast.vectors import host_cpu_features, vector_unit
    import llvmlite.binding as llvm
    print(f"# LLVM target {llvm.get_host_cpu_name()}; avx512f="
          f"{host_cpu_features().get('avx512f', False)}; minicnn unit {vector_unit().name}; "
          f"GFLOP/s on one core, best of 5 rounds in turn")
    tiles = compile_tiles(args.tiles)
    for pattern in args.patterns:
        for C, F, T in CASES[pattern]:
            fits = [(P, FB) for P, FB in args.tiles   # dW: P of the C channels per tile
                    if F % FB == 0 and (pattern == "forward" or C % P == 0)]
            drivers = {(P, FB): make_driver(tiles[(P, FB)], P, FB, pattern) for P, FB in fits}
            measured = rates(drivers, pattern, C, F, T, args.seconds)
            cells = [f"{P}x{FB}: {measured[P, FB]:6.1f}" if (P, FB) in measured
                     else f"{P}x{FB}: -" for P, FB in args.tiles]
            print(f"{pattern:9s} C={C:3d} F={F:3d} T={T:3d}  " + "  ".join(cells), flush=True)


if __name__ == "__main__":
    main()
