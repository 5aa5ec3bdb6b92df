"""Process-wide settings that make training faster: applied only by ``tune_process()``.

Importing minicnn changes neither of these; the Trainer, the example scripts, the
prediction command and the benchmarks call ``minicnn.tune_process()`` themselves,
as early as they can. A program of your own may call it too, first thing.

1. OpenMP's idle threads sleep (OMP_WAIT_POLICY=PASSIVE). numba's parallel
   kernels run on OpenMP (libgomp), whose idle threads spin for a while after each
   kernel (GOMP_SPINCOUNT, 300,000 by default). Between two numba kernels minicnn
   runs its own threads (the conv blocks, parallel.py), and a spinning OpenMP thread
   takes a core from them. libgomp reads the variable once, when numba starts its
   threads (the first parallel kernel, or numba.get_num_threads()): after that,
   setting it changes nothing, and tune_process says so with a warning. A value the
   user set (OMP_WAIT_POLICY or GOMP_SPINCOUNT) is left alone.

2. Freed memory stays in the process for the next step (glibc's malloc). A
   training step allocates and frees the same large arrays every time (activations
   and gradients of 16 MB each for the simple net at batch 128). glibc serves
   blocks above M_MMAP_THRESHOLD (dynamic, 128 KiB up to 32 MiB) with fresh pages
   from mmap and returns them to the OS when freed, and it trims free memory at the
   top of the heap above M_TRIM_THRESHOLD; either way the next step page-faults in
   new zero-filled pages. Raising both thresholds to KEEP_BYTES (1 GiB) keeps freed
   memory for reuse, as a caching allocator would. The cost: memory a program frees
   stays with the process until it exits. Skipped when the user set
   MALLOC_MMAP_THRESHOLD_ or MALLOC_TRIM_THRESHOLD_ (their choice wins), when
   MINICNN_KEEP_HEAP=0, and on a C library other than glibc.

docs/performance.md has what each is worth, with the commands that measure it.
"""
import ctypes
import ctypes.util
import os
import sys
import warnings

M_TRIM_THRESHOLD = -1     # mallopt parameter numbers, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
KEEP_BYTES = 1 << 30

heap_kept = False         # True once both mallopt calls succeeded


def openmp_threads_started():
    """True when numba has started its OpenMP threads (libgomp has read its variables)."""
    parallel = sys.modules.get("numba.np.ufunc.parallel")
    return (parallel is not None and getattr(parallel, "_is_initialized", False)
            and sys.modules["numba"].threading_layer() == "omp")


def let_idle_openmp_threads_sleep():
    """Set OMP_WAIT_POLICY=PASSIVE for numba's OpenMP threads. Returns True if set now
    (before the threads started), False if the user chose or it was too late (warns)."""
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return False
    if openmp_threads_started():
        warnings.warn("minicnn.tune_process: numba's OpenMP threads already started, so they "
                      "keep spinning when idle (slower training: docs/performance.md); call "
                      "tune_process() before running any layer, or set OMP_WAIT_POLICY=PASSIVE "
                      "in the environment", RuntimeWarning, stacklevel=3)
        return False
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True


def keep_freed_memory():
    """Raise glibc's mmap and trim thresholds to KEEP_BYTES (see the module docstring).
    Returns True if they were raised, False if this was skipped or failed."""
    global heap_kept
    if (os.environ.get("MINICNN_KEEP_HEAP", "1") == "0" or not sys.platform.startswith("linux")
            or "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt                       # glibc only; musl has none
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    heap_kept = bool(mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD,
                                                                             KEEP_BYTES))
    return heap_kept


_tuned = False


def tune_process():
    """Apply both settings once per process (later calls do nothing). Returns a dict
    {"openmp_passive": bool, "heap_kept": bool} of what this call changed."""
    global _tuned
    if _tuned:
        return {"openmp_passive": False, "heap_kept": False}
    _tuned = True
    return {"openmp_passive": let_idle_openmp_threads_sleep(), "heap_kept": keep_freed_memory()}
