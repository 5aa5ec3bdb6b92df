"""Both tile sets (fast/vectors.py) on any machine: the AVX2 tiles and the AVX-512 ones
(4 x 64 forward, 4 x 32 dW), forced with use_vector_unit. On an AVX2-only CPU the
AVX-512 tiles compile to AVX2 instructions: slower, but the sums must be the same."""
import numpy as np
import pytest

import minicnn.fast.conv_direct as conv_direct
import minicnn.fast.conv_winograd as conv_winograd
from minicnn.fast import vectors
from minicnn.fast.conv_direct import direct_forward, direct_weight_grad
from minicnn.fast.conv_winograd import winograd_forward, winograd_weight_grad
from minicnn.fast.kernels.direct import (direct_conv_reference, direct_weight_grad_reference,
                                         tile_width)
from minicnn.fast.kernels.winograd import weight_transform
from minicnn.nn import Conv2D

from helpers import rel_err

UNITS = ["avx2", "avx512"]
WINOGRAD_TOL = 2e-4          # float32 rounding of the transforms (as in test_winograd.py)


@pytest.fixture
def unit(request, monkeypatch):
    """Force the tile set named by the test's parameter, and restore it afterwards."""
    monkeypatch.delenv(vectors.ENV_VAR, raising=False)
    previous = vectors.use_vector_unit(request.param)
    yield vectors.UNITS[request.param]
    vectors.use_vector_unit(previous)


def record_arg(monkeypatch, module, name, index):
    """Record argument ``index`` of every call to module.<name>."""
    seen, real = [], getattr(module, name)

    def wrapper(*args, **kwargs):
        seen.append(args[index])
        return real(*args, **kwargs)
    monkeypatch.setattr(module, name, wrapper)
    return seen


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].split() for line in f
                         if line.startswith("flags")), None)
    except OSError:
        return None


def test_host_unit_is_avx2_without_avx512f():
    flags = cpu_flags()
    if flags is None:
        pytest.skip("no /proc/cpuinfo flags on this system")
    assert vectors.host_cpu_features().get("avx512f", False) == ("avx512f" in flags)
    if "avx512f" not in flags:
        assert vectors.host_vector_unit() == "avx2"
        assert not vectors.llvm_emits_512_bit_vectors()   # the asm probe sees no zmm here
    else:
        assert vectors.host_vector_unit() in UNITS


def test_prefer_256_bit_is_switched_off_and_nothing_else_changes():
    assert (vectors.features_with_512_bit_vectors("+avx2,+prefer-256-bit,+avx512f,-amx-tile")
            == "+avx2,+avx512f,-amx-tile,-prefer-256-bit")
    assert vectors.features_with_512_bit_vectors("+avx2,+fma") == "+avx2,+fma,-prefer-256-bit"


def test_wide_features_only_for_cpus_with_avx512f(monkeypatch):
    import llvmlite.binding as llvm

    class Features(dict):
        def flatten(self):
            return ",".join(("+" if on else "-") + name for name, on in self.items())
    monkeypatch.setattr(llvm, "get_host_cpu_features",
                        lambda: Features(avx2=True, avx512f=False))
    assert vectors.wide_vector_features() is None
    monkeypatch.setattr(llvm, "get_host_cpu_features",
                        lambda: Features(avx2=True, avx512f=True))
    assert vectors.wide_vector_features() == "+avx2,+avx512f,-prefer-256-bit"


