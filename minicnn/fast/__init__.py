"""The fast backend: how minicnn is made fast. Nothing here changes the maths.

    rules.py        the one dispatch rule: which convolution algorithm runs each pass
    conv.py         Conv2D's passes: the im2col path, and the calls into the others:
    conv_winograd.py, conv_direct.py, conv_shifts.py, conv_taps.py   (drivers: blocks,
                    threads, scratch)
    layers.py       every other layer's passes (activations, max-pool, BatchNorm, Dense)
    optim.py        SGD's update as one pass over each param
    kernels/        numba kernels (plain arrays and ints in, arrays out), with NumPy
                    twins beside them (for ReLU, GELU and max-pooling the twin is the
                    layer's reference code in minicnn/nn)
    parallel.py     blocks of work on every core, each with one-thread BLAS
    vectors.py      the CPU's vector registers (AVX2 or AVX-512), which shape the tiles
    process.py      tune_process(): the process-wide settings training wants

Importing this package registers its passes with minicnn.backend.

One setting must be made before numba is first imported, so it is made here, at
import: LLVM's SLP vectorizer (NUMBA_SLP_VECTORIZE=1), which packs the scalar
accumulators of the register tiles (kernels/microkernel.py) into vector registers.
numba leaves it off by default. It changes only how numba compiles loops, not what
they compute. To opt out, set NUMBA_SLP_VECTORIZE=0 before importing minicnn (a value
you set always wins): the rule then keeps Conv2D off the Winograd and direct paths.
If numba was imported before minicnn without the flag, minicnn warns and does the same.

The second, only on CPUs with AVX-512: NUMBA_CPU_FEATURES, set to the host's own
features with LLVM's "prefer-256-bit" tuning switched off, so that numba's loops and
tiles use the 512-bit registers (vectors.py says why). Not set when you set it yourself,
when MINICNN_VECTOR_UNIT=avx2, or when numba was imported first (the tiles then find
256-bit code and keep the AVX2 shapes).
"""
import os
import sys
import warnings

if "NUMBA_SLP_VECTORIZE" not in os.environ:
    if "numba" not in sys.modules:
        os.environ["NUMBA_SLP_VECTORIZE"] = "1"
    elif not sys.modules["numba"].config.SLP_VECTORIZE:
        warnings.warn("minicnn: numba was imported before minicnn without NUMBA_SLP_VECTORIZE=1, "
                      "so the direct and Winograd convolutions are off and Conv2D uses its slower "
                      "paths; import minicnn first, or set NUMBA_SLP_VECTORIZE=1",
                      RuntimeWarning, stacklevel=2)

from . import vectors  # noqa: E402  (imports llvmlite only, not numba)

if ("NUMBA_CPU_FEATURES" not in os.environ and "numba" not in sys.modules
        and os.environ.get(vectors.ENV_VAR, "").strip() != "avx2"):
    wide_features = vectors.wide_vector_features()
    if wide_features is not None:
        os.environ["NUMBA_CPU_FEATURES"] = wide_features

from . import conv, layers, optim  # noqa: E402,F401  (registers the fast passes)
from ..backend import register_path_names  # noqa: E402
from .process import tune_process  # noqa: E402
from .rules import conv_paths, layer_paths  # noqa: E402

register_path_names(layer_paths)
