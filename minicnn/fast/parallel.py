"""Run blocks of work on every core, each block with single-threaded BLAS.

A convolution is a loop over blocks of rows: fill a cache-sized im2col block,
multiply it by the weights. Giving each core whole blocks (its own im2col
buffer, its own one-thread matrix product) keeps each block in that core's
L2 cache, where one large multi-threaded product would stream a huge im2col
matrix through memory. ``parallel_blocks`` does exactly that:

* ``num_threads()`` workers (numba's thread count, 2 on a 2-core machine):
  the calling thread and a persistent pool;
* blocks handed out in order from a shared counter (dynamic scheduling, so a
  core slowed by another process simply takes fewer blocks);
* OpenBLAS limited to one thread for the duration (threadpoolctl), so the
  numba kernels (serial, ``nogil``) and the matrix products (which release the
  GIL) never oversubscribe the cores. Without threadpoolctl the blocks run
  one after the other in the calling thread with multi-threaded BLAS.
"""
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

try:
    from threadpoolctl import ThreadpoolController
except ImportError:                      # pragma: no cover - threadpoolctl ships with scikit-learn
    ThreadpoolController = None

_lock = threading.Lock()
_pool = None
_controller = None
_pid = None              # a forked child must not reuse its parent's (threadless) pool


def num_threads():
    return numba.get_num_threads() if ThreadpoolController is not None else 1


def _setup():
    global _pool, _controller, _pid
    with _lock:
        if _controller is None or _pid != os.getpid():
            _pid = os.getpid()
            _controller = ThreadpoolController()
            _pool = ThreadPoolExecutor(max_workers=max(num_threads() - 1, 1),
                                       thread_name_prefix="minicnn")
    return _pool, _controller


def parallel_blocks(nblocks, work, nthreads=None):
    """Call ``work(block, thread)`` for block in range(nblocks), on up to
    ``nthreads`` threads (default ``num_threads()``); ``thread`` in [0, n_used) lets
    a worker use its own scratch buffers. Returns the number of threads used."""
    n_used = min(nthreads or num_threads(), nblocks)
    if n_used <= 1:
        for block in range(nblocks):
            work(block, 0)
        return 1
    pool, controller = _setup()
    counter = itertools.count()          # next() is atomic under the GIL

    def worker(thread):
        for block in counter:
            if block >= nblocks:
                return
            work(block, thread)

    with controller.limit(limits=1, user_api="blas"):
        futures = [pool.submit(worker, thread) for thread in range(1, n_used)]
        try:
            worker(0)
        finally:
            for f in futures:            # a worker that never started has nothing left to do:
                if not f.cancel():       # don't wait for the OS to schedule it
                    f.result()
    return n_used


MATMUL_BLOCKS = 8        # blocks of a parallel_matmul (fewer when the product is small)
MIN_BLOCK_COLUMNS = 128  # a column block is at least this wide


def parallel_matmul(a, b, out=None):
    """out (M, F) = a (M, K) @ b (K, F) on every core, each block a one-thread BLAS product
    (parallel_blocks). The blocks split the larger operand, so that it is read once:
    rows of a (and out) when a is the larger, else columns of b (and out).

    Why not let OpenBLAS use both cores itself: after a multi-threaded call its worker
    threads keep spinning for a while (OPENBLAS_THREAD_TIMEOUT, 2^28 cycles by default),
    taking a core from the numba kernels and conv blocks that follow (docs/performance.md,
    "One-thread BLAS blocks").
    """
    M, F = a.shape[0], b.shape[1]
    if out is None:
        out = np.empty((M, F), dtype=np.result_type(a, b))
    if a.size >= b.size:                                   # rows: a[r0:r1] @ b
        n_blocks = max(1, min(M, MATMUL_BLOCKS))

        def block(i, thread):
            r0, r1 = i * M // n_blocks, (i + 1) * M // n_blocks
            np.matmul(a[r0:r1], b, out=out[r0:r1])
    else:                                                  # columns: a @ b[:, c0:c1]
        n_blocks = max(1, min(MATMUL_BLOCKS, F // MIN_BLOCK_COLUMNS))

        def block(i, thread):
            c0, c1 = i * F // n_blocks, (i + 1) * F // n_blocks
            out[:, c0:c1] = a @ b[:, c0:c1]                # (M, c1 - c0), then copied in

    parallel_blocks(n_blocks, block)
    return out
