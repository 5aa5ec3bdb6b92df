"""The measurement behind Conv2D's direct-path rule: direct tiles against the other paths.

    NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_direct.py [--batch 128]

For every 3x3 conv shape of the bundled nets, times the forward pass, dW and dx
(stride 1) on one core, CPU clock, each op by the direct tiles (kernels/direct.py,
forced on whatever the rule says) and by the path Conv2D takes without them
(im2col + OpenBLAS, or the tap-class path on small maps), interleaved, median of
--reps after a warm-up. Prints ms and GFLOP/s (nominal: padding taps counted) and
the speed-up direct / other; > 1 means the tiles are faster.
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import minicnn  # noqa: E402

minicnn.tune_process()   # the settings training uses (minicnn/fast/process.py)
from bench_common import rule_bench_args  # noqa: E402
from minicnn.nn import Conv2D  # noqa: E402
from minicnn.fast.kernels.direct import tile_width  # noqa: E402
from minicnn.fast.conv_direct import direct_forward, direct_weight_grad  # noqa: E402

# (name, C, F, H): every 3x3 'same' conv of simple and airbench94 (airbench after its 2x2 whitening)
SHAPES = [("simple.conv1", 3, 32, 32), ("simple.conv2", 32, 32, 32),
          ("simple.conv3", 32, 64, 16), ("simple.conv4", 64, 64, 16),
          ("airbench.g1a", 24, 64, 31), ("airbench.g1b", 64, 64, 15),
          ("airbench.g2a", 64, 256, 15), ("airbench.g2b", 256, 256, 7),
          ("airbench.g3a", 256, 256, 7), ("airbench.g3b", 256, 256, 3)]


def ops(layer, x, dy):
    """{op: (direct callable or None, other callable)} for one layer and batch."""
    N, H, W, C = x.shape
    Wt = layer.params["W"]
    Wflip = np.ascontiguousarray(Wt[::-1, ::-1].transpose(0, 1, 3, 2))

    def other_forward():
        layer.allow_direct = False
        layer.forward(x, True)

    def other_dW():
        layer.allow_direct, layer.needs_input_grad, layer.frozen = False, False, set()
        layer.x = x
        layer.backward(dy)

    def other_dx():
        layer.allow_direct, layer.needs_input_grad, layer.frozen = False, True, {"W", "b"}
        layer.x = x
        layer.backward(dy)

    fits_fwd = tile_width(layer.F, W) > 0
    fits_dx = tile_width(layer.C, W) > 0
    fits_dW = layer.C % 4 == 0 and layer.F % 16 == 0
    return {"forward": (fits_fwd and (lambda: direct_forward(x, Wt, None, 1, 1, H, W)), other_forward),
            "dW": (fits_dW and (lambda: direct_weight_grad(x, dy, 3, 3, 1, 1, 4)), other_dW),
            "dx": (fits_dx and (lambda: direct_forward(dy, Wflip, None, 1, 1, H, W)), other_dx)}


def main():
    args = rule_bench_args(__doc__)
    rng = np.random.default_rng(0)
    print(f"# batch {args.batch}, CPU ms per op (median of {args.reps}), numba threads "
          f"{minicnn.fast.parallel.num_threads()}; GFLOP/s nominal")
    print(f"{'layer':14s} {'op':8s} {'direct ms':>10s} {'other ms':>10s} {'direct GF/s':>12s} "
          f"{'other GF/s':>11s} {'speed-up':>9s}")
    for name, C, F, H in SHAPES:
        layer = Conv2D(C, F, 3, padding="same", bias=False, rng=0)
        layer.allow_winograd = False      # "other" = the im2col / tap-class paths (OpenBLAS)
        x = rng.standard_normal((args.batch, H, H, C)).astype(np.float32)
        dy = rng.standard_normal((args.batch, H, H, F)).astype(np.float32)
        flops = 2 * args.batch * H * H * 9 * C * F
        for op, (direct, other) in ops(layer, x, dy).items():
            fns = [f for f in (direct, other) if f]
            times = [[] for _ in fns]
            for rep in range(args.reps + 1):
                for i, f in enumerate(fns):
                    t = time.process_time()
                    f()
                    if rep:
                        times[i].append(time.process_time() - t)
            med = [float(np.median(t)) for t in times]
            if direct:
                print(f"{name:14s} {op:8s} {med[0] * 1e3:10.1f} {med[1] * 1e3:10.1f} "
                      f"{flops / med[0] / 1e9:12.1f} {flops / med[1] / 1e9:11.1f} {med[1] / med[0]:9.2f}")
            else:
                print(f"{name:14s} {op:8s} {'-':>10s} {med[0] * 1e3:10.1f} {'-':>12s} "
                      f"{flops / med[0] / 1e9:11.1f} {'-':>9s}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
