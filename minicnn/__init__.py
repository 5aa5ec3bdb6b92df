"""minicnn: a CNN library in NumPy with hand-written backprop and numba kernels.

Image activations are NHWC: (N, H, W, C).
"""
import os
import sys
import warnings

# These settings are process-wide and inherited by child processes (README, "Speed").
#
# numba's parallel kernels run on OpenMP (libgomp), whose idle threads spin for a
# while (GOMP_SPINCOUNT, 300,000 by default) after each kernel. Between two numba
# kernels minicnn runs its own threads (the conv blocks, kernels/parallel.py), and a
# spinning OpenMP thread would take a core from them. PASSIVE makes idle OpenMP
# threads sleep at once. Read when libgomp loads; a value set by the user wins.
# numba must not have started its threads yet (import minicnn before calling numba).
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    _parallel = sys.modules.get("numba.np.ufunc.parallel")
    if (_parallel is not None and getattr(_parallel, "_is_initialized", False)
            and sys.modules["numba"].threading_layer() == "omp"):
        warnings.warn("minicnn: numba's OpenMP threads were started before minicnn was imported, "
                      "so they keep spinning when idle (about 10-20% slower training on 2 cores); "
                      "import minicnn first, or set OMP_WAIT_POLICY=PASSIVE in the environment",
                      RuntimeWarning, stacklevel=2)

# The direct convolution's tiles (kernels/microkernel.py) need LLVM's SLP vectorizer,
# which numba leaves off unless NUMBA_SLP_VECTORIZE=1; numba reads it when it is first
# imported. A value set by the user wins; if numba came first without it, Conv2D
# keeps to its other paths (kernels/direct.slp_vectorizer_on), and says so.
if "NUMBA_SLP_VECTORIZE" not in os.environ:
    if "numba" not in sys.modules:
        os.environ["NUMBA_SLP_VECTORIZE"] = "1"
    elif not sys.modules["numba"].config.SLP_VECTORIZE:
        warnings.warn("minicnn: numba was imported before minicnn without NUMBA_SLP_VECTORIZE=1, "
                      "so the direct and Winograd convolutions are off and Conv2D uses its slower "
                      "im2col paths; import minicnn first, or set NUMBA_SLP_VECTORIZE=1",
                      RuntimeWarning, stacklevel=2)

# Freed activations and gradients stay in the process for the next step instead of
# going back to the OS and page-faulting in again (heap.py; MINICNN_KEEP_HEAP=0: off).
from .heap import keep_freed_memory

keep_freed_memory()

from .layers import (Layer, Conv2D, ReLU, LeakyReLU, GELU, MaxPool2D, AvgPool2D,
                     GlobalAvgPool2D, GlobalMaxPool2D, Dense, Flatten, BatchNorm1D,
                     BatchNorm2D, Dropout)
from .losses import softmax_cross_entropy, SoftmaxCrossEntropy, softmax, log_softmax
from .model import Sequential

__version__ = "0.1.0"