def features_after_import(env_changes, first="minicnn"):
    """NUMBA_CPU_FEATURES and the host unit in a fresh process that imports ``first``,
    then minicnn, with the environment changed by ``env_changes`` (None: removed)."""
    import json
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CPU_FEATURES", vectors.ENV_VAR)}
    env.update({k: v for k, v in env_changes.items() if v is not None})
    code = (f"import os, json, {first}, minicnn; from minicnn.fast import vectors; "
            "print(json.dumps([os.environ.get('NUMBA_CPU_FEATURES'), vectors.host_vector_unit()]))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.splitlines()[-1])


def test_import_lets_numba_use_512_bit_vectors_on_avx512_cpus():
    wide = vectors.wide_vector_features()
    features, unit = features_after_import({})
    if wide is None:                                   # an AVX2-only CPU: nothing is set
        assert features is None and unit == "avx2"
    else:
        assert features == wide and features.endswith(",-prefer-256-bit")
        assert unit == "avx512"                        # the asm probe now sees zmm code


def test_import_leaves_numba_alone_when_told_or_too_late():
    assert features_after_import({"NUMBA_CPU_FEATURES": "+avx2,+fma"})[0] == "+avx2,+fma"
    assert features_after_import({vectors.ENV_VAR: "avx2"})[0] is None
    assert features_after_import({}, first="numba")[0] is None


def test_environment_and_run_time_choice(monkeypatch):
    monkeypatch.setenv(vectors.ENV_VAR, "avx512")
    assert vectors.vector_unit().name == "avx512"
    monkeypatch.setenv(vectors.ENV_VAR, "avx2")
    assert vectors.vector_unit().name == "avx2"
    previous = vectors.use_vector_unit("avx512")          # run time beats the environment
    try:
        assert vectors.vector_unit().name == "avx512"
    finally:
        vectors.use_vector_unit(previous)
    assert vectors.vector_unit().name == "avx2"
    monkeypatch.delenv(vectors.ENV_VAR)
    assert vectors.vector_unit().name == vectors.host_vector_unit()


def test_bad_unit_names_are_refused(monkeypatch):
    with pytest.raises(ValueError, match=r"use_vector_unit: expected one of \['avx2', 'avx512'\], "
                                         r"got 'sse'"):
        vectors.use_vector_unit("sse")
    monkeypatch.setenv(vectors.ENV_VAR, "AVX-512")
    with pytest.raises(ValueError, match=r"\$MINICNN_VECTOR_UNIT: expected one of .*got 'AVX-512'"):
        vectors.vector_unit()


@pytest.mark.parametrize("unit", UNITS, indirect=True)
def test_tile_widths_follow_the_unit(unit):
    wide = unit.name == "avx512"
    assert tile_width(256, 8) == (64 if wide else 16)     # AVX2: 4 x 16 fits 8 pixels better
    assert tile_width(128, 32) == (64 if wide else 32)
    assert tile_width(96, 32) == 32                       # 64 does not divide 96
    assert tile_width(48, 16) == 24                       # only 24 and 16 divide 48
    assert vectors.forward_tile_width(192) == (64 if wide else 32)
    assert vectors.forward_tile_width(96) == 32
    assert vectors.grad_tile_width(64) == (32 if wide else 16)
    assert vectors.grad_tile_width(48) == 16


def test_weight_transform_blocks_of_64_hold_the_blocks_of_32():
    W = np.random.default_rng(0).standard_normal((3, 3, 8, 128)).astype(np.float32)
    U32, U64 = weight_transform(W, 32), weight_transform(W, 64)      # (36, F/FB, C, FB)
    assert U32.shape == (36, 4, 8, 32) and U64.shape == (36, 2, 8, 64)
    np.testing.assert_array_equal(U64[:, :, :, :32], U32[:, 0::2])
    np.testing.assert_array_equal(U64[:, :, :, 32:], U32[:, 1::2])


# (N, H, W, C, F, KH, KW, pad top, left, bottom, right): rows 4 pixels wide and not,
# F = 64 and 128 (wide tiles) and 96 (the 32 tile on either unit), whole padding rows;
# F = 32: the AVX-512 8 x 32 tile on rows of 8 pixels and more (13: the last tile shifted
# back), 3 x 32 on rows of 7; C = 3 and 4: dW's tile rows per (kw, c), 8 + 4 of them
DIRECT_CASES = [(2, 6, 16, 8, 64, 3, 3, 1, 1, 1, 1), (1, 7, 13, 16, 128, 3, 3, 1, 1, 1, 1),
                (2, 5, 9, 4, 96, 3, 3, 2, 1, 0, 1), (1, 5, 8, 4, 64, 3, 3, 3, 1, 3, 1),
                (3, 4, 6, 12, 64, 2, 2, 0, 0, 1, 1), (2, 5, 13, 4, 32, 3, 3, 1, 1, 1, 1),
                (3, 6, 16, 8, 32, 3, 3, 1, 1, 1, 1), (2, 4, 7, 4, 32, 3, 3, 1, 1, 1, 1),
                (2, 6, 12, 3, 32, 3, 3, 1, 1, 1, 1)]


@pytest.mark.parametrize("unit", UNITS, indirect=True)
@pytest.mark.parametrize("case", DIRECT_CASES)
def test_direct_forward_and_weight_grad_on_both_units(unit, case, monkeypatch):
    N, H, W, C, F, KH, KW, pt, pl, pb, pr = case
    rng = np.random.default_rng(sum(case))
    x = rng.standard_normal((N, H, W, C)).astype(np.float32)
    Wt = rng.standard_normal((KH, KW, C, F)).astype(np.float32)
    b = rng.standard_normal(F).astype(np.float32)
    OH, OW = H + pt + pb - KH + 1, W + pl + pr - KW + 1
    packed = record_arg(monkeypatch, conv_direct, "pack_weights", 1)
    pixels = record_arg(monkeypatch, conv_direct, "conv_images", 12)
    y = direct_forward(x, Wt, b, pt, pl, OH, OW, relu=True)
    ref = np.maximum(direct_conv_reference(x.astype(np.float64), Wt.astype(np.float64),
                                           pt, pl, OH, OW) + b, 0)
    assert rel_err(y, ref) < 1e-5
    assert packed == [tile_width(F, OW)]
    if unit.name == "avx512" and F % 64 == 0 and OW % 4 == 0:
        assert packed == [64]                             # the 4 x 64 tile ran
    wide_32 = unit.name == "avx512" and packed == [32] and OW >= 8
    assert set(pixels) == {8 if wide_32 else 3 if packed == [32] else 4}
    dy = rng.standard_normal((N, OH, OW, F)).astype(np.float32)
    dW = direct_weight_grad(x, dy, KH, KW, pt, pl, reduce_groups=2)
    ref_dW = direct_weight_grad_reference(x.astype(np.float64), dy.astype(np.float64),
                                          KH, KW, pt, pl)
    assert dW.shape == (KH, KW, C, F) and rel_err(dW, ref_dW) < 1e-5


# (N, H, W, C, F, pad): fewer Winograd tiles than a product tile takes (4 x 4 map: one
# tile), a row count 4 does not divide, F = 64 / 128 / 96, C = 12 (8 does not divide it:
# the AVX-512 dW falls back from 8 x 32 to 4 x 32 tiles), C = 136 (above
# MAX_WIDE_TILE_CHANNELS: the AVX-512 forward runs 8 x 32 although 64 divides F)
WINOGRAD_CASES = [(2, 8, 8, 16, 64, 1), (1, 4, 4, 16, 64, 1), (3, 11, 23, 16, 128, 1),
                  (2, 7, 9, 32, 96, 0), (2, 16, 16, 64, 64, 1), (2, 8, 8, 12, 64, 1),
                  (2, 6, 6, 136, 64, 1)]


@pytest.mark.parametrize("unit", UNITS, indirect=True)
@pytest.mark.parametrize("N,H,W,C,F,pad", WINOGRAD_CASES)
def test_winograd_forward_and_weight_grad_on_both_units(unit, N, H, W, C, F, pad, monkeypatch):
    rng = np.random.default_rng(N + H + W + C + F)
    x = rng.standard_normal((N, H, W, C)).astype(np.float32)
    Wt = rng.standard_normal((3, 3, C, F)).astype(np.float32)
    b = rng.standard_normal(F).astype(np.float32)
    OH, OW = H + 2 * pad - 2, W + 2 * pad - 2
    transforms = record_arg(monkeypatch, conv_winograd, "parallel_weight_transform", 1)
    product_tiles = record_arg(monkeypatch, conv_winograd, "winograd_rows", 6)       # P
    y = winograd_forward(x, Wt, b, pad, pad, OH, OW)
    ref = direct_conv_reference(x.astype(np.float64), Wt.astype(np.float64), pad, pad, OH, OW) + b
    assert rel_err(y, ref) < WINOGRAD_TOL
    wide = unit.name == "avx512" and F % 64 == 0 and C <= conv_winograd.MAX_WIDE_TILE_CHANNELS
    assert transforms == [64 if wide else 32]
    if unit.name == "avx512":                  # 4 x 64, else 8 x 32 (3 x 32: 6 zmm only)
        assert set(product_tiles) == {4 if wide else 8}
    else:
        assert set(product_tiles) == {3}
    dy = rng.standard_normal((N, OH, OW, F)).astype(np.float32)
    grad_tiles = record_arg(monkeypatch, conv_winograd, "winograd_grad_rows", 15)   # P
    dW = winograd_weight_grad(x, dy, pad, pad, reduce_groups=3)
    wide = unit.name == "avx512" and F % 32 == 0
    assert set(grad_tiles) == {8 if wide and C % 8 == 0 else 4}
    ref_dW = direct_weight_grad_reference(x.astype(np.float64), dy.astype(np.float64),
                                          3, 3, pad, pad)
    assert rel_err(dW, ref_dW) < WINOGRAD_TOL


@pytest.mark.parametrize("C,F,H", [(64, 64, 16), (64, 128, 8), (32, 64, 32)])
def test_conv2d_gives_the_same_numbers_on_both_units(C, F, H):
    """A whole Conv2D pass (every algorithm the rule picks) under each tile set: the
    tiles sum in other orders, so equal to float32 rounding, not bit for bit."""
    rng = np.random.default_rng(C + F + H)
    x = rng.standard_normal((4, H, H, C)).astype(np.float32)
    results = {}
    for name in UNITS:
        previous = vectors.use_vector_unit(name)
        try:
            layer = Conv2D(C, F, 3, padding="same", rng=1)
            y = layer.forward(x, training=True)
            dy = np.random.default_rng(7).standard_normal(y.shape).astype(np.float32)
            results[name] = (y, layer.backward(dy), layer.grads["W"].copy())
        finally:
            vectors.use_vector_unit(previous)
    for got, want in zip(results["avx512"], results["avx2"]):
        assert rel_err(got, want) < WINOGRAD_TOL
