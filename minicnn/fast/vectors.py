"""The CPU's vector registers, and the register tiles shaped to fit them.

numba compiles every kernel for the CPU it runs on (LLVM's host target, e.g.
"znver3" or "znver5"), so the instructions already have the host's vector width:
the elementwise loops of pooling, BatchNorm, ReLU, GELU and the Winograd
transforms become ymm (AVX2) or zmm (AVX-512) code with no help. What does not
adapt by itself is the *shape* of a register tile (kernels/microkernel.py): its
P x FB accumulators must fill the register file without spilling, and be many
enough to keep both FMA units busy for the FMA's whole latency (about 4 cycles x
2 units = 8 independent accumulators at least):

    vector unit   lanes  registers   forward / dx / Winograd tile   dW tile
    AVX2 (ymm)      8       16       3 x 32 = 12 registers          4 x 16 = 8 registers
    AVX-512 (zmm)  16       32       4 x 64 = 16 registers          4 x 32 = 8 registers

On AVX-512 the AVX2 tile 3 x 32 is only 6 zmm accumulators, too few to hide the
FMA latency; 4 x 64 is 16 of the 32 registers, leaving room for the 4 vectors of
W read per step and the broadcast input. 4 pixels also divide the 32-, 16- and
8-pixel rows of the CIFAR nets exactly. Layers whose channels the wide tiles do
not divide (F not a multiple of 64 or 32) keep the AVX2 tiles. Winograd's products
also use 8 x 32 tiles (16 accumulators) on AVX-512: forward and dx where 64 does not
divide the output channels or the C x 64 weight block would not fit in L1 (C > 128),
dW where 8 divides C (conv_winograd.py).

The unit is chosen once, at first use, from what LLVM reports for this CPU: AVX-512
when the CPU has avx512f *and* LLVM's vectorizer really emits 512-bit code for it (a
small loop is compiled and its assembly read to find out). On most Intel AVX-512 CPUs
(Skylake-SP to Emerald Rapids) LLVM's tuning "prefer-256-bit" keeps the vectorizer
on ymm registers, which halves the FMA peak the tiles can reach. So when the CPU has
avx512f, importing minicnn sets NUMBA_CPU_FEATURES to the host's features with that
tuning switched off (``features_with_512_bit_vectors``), before numba is imported and
unless you set NUMBA_CPU_FEATURES yourself or MINICNN_VECTOR_UNIT=avx2 (then numba
compiles as it would without minicnn). To force a unit:

    MINICNN_VECTOR_UNIT=avx2 (or avx512) in the environment, or
    minicnn.fast.vectors.use_vector_unit("avx2") at run time (returns the previous one).

Forcing "avx512" on an AVX2-only CPU runs the wide tiles with AVX2 instructions:
slower (the accumulators spill), but the same sums, which is how the tests check
both tile sets on any machine.
"""
import functools
import os
from collections import namedtuple

VectorUnit = namedtuple("VectorUnit", "name lanes registers forward_tile grad_tile")
VectorUnit.__doc__ = """A vector instruction set as the tiles see it: float32 lanes per
register, the number of registers, and the (P, FB) of its forward and dW tiles."""

UNITS = {
    "avx2": VectorUnit("avx2", lanes=8, registers=16, forward_tile=(3, 32), grad_tile=(4, 16)),
    "avx512": VectorUnit("avx512", lanes=16, registers=32, forward_tile=(4, 64),
                         grad_tile=(4, 32)),
}
ENV_VAR = "MINICNN_VECTOR_UNIT"

_forced = None          # a name set by use_vector_unit(), else None (environment, then host)


def host_cpu_features():
    """{feature: bool} as LLVM (and so numba) sees this CPU, e.g. {"avx2": True, ...}."""
    import llvmlite.binding as llvm
    return dict(llvm.get_host_cpu_features())


PREFER_256_BIT = "prefer-256-bit"      # LLVM's x86 tuning flag: vectorize with ymm only


def features_with_512_bit_vectors(features):
    """LLVM's feature string ``features`` ("+avx2,+avx512f,-amx-tile,...") with the
    "prefer-256-bit" tuning switched off, so the vectorizer may use zmm registers."""
    kept = [f for f in features.split(",") if f and f.lstrip("+-") != PREFER_256_BIT]
    return ",".join(kept + ["-" + PREFER_256_BIT])


def wide_vector_features():
    """The NUMBA_CPU_FEATURES value that lets numba use this CPU's 512-bit vectors:
    the host's features (as numba would use them) without "prefer-256-bit"; None when
    the CPU has no avx512f."""
    import llvmlite.binding as llvm
    features = llvm.get_host_cpu_features()
    if not features.get("avx512f", False):
        return None
    return features_with_512_bit_vectors(features.flatten())


@functools.lru_cache(maxsize=None)
def llvm_emits_512_bit_vectors():
    """True when numba's LLVM vectorizes a plain float32 loop with 512-bit (zmm)
    registers on this CPU. Compiles one small loop (about a second)."""
    import numba
    import numpy as np

    @numba.njit(fastmath={"contract"})
    def fma_loop(a, b, c):
        for i in range(a.size):
            c[i] += a[i] * b[i]
    ones = np.ones(64, np.float32)
    fma_loop(ones, ones, ones.copy())
    return any("zmm" in asm for asm in fma_loop.inspect_asm().values())


@functools.lru_cache(maxsize=None)
def host_vector_unit():
    """The unit this CPU runs best: "avx512" if it has avx512f and LLVM emits
    512-bit code for it, else "avx2"."""
    if not host_cpu_features().get("avx512f", False):
        return "avx2"
    return "avx512" if llvm_emits_512_bit_vectors() else "avx2"


def check_unit_name(name, where):
    if name not in UNITS:
        raise ValueError(f"{where}: expected one of {sorted(UNITS)}, got {name!r}")
    return name


def vector_unit():
    """The VectorUnit the tiles are shaped for now: use_vector_unit()'s choice, else
    $MINICNN_VECTOR_UNIT, else host_vector_unit()."""
    if _forced is not None:
        return UNITS[_forced]
    from_env = os.environ.get(ENV_VAR, "").strip()
    if from_env:
        return UNITS[check_unit_name(from_env, f"${ENV_VAR}")]
    return UNITS[host_vector_unit()]


def use_vector_unit(name):
    """Shape the tiles for ``name`` ("avx2" or "avx512"; None: back to the environment
    and the host) from the next call on. Returns the previous forced name (or None)."""
    global _forced
    if name is not None:
        check_unit_name(name, "use_vector_unit")
    previous, _forced = _forced, name
    return previous


def forward_tile_width(F):
    """FB of the forward-type tile for a product with F output channels: the unit's
    wide FB when it divides F, else 32 (the AVX2 tile); the caller checks F % 32."""
    FB = vector_unit().forward_tile[1]
    return FB if F % FB == 0 else 32


def grad_tile_width(F):
    """FB of the dW tile for F output channels: the unit's when it divides F, else 16."""
    FB = vector_unit().grad_tile[1]
    return FB if F % FB == 0 else 16
