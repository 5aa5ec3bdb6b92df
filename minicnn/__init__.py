"""minicnn: a CNN library in NumPy with hand-written backprop and numba kernels.

Image activations are NHWC: (N, H, W, C).

    minicnn/nn      the layers, loss and Sequential: formulas and reference NumPy code
    minicnn/fast    the fast backend: dispatch rule, drivers, numba kernels, threads
    minicnn/optim   optimizers, schedules, weight averaging
    minicnn/data    CIFAR-10: reading, download, augmentation, batches
    minicnn/train   the training loop, evaluation, metrics, plots, progress
    minicnn/zoo     ready-made networks and the airbench94 recipe
    minicnn/gradcheck.py   numerical gradient checks for any layer

Importing minicnn changes no process-wide setting but numba's compile flags
(NUMBA_SLP_VECTORIZE=1, and on AVX-512 CPUs NUMBA_CPU_FEATURES without LLVM's
"prefer-256-bit", unless you set them: minicnn/fast/__init__.py says why and how
to opt out); ``tune_process()`` applies the settings training wants (OpenMP's wait
policy, glibc's heap thresholds: minicnn/fast/process.py).
"""
from .backend import current_backend, use_backend
from . import fast  # noqa: F401  (first: it sets numba's compile flag before numba loads)
from .fast import tune_process
from .nn import (Layer, Conv2D, ReLU, LeakyReLU, GELU, MaxPool2D, AvgPool2D, GlobalAvgPool2D,
                 GlobalMaxPool2D, Dense, Flatten, BatchNorm1D, BatchNorm2D, Dropout,
                 softmax_cross_entropy, SoftmaxCrossEntropy, softmax, log_softmax, Sequential)

__version__ = "0.1.0"
