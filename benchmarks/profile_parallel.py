"""Where a training step's parallel blocks lose time: starting, waiting, idling.

    python benchmarks/profile_parallel.py [--net airbench|simple] [--batch 128] [--reps 10]

Every multi-core pass of the fast backend (each convolution's forward, dx and dW, the
Dense products) hands its blocks to the threads through ``parallel_blocks``
(minicnn/fast/parallel.py). This wraps that function, runs --reps training steps
(forward, loss, backward, SGD update) after two warm-up steps, and sums per step:

    wall        time inside parallel_blocks calls
    busy        the busiest thread's time inside its blocks (so wall - busy is lost
                to starting the threads and waiting for them: "overhead")
    idle tail   per call, the time between the first thread's last block ending and
                the last thread's (one core idle while the other finishes: dynamic
                scheduling hands out whole blocks, so the last block sets the tail)
    start lag   per call, how long after the call the second thread starts its first
                block (median)

numba's own parallel kernels (prange: ReLU, pooling, BatchNorm, the sums) are not
counted. The timing wrapper adds a few microseconds per block to "busy".
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import minicnn  # noqa: E402

minicnn.tune_process()   # the settings training uses (minicnn/fast/process.py)
import minicnn.fast.conv as fast_conv  # noqa: E402
import minicnn.fast.conv_direct as fast_direct  # noqa: E402
import minicnn.fast.conv_taps as fast_taps  # noqa: E402
import minicnn.fast.conv_winograd as fast_winograd  # noqa: E402
import minicnn.fast.parallel as fast_parallel  # noqa: E402
from minicnn.nn import softmax_cross_entropy  # noqa: E402
from minicnn.optim import SGD  # noqa: E402
from minicnn.zoo import airbench, simple  # noqa: E402

CALLERS = (fast_conv, fast_direct, fast_taps, fast_winograd, fast_parallel)


def recording(parallel_blocks, calls):
    """parallel_blocks that appends (wall, busiest, idle tail, start lag) per call to calls."""
    def timed(nblocks, work, nthreads=None):
        busy, first, last = {}, {}, {}

        def timed_work(block, thread):
            t = time.perf_counter()
            first.setdefault(thread, t)
            work(block, thread)
            end = time.perf_counter()
            busy[thread] = busy.get(thread, 0.0) + end - t
            last[thread] = end

        start = time.perf_counter()
        used = parallel_blocks(nblocks, timed_work, nthreads)
        wall = time.perf_counter() - start
        ends = sorted(last.values())
        others = [t for thread, t in first.items() if thread != 0]     # the other threads' starts
        lag = min(others) - start if others else np.nan
        calls.append((wall, max(busy.values(), default=0.0),
                      ends[-1] - ends[0] if len(ends) > 1 else 0.0, lag))
        return used
    return timed


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--net", choices=["airbench", "simple"], default="airbench")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--reps", type=int, default=10)
    args = p.parse_args()
    if args.batch < 1 or args.reps < 1:
        p.error(f"--batch and --reps must be >= 1; got --batch {args.batch}, --reps {args.reps}")
    model = simple(rng=0) if args.net == "simple" else airbench(rng=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 32, 32, 3)).astype(np.float32)     # (N, H, W, C)
    labels = rng.integers(0, 10, args.batch)
    optimizer = SGD(model.named_parameters(), lr=1e-3)
    calls = []
    wrapped = recording(fast_parallel.parallel_blocks, calls)
    for module in CALLERS:
        if hasattr(module, "parallel_blocks"):
            module.parallel_blocks = wrapped

    def step():
        _, dlogits = softmax_cross_entropy(model.forward(x, training=True), labels)
        model.backward(dlogits)
        optimizer.step()

    for _ in range(2):
        step()
    calls.clear()
    t = time.perf_counter()
    for _ in range(args.reps):
        step()
    step_ms = (time.perf_counter() - t) / args.reps * 1e3
    c = np.array(calls).reshape(-1, 4)
    per_step = c[:, :3].sum(axis=0) / args.reps * 1e3
    lag_us = np.nanmedian(c[:, 3]) * 1e6 if np.isfinite(c[:, 3]).any() else float("nan")
    print(f"# {args.net}, batch {args.batch}, {args.reps} training steps after 2 warm-up; "
          f"threads {fast_parallel.num_threads()}; load average {os.getloadavg()[0]:.2f}")
    print(f"step_ms {step_ms:.1f}")
    print(f"calls_per_step {len(c) / args.reps:.0f}")
    print(f"wall_ms {per_step[0]:.2f}")
    print(f"busiest_thread_ms {per_step[1]:.2f}")
    print(f"overhead_ms {per_step[0] - per_step[1]:.2f}")
    print(f"idle_tail_ms {per_step[2]:.2f}")
    print(f"start_lag_us {lag_us:.0f}")


if __name__ == "__main__":
    main()
