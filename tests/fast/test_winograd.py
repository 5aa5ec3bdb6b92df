"""The Winograd convolutions: F(4x4, 3x3) for forward and dx (fast/kernels/winograd.py) and
F(3x3, 4x4) for dW (fast/kernels/winograd_grad.py), driven by fast/conv_winograd.py: against
direct sums, their NumPy twins, and Conv2D's other paths."""
import numpy as np
import pytest

import minicnn.fast.conv_winograd as cw
from minicnn.fast import vectors
from minicnn.fast.conv_direct import direct_forward
from minicnn.fast.conv_winograd import winograd_forward, winograd_weight_grad
from minicnn.fast.kernels.direct import direct_conv_reference
from minicnn.fast.kernels.winograd import (G, weight_transform, weight_transform_over_slices,
                                           winograd_reference)
from minicnn.fast.kernels.winograd_grad import winograd_weight_grad_reference

from helpers import forward_backward, rel_err, spy

WINOGRAD_TOL = 3e-5     # float32: the transforms scale by up to 8 and 1/24 (kernels/winograd.py)


# ---- F(4x4, 3x3): forward and dx ------------------------------------------------------
def test_weight_transform_is_G_g_Gt_packed():
    W = np.random.default_rng(0).standard_normal((3, 3, 5, 64))
    want = np.einsum("ai,ijcf,bj->abcf", G, W, G).reshape(36, 5, 64)
    got = weight_transform(W)                                   # (36, F/32, C, 32)
    assert got.shape == (36, 2, 5, 32)
    np.testing.assert_allclose(got.transpose(0, 2, 1, 3).reshape(36, 5, 64), want,
                               rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("C", [7, 19])       # fewer channels than one pass; two and a part
def test_weight_transform_equals_the_sums_over_slices_bit_for_bit(C):
    """The compiled loop sums in the order the plain float64 formula does (G g over i,
    then over j), so the packed result is the same to the last bit, also when computed
    over ranges of channels that cut its passes (kernels/winograd.py, CHANNELS_PER_PASS)."""
    from minicnn.fast.kernels.winograd import weight_transform_into
    rng = np.random.default_rng(C)
    W = (rng.standard_normal((3, 3, C, 64)) * 10.0 ** rng.integers(-4, 3, (3, 3, C, 64)))
    W = W.astype(np.float32)
    want = weight_transform_over_slices(W)                                 # (36, 2, C, 32)
    np.testing.assert_array_equal(weight_transform(W), want)
    np.testing.assert_array_equal(weight_transform(W, 64), weight_transform_over_slices(W, 64))
    split = np.full_like(want, np.nan)
    for c0, c1 in ((0, 3), (3, C - 2), (C - 2, C)):                       # three ranges cover C
        weight_transform_into(W, G, split, c0, c1)
    np.testing.assert_array_equal(split, want)
    exact = np.einsum("ai,ijcf,bj->abcf", G, W.astype(np.float64), G).reshape(36, C, 64)
    np.testing.assert_allclose(want.transpose(0, 2, 1, 3).reshape(36, C, 64), exact,
                               rtol=1e-6, atol=1e-6 * np.abs(exact).max())


def test_weight_transform_makes_no_blas_call():
    """The transform runs right before the Winograd blocks: a multi-threaded BLAS product
    in it would leave OpenBLAS's threads spinning and slow what follows (the CPU time they
    burn is measured by benchmarks/bench_spinning_threads.py). Checked on the compiled
    code: numba turns np.dot / @ into calls to its BLAS wrappers (numba_xxgemm, ...),
    and the kernel's machine code has none; a compiled product does (the check works).
    The kernel is compiled afresh here: numba shows no machine code for a kernel it
    loaded from its on-disk cache."""
    from numba import njit
    from minicnn.fast.kernels.winograd import weight_transform_into
    weight_transform(np.zeros((3, 3, 4, 32), np.float32))                   # compiles it
    options = {k: v for k, v in weight_transform_into.targetoptions.items()
               if k not in ("cache", "nopython")}
    fresh = njit(**options)(weight_transform_into.py_func)
    for signature in weight_transform_into.signatures:
        fresh.compile(signature)
    asm = "\n".join(fresh.inspect_asm().values())
    assert len(asm) > 1000 and ("vfmadd" in asm or "vmul" in asm)   # real machine code
    assert "numba_xxgemm" not in asm and "gemm" not in asm.lower()

    @njit
    def product(a, b):
        return a @ b
    product(np.ones((2, 2)), np.ones((2, 2)))
    assert "numba_xxgemm" in "\n".join(product.inspect_asm().values())


@pytest.mark.parametrize("N,H,W,C,F,pt,pl,pb,pr", [
    (2, 7, 7, 8, 32, 1, 1, 1, 1), (3, 6, 5, 4, 64, 1, 1, 1, 1), (1, 8, 9, 3, 32, 0, 0, 0, 0),
    (2, 5, 6, 16, 96, 2, 1, 0, 1), (4, 3, 3, 2, 32, 1, 1, 1, 1), (1, 15, 15, 64, 32, 1, 1, 1, 1),
    (5, 16, 16, 32, 64, 1, 1, 1, 1), (3, 13, 22, 24, 32, 1, 1, 1, 1),
    (1, 4, 8, 16, 32, 1, 1, 1, 1), (2, 7, 9, 16, 32, 2, 2, 2, 2), (2, 9, 7, 16, 32, 0, 2, 2, 0),
    (2, 9, 9, 64, 24, 1, 1, 1, 1), (1, 6, 7, 8, 48, 1, 1, 1, 1), (2, 5, 5, 4, 1, 1, 1, 1, 1)])
@pytest.mark.parametrize("bias,relu", [(False, False), (True, False), (True, True)])
def test_winograd_matches_direct_sum_and_twin(N, H, W, C, F, pt, pl, pb, pr, bias, relu):
    rng = np.random.default_rng(N + H + W + C + F)
    x = rng.standard_normal((N, H, W, C)).astype(np.float32)
    Wt = rng.standard_normal((3, 3, C, F)).astype(np.float32)
    b = rng.standard_normal(F).astype(np.float32) if bias else None
    OH, OW = H + pt + pb - 2, W + pl + pr - 2
    y = winograd_forward(x, Wt, b, pt, pl, OH, OW, relu)
    ref = direct_conv_reference(x.astype(np.float64), Wt.astype(np.float64), pt, pl, OH, OW)
    if bias:
        ref = ref + b
    twin = winograd_reference(x.astype(np.float64), Wt.astype(np.float64), b, pt, pl, OH, OW)
    np.testing.assert_allclose(twin, ref, rtol=1e-10, atol=1e-10)        # the algorithm is exact
    if relu:
        ref = np.maximum(ref, 0)
    assert y.shape == (N, OH, OW, F) and y.dtype == np.float32
    assert rel_err(y, ref) < WINOGRAD_TOL                                 # float32 rounding


@pytest.mark.parametrize("tiles_per_block", [1, 2, 5])
@pytest.mark.parametrize("unit", ["avx2", "avx512"])
def test_winograd_any_block_size_gives_the_same_result(monkeypatch, tiles_per_block, unit):
    """Blocks of one tile row, blocks with fewer tiles than a product takes (3 on the
    AVX2 tile set, 4 on AVX-512's), a short last block: all give what the default
    blocking gives (each output is summed in a fixed order)."""
    previous = vectors.use_vector_unit(unit)
    try:
        rng = np.random.default_rng(tiles_per_block)
        x = rng.standard_normal((3, 11, 23, 16)).astype(np.float32)
        Wt = rng.standard_normal((3, 3, 16, 64)).astype(np.float32)
        want = winograd_forward(x, Wt, None, 1, 1, 11, 23)
        monkeypatch.setattr(cw, "TILES_PER_BLOCK", tiles_per_block)
        np.testing.assert_array_equal(winograd_forward(x, Wt, None, 1, 1, 11, 23), want)
    finally:
        vectors.use_vector_unit(previous)
    ref = direct_conv_reference(x.astype(np.float64), Wt.astype(np.float64), 1, 1, 11, 23)
    assert rel_err(want, ref) < WINOGRAD_TOL


@pytest.mark.parametrize("l2,C,F,want", [(2 * 2 ** 20, 256, 256, 48), (2 * 2 ** 20, 64, 256, 48),
                                         (2 * 2 ** 20, 32, 32, 64), (2 * 2 ** 20, 64, 64, 32),
                                         (512 * 2 ** 10, 256, 256, 32), (0, 32, 32, 32)])
def test_forward_tiles_per_block_larger_only_with_a_large_l2(monkeypatch, l2, C, F, want):
    """Blocks grow only on cores with LARGE_L2_BYTES of L2 (where it was measured), for
    wide layers (U read once per block) and thin ones; an unknown L2 (0) keeps 32."""
    monkeypatch.setattr(cw, "l2_cache_bytes", lambda: l2)
    assert cw.forward_tiles_per_block(C, F) == want


def test_l2_cache_bytes_reads_linux_sizes_or_gives_zero(tmp_path):
    sizes = {"index0": ("1", "48K"), "index2": ("2", "2048K"), "index3": ("3", "300M")}
    for index, (level, size) in sizes.items():
        (tmp_path / index).mkdir()
        (tmp_path / index / "level").write_text(level + "\n")
        (tmp_path / index / "size").write_text(size + "\n")
    read = cw.l2_cache_bytes.__wrapped__                         # without the cache
    assert read(str(tmp_path)) == 2048 * 1024
    (tmp_path / "index2" / "size").write_text("1M\n")
    assert read(str(tmp_path)) == 2 ** 20
    (tmp_path / "index2" / "size").write_text("garbage\n")
    assert read(str(tmp_path)) == 0                              # unreadable: unknown
    assert read(str(tmp_path / "missing")) == 0


@pytest.mark.parametrize("unit", ["avx2", "avx512"])
@pytest.mark.parametrize("F", [24, 40, 112])
def test_winograd_padded_width_is_the_first_channels_of_the_padded_filters(F, unit):
    """F not a multiple of 32 runs with zero filters up to padded_width(F), and the
    kernel writes only the first F: the same numbers as the padded layer's first F
    channels, with and without bias and ReLU, on both tile sets."""
    previous = vectors.use_vector_unit(unit)
    try:
        rng = np.random.default_rng(F)
        x = rng.standard_normal((2, 9, 10, 16)).astype(np.float32)
        Wt = rng.standard_normal((3, 3, 16, F)).astype(np.float32)
        b = rng.standard_normal(F).astype(np.float32)
        extra = cw.padded_width(F) - F
        W_padded = np.pad(Wt, ((0, 0), (0, 0), (0, 0), (0, extra)))
        for bias, relu in ((None, False), (b, True)):
            got = winograd_forward(x, Wt, bias, 1, 1, 9, 10, relu)
            padded = winograd_forward(x, W_padded, None if bias is None else np.pad(bias, (0, extra)),
                                      1, 1, 9, 10, relu)
            assert got.shape == (2, 9, 10, F) and got.flags.c_contiguous
            np.testing.assert_array_equal(got, padded[..., :F])
    finally:
        vectors.use_vector_unit(previous)


def test_winograd_on_a_strided_input_view():
    """A non-contiguous x (a slice of a bigger array) gives the same result as its copy."""
    rng = np.random.default_rng(1)
    big = rng.standard_normal((4, 12, 12, 64)).astype(np.float32)
    Wt = rng.standard_normal((3, 3, 32, 32)).astype(np.float32)
    view = big[::2, :, :, :32]
    np.testing.assert_array_equal(winograd_forward(view, Wt, None, 1, 1, 12, 12),
                                  winograd_forward(view.copy(), Wt, None, 1, 1, 12, 12))


def test_winograd_refuses_what_it_cannot_do():
    x = np.zeros((1, 6, 6, 4), np.float32)
    W32 = np.zeros((3, 3, 4, 32), np.float32)
    with pytest.raises(ValueError, match="3x3 kernel"):
        winograd_forward(x, np.zeros((5, 5, 4, 32), np.float32), None, 2, 2, 6, 6)
    with pytest.raises(TypeError, match="float32"):
        winograd_forward(x.astype(np.float64), np.zeros((3, 3, 4, 32)), None, 1, 1, 6, 6)
    with pytest.raises(ValueError, match="agree on C"):
        winograd_forward(x, np.zeros((3, 3, 5, 32), np.float32), None, 1, 1, 6, 6)
    with pytest.raises(ValueError, match=">= 0"):
        winograd_forward(x, W32, None, -1, 1, 6, 6)
    with pytest.raises(TypeError, match="integers"):
        winograd_forward(x, W32, None, 1.0, 1, 6, 6)
    with pytest.raises(ValueError, match=r"bias must have shape \(32,\)"):
        winograd_forward(x, W32, np.zeros(16, np.float32), 1, 1, 6, 6)
    with pytest.raises(ValueError, match="empty"):
        winograd_forward(x, W32, None, 0, 0, 0, 4)
    with pytest.raises(ValueError, match=r"bias must have shape \(32,\)"):      # direct, too
        direct_forward(x, W32, np.zeros(33, np.float32), 1, 1, 6, 6)


@pytest.mark.parametrize("C,F,H,padding,calls", [
    (32, 32, 12, "same", 2), (64, 128, 8, "same", 2), (128, 64, 7, "same", 2),
    (24, 64, 9, "same", 2), (16, 64, 9, "same", 1), (32, 32, 11, "valid", 2), (32, 32, 8, 2, 2)])
def test_conv2d_winograd_path_matches_other_path(monkeypatch, C, F, H, padding, calls):
    """Forward and dx by Winograd (checked by a spy; dx with 24 output channels runs
    padded to 32, with 16 it does not: half the tiles would be zeros)
    against the im2col paths only, on maps H x (H + 3) with padding 1, 0 and 2 (dx is
    then padded by 1, 2 and 0)."""
    rng = np.random.default_rng(C + F + H)
    x = rng.standard_normal((3, H, H + 3, C)).astype(np.float32)
    seen = spy(monkeypatch, "winograd_forward")
    fast = forward_backward(C, F, H, padding, x)
    assert seen == ["winograd_forward"] * calls                      # forward (and dx)
    plain = forward_backward(C, F, H, padding, x, allow_winograd=False, allow_direct=False)
    for got, want in zip(fast, plain):
        assert got.shape == want.shape and rel_err(got, want) < WINOGRAD_TOL


# ---- F(3x3, 4x4): dW ---------------------------------------------------------------------
def dW_direct_sum(x, dy, pt, pl):
    """dW[kh, kw] = sum over images and pixels of x_pad[i + kh, j + kw] dy[i, j], float64."""
    N, H, W, C = x.shape
    OH, OW = dy.shape[1:3]
    xp = np.zeros((N, OH + 2, OW + 2, C))
    h, w = min(H, OH + 2 - pt), min(W, OW + 2 - pl)
    xp[:, pt:pt + h, pl:pl + w] = x[:, :h, :w]
    return np.stack([np.stack([np.einsum("nijc,nijf->cf", xp[:, kh:kh + OH, kw:kw + OW], dy)
                               for kw in range(3)]) for kh in range(3)])


@pytest.mark.parametrize("N,H,W,C,F,pt,pl,pb,pr", [
    (2, 8, 8, 4, 16, 1, 1, 1, 1), (3, 7, 9, 8, 32, 1, 1, 1, 1), (1, 10, 6, 4, 16, 0, 2, 2, 0),
    (2, 5, 5, 12, 16, 2, 2, 2, 2), (2, 16, 16, 32, 64, 1, 1, 1, 1), (1, 3, 4, 4, 48, 1, 1, 1, 1)])
def test_winograd_weight_grad_matches_direct_sum_and_twin(N, H, W, C, F, pt, pl, pb, pr):
    rng = np.random.default_rng(N + H + W + C + F)
    OH, OW = H + pt + pb - 2, W + pl + pr - 2
    x = rng.standard_normal((N, H, W, C)).astype(np.float32)
    dy = rng.standard_normal((N, OH, OW, F)).astype(np.float32)
    want = dW_direct_sum(x.astype(np.float64), dy.astype(np.float64), pt, pl)
    twin = winograd_weight_grad_reference(x.astype(np.float64), dy.astype(np.float64), pt, pl)
    np.testing.assert_allclose(twin, want, rtol=1e-10, atol=1e-10)        # the algorithm is exact
    got = winograd_weight_grad(x, dy, pt, pl, 4)
    assert got.shape == (3, 3, C, F) and got.dtype == np.float32
    assert rel_err(got, want) < WINOGRAD_TOL


@pytest.mark.parametrize("tiles_per_block,groups", [(1, 4), (2, 3), (5, 1), (100, 2)])
def test_winograd_weight_grad_any_blocking_same_numbers(monkeypatch, tiles_per_block, groups):
    """The same groups give bit-identical results whatever the block size or thread
    timing; other groupings agree to rounding."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 11, 13, 8)).astype(np.float32)
    dy = rng.standard_normal((3, 11, 13, 16)).astype(np.float32)
    base = winograd_weight_grad(x, dy, 1, 1, groups)
    np.testing.assert_array_equal(winograd_weight_grad(x, dy, 1, 1, groups), base)
    monkeypatch.setattr(cw, "GRAD_TILES_PER_BLOCK", tiles_per_block)
    got = winograd_weight_grad(x, dy, 1, 1, groups)
    assert rel_err(got, dW_direct_sum(x.astype(np.float64), dy.astype(np.float64), 1, 1)) < WINOGRAD_TOL


@pytest.mark.parametrize("unit", ["avx2", "avx512"])
@pytest.mark.parametrize("N,H,W,C,F,tiles_per_block", [
    (2, 8, 8, 4, 16, 128), (3, 7, 9, 8, 64, 5), (2, 11, 13, 12, 32, 1), (2, 7, 7, 132, 128, 128),
    (2, 7, 7, 136, 128, 128)])
def test_winograd_weight_grad_wide_layers_pad_rows_apart(monkeypatch, unit, N, H, W, C, F,
                                                         tiles_per_block):
    """Wide layers (C * F above WIDE_DW_ABOVE; forced here on small layers too, and at
    132 and 136 x 128 without forcing) lay V's and E's tiles DW_ROW_PAD floats further
    apart: the same sums in the same order, so the same bits as side by side (the same
    blocks with DW_ROW_PAD = 0), on every tile (AVX-512: 8 x 32 where 8 divides C, else
    4 x 32, 4 x 16 where 32 does not divide F; AVX2: 4 x 16)."""
    from minicnn.fast.kernels import winograd_grad
    rng = np.random.default_rng(C + F)
    x = rng.standard_normal((N, H, W, C)).astype(np.float32)
    dy = rng.standard_normal((N, H, W, F)).astype(np.float32)
    want = dW_direct_sum(x.astype(np.float64), dy.astype(np.float64), 1, 1)
    monkeypatch.setattr(cw, "WIDE_GRAD_TILES_PER_BLOCK", tiles_per_block)
    monkeypatch.setattr(cw, "WIDE_DW_ABOVE", min(cw.WIDE_DW_ABOVE, C * F - 1))  # wide
    strides = []
    real_rows = winograd_grad.winograd_grad_rows

    def recording_rows(*args):
        strides.append(args[13:15])                      # V_tile_stride, E_tile_stride
        return real_rows(*args)
    monkeypatch.setattr(cw, "winograd_grad_rows", recording_rows)
    previous = vectors.use_vector_unit(unit)
    try:
        got = winograd_weight_grad(x, dy, 1, 1, 2)
        padded = set(strides)
        strides.clear()
        monkeypatch.setattr(cw, "DW_ROW_PAD", 0)
        side_by_side = winograd_weight_grad(x, dy, 1, 1, 2)
    finally:
        vectors.use_vector_unit(previous)
    assert padded == {(C + 16, F + 16)} and set(strides) == {(C, F)}   # each layout ran
    assert rel_err(got, want) < WINOGRAD_TOL
    np.testing.assert_array_equal(got, side_by_side)


@pytest.mark.parametrize("n_groups,C,F", [(1, 5, 7), (4, 8, 16), (3, 12, 48), (4, 19, 32)])
def test_weight_grad_output_transform_kernel_equals_numpy_twin_bit_for_bit(n_groups, C, F):
    """The compiled dW tail (the groups summed in order, then G^T M G, all in float64)
    is the NumPy formula to the last bit, on any range of channels."""
    from minicnn.fast.kernels.winograd_grad import (weight_grad_output_transform,
                                                    weight_grad_output_transform_into)
    M_groups = (np.random.default_rng(C).standard_normal((n_groups, 36, C, F)) * 1e3).astype(np.float32)
    want = weight_grad_output_transform(M_groups.sum(axis=0, dtype=np.float64), np.float32)
    whole, split = np.empty((3, 3, C, F), np.float32), np.full((3, 3, C, F), np.nan, np.float32)
    weight_grad_output_transform_into(M_groups, G, whole, 0, C)
    for c0, c1 in ((0, 2), (2, C - 1), (C - 1, C)):                   # three ranges cover C
        weight_grad_output_transform_into(M_groups, G, split, c0, c1)
    np.testing.assert_array_equal(whole, want)
    np.testing.assert_array_equal(split, want)
    exact = np.einsum("ai,abcf,bj->ijcf", G, M_groups.astype(np.float64).sum(axis=0)
                      .reshape(6, 6, C, F), G)
    np.testing.assert_allclose(want, exact, rtol=1e-5, atol=1e-2)


@pytest.mark.parametrize("threshold", [0, 10 ** 9])
def test_large_layers_share_the_weight_transforms_with_the_same_bits(monkeypatch, threshold):
    """Above SHARED_TRANSFORMS_ABOVE the weight transforms (U, and dW's tail) run on
    ranges of input channels on every core: every channel exactly once, and the same
    U and dW to the last bit as one call over all channels."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 9, 9, 24)).astype(np.float32)
    Wt = rng.standard_normal((3, 3, 24, 64)).astype(np.float32)
    dy = rng.standard_normal((2, 9, 9, 64)).astype(np.float32)
    monkeypatch.setattr(cw, "SHARED_TRANSFORMS_ABOVE", threshold)
    ranges = []
    real = cw.weight_transform_into
    monkeypatch.setattr(cw, "weight_transform_into",
                        lambda W, G_, U, c0, c1: ranges.append((c0, c1)) or real(W, G_, U, c0, c1))
    U = cw.parallel_weight_transform(Wt, 32)
    covered = sorted(c for c0, c1 in ranges for c in range(c0, c1))
    assert covered == list(range(24))                                  # each channel once
    assert (len(ranges) > 1) == (threshold == 0)                       # shared out or not
    np.testing.assert_array_equal(U, weight_transform(Wt, 32))         # the serial kernel
    y = winograd_forward(x, Wt, None, 1, 1, 9, 9)
    dW = winograd_weight_grad(x, dy, 1, 1, 4)
    monkeypatch.setattr(cw, "SHARED_TRANSFORMS_ABOVE", 10 ** 9 - threshold)   # the other way
    np.testing.assert_array_equal(winograd_forward(x, Wt, None, 1, 1, 9, 9), y)
    np.testing.assert_array_equal(winograd_weight_grad(x, dy, 1, 1, 4), dW)
    ref = dW_direct_sum(x.astype(np.float64), dy.astype(np.float64), 1, 1)
    assert rel_err(dW, ref) < WINOGRAD_TOL


@pytest.mark.parametrize("row_pad", [0, 16])
def test_winograd_grad_rows_without_accumulate_ignores_what_m_held(row_pad):
    """A group's first block sets M (accumulate=False): NaN left in M by an earlier use
    of the memory must not reach dW. Same bits as adding to zeros; scratch full of NaN
    is overwritten before it is read."""
    from minicnn.fast.kernels.winograd_grad import winograd_grad_rows
    rng = np.random.default_rng(9)
    N, H, W, C, F = 2, 9, 11, 8, 32
    x = rng.standard_normal((N, H, W, C)).astype(np.float32)
    dy = rng.standard_normal((N, H, W, F)).astype(np.float32)
    TH, TW = 3, 3
    T = N * TH * TW

    def run(M, accumulate):
        nan = lambda size: np.full(size, np.nan, np.float32)        # noqa: E731
        Cs, Fs = C + row_pad, F + row_pad                          # tile strides in V, E
        winograd_grad_rows(x, dy, 0, N * TH, 1, 1, M, nan(24 * (TW + 1) * C), nan(36 * TW * C),
                           nan(36 * T * Cs), nan(16 * TW * F), nan(24 * TW * F),
                           nan(36 * T * Fs), Cs, Fs, 4, 32, accumulate, np.empty(0, np.int8),
                           H, W)
        return M
    set_on_nan = run(np.full((36, C, F), np.nan, np.float32), False)
    added_to_zeros = run(np.zeros((36, C, F), np.float32), True)
    assert np.isfinite(set_on_nan).all()
    np.testing.assert_array_equal(set_on_nan, added_to_zeros)
    twice = run(added_to_zeros.copy(), True)                          # accumulate: adds
    np.testing.assert_allclose(twice, 2 * added_to_zeros, rtol=1e-6, atol=1e-4)


def test_winograd_weight_grad_refuses_what_it_cannot_do():
    x = np.zeros((2, 8, 8, 4), np.float32)
    with pytest.raises(ValueError, match="multiple of 4"):
        winograd_weight_grad(np.zeros((2, 8, 8, 3), np.float32), np.zeros((2, 8, 8, 16), np.float32), 1, 1, 4)
    with pytest.raises(ValueError, match="multiple of 4"):             # F % 16
        winograd_weight_grad(x, np.zeros((2, 8, 8, 8), np.float32), 1, 1, 4)
    with pytest.raises(ValueError, match="batch"):
        winograd_weight_grad(x, np.zeros((3, 8, 8, 16), np.float32), 1, 1, 4)
    with pytest.raises(TypeError, match="float32"):
        winograd_weight_grad(x.astype(np.float64), np.zeros((2, 8, 8, 16)), 1, 1, 4)


@pytest.mark.parametrize("C,F,H,padding", [(32, 32, 12, "same"), (24, 64, 9, "same"),
                                           (8, 16, 10, "valid"), (16, 48, 8, 2)])
def test_conv2d_winograd_weight_grad_matches_other_path(monkeypatch, C, F, H, padding):
    """dW (and db) of the whole layer with the Winograd dW (checked by a spy) against the
    im2col paths only."""
    rng = np.random.default_rng(C + F + H)
    x = rng.standard_normal((2, H, H + 2, C)).astype(np.float32)
    seen = spy(monkeypatch, "winograd_weight_grad")
    fast = forward_backward(C, F, H, padding, x)
    assert seen == ["winograd_weight_grad"]
    plain = forward_backward(C, F, H, padding, x, allow_winograd=False, allow_direct=False)
    for got, want in zip(fast, plain):
        assert got.shape == want.shape and rel_err(got, want) < WINOGRAD_TOL


@pytest.mark.parametrize("unit", ["avx2", "avx512"])
@pytest.mark.parametrize("N,H,W,C,F,bias,relu", [(3, 31, 31, 24, 64, False, False),
                                                 (2, 7, 7, 64, 256, False, False),
                                                 (2, 15, 14, 32, 40, True, False),
                                                 (2, 12, 9, 16, 32, True, True)])
def test_winograd_forward_pooled_equals_the_pool_of_its_output(unit, N, H, W, C, F, bias, relu):
    """pool=True: the 2x2, stride-2 max-pool made from each tile's outputs is the
    max-pool kernel's result on the full output, to the last bit, argmax included:
    ties (a zero-filter channel: every tap equal) keep the first tap, a NaN wins and
    stays; odd sizes drop the last row and column as the pool does."""
    from minicnn.fast.kernels.pooling import maxpool_forward
    previous = vectors.use_vector_unit(unit)
    try:
        rng = np.random.default_rng(N + H + W + F)
        x = rng.standard_normal((N, H, W, C)).astype(np.float32)
        x[0, 2, 3, :] = np.nan                                     # NaN outputs around (2, 3)
        Wt = rng.standard_normal((3, 3, C, F)).astype(np.float32) * 0.1
        Wt[..., 1] = 0                                             # channel 1: all taps tie
        b = rng.standard_normal(F).astype(np.float32) if bias else None
        y = winograd_forward(x, Wt, b, 1, 1, H, W, relu)
        want, want_arg = np.empty((N, H // 2, W // 2, F), np.float32), np.empty((N, H // 2, W // 2, F), np.int8)
        maxpool_forward(y, 2, 2, want, want_arg)
        got, got_arg = winograd_forward(x, Wt, b, 1, 1, H, W, relu, pool=True)
    finally:
        vectors.use_vector_unit(previous)
    assert got.shape == want.shape and got_arg.dtype == np.int8
    np.testing.assert_array_equal(got, want)                       # NaN where want has NaN
    np.testing.assert_array_equal(got_arg, want_arg)
    assert np.isnan(got).any() and (got_arg[..., 1] == 0).all() and (got_arg != 0).any()


@pytest.mark.parametrize("wide", [False, True])
@pytest.mark.parametrize("unit", ["avx2", "avx512"])
@pytest.mark.parametrize("N,OH,OW,C,F", [(2, 8, 8, 16, 32), (3, 15, 15, 24, 64),
                                         (2, 7, 9, 64, 32), (2, 12, 10, 32, 48)])
def test_reading_dy_through_the_pool_argmax_gives_the_bits_of_the_unpooled_map(
        monkeypatch, wide, unit, N, OH, OW, C, F):
    """dx, dW and db of a conv whose output went through a 2x2, stride-2 max-pool, from the
    pooled gradient and the argmax (unpool=...), equal those from the pool's backward
    written out (maxpool_backward), to the last bit: odd maps (the last row or column no
    window reaches), ties in the argmax, a NaN in the gradient; dW also on the wide
    layers' padded rows (forced)."""
    from minicnn.fast.kernels.pooling import maxpool_backward, maxpool_forward
    from minicnn.fast.kernels.sums import column_sums, unpooled_column_sums
    if wide:
        monkeypatch.setattr(cw, "WIDE_DW_ABOVE", 0)
    previous = vectors.use_vector_unit(unit)
    try:
        rng = np.random.default_rng(N + OH + OW + C + F)
        x = rng.standard_normal((N, OH, OW, C)).astype(np.float32)    # 'same': the conv's input
        y = rng.standard_normal((N, OH, OW, F)).astype(np.float32)    # the conv's output
        y[:, :2, :2, 0] = 1.0                                         # a tie in one window
        pooled = np.empty((N, OH // 2, OW // 2, F), np.float32)
        arg = np.empty(pooled.shape, np.int8)
        maxpool_forward(y, 2, 2, pooled, arg)
        dy_pooled = rng.standard_normal(pooled.shape).astype(np.float32)
        dy_pooled[0, 1, 1, 2] = np.nan
        dy = np.empty_like(y)
        maxpool_backward(dy_pooled, arg, 2, 2, dy)
        W_flip = rng.standard_normal((3, 3, F, C)).astype(np.float32)
        unpool = (arg, (OH, OW))
        got_dx = winograd_forward(dy_pooled, W_flip, None, 1, 1, OH, OW, unpool=unpool)
        want_dx = winograd_forward(dy, W_flip, None, 1, 1, OH, OW)
        got_dW = winograd_weight_grad(x, dy_pooled, 1, 1, 4, unpool)
        want_dW = winograd_weight_grad(x, dy, 1, 1, 4)
    finally:
        vectors.use_vector_unit(previous)
    got_db = unpooled_column_sums(dy_pooled, arg, OH, OW)
    want_db = column_sums(dy.reshape(-1, F))
    assert np.isnan(want_dx).any() and np.isfinite(want_dx).any()  # the NaN spread, not all
    for got, want in ((got_dx, want_dx), (got_dW, want_dW), (got_db, want_db)):
        np.testing.assert_array_equal(got, want)


def test_unpooling_refuses_an_argmax_that_does_not_fit():
    dy_pooled = np.zeros((2, 4, 4, 32), np.float32)
    W_flip = np.zeros((3, 3, 32, 16), np.float32)
    with pytest.raises(ValueError, match="argmax"):
        winograd_forward(dy_pooled, W_flip, None, 1, 1, 8, 8,
                         unpool=(np.zeros((2, 4, 4, 32), np.int64), (8, 8)))
    with pytest.raises(ValueError, match="twice as large"):
        winograd_forward(dy_pooled, W_flip, None, 1, 1, 8, 8,
                         unpool=(np.zeros((2, 4, 4, 32), np.int8), (10, 8)))


class _NaNEmpty:
    """numpy, except that empty() returns float arrays full of NaN (what an uninitialised
    buffer might hold) and records their sizes."""
    def __init__(self):
        self.sizes = []

    def __getattr__(self, name):
        return getattr(np, name)

    def empty(self, shape, dtype=float):
        if np.dtype(dtype).kind != "f":
            return np.empty(shape, dtype)
        self.sizes.append(int(np.prod(shape)))
        return np.full(shape, np.nan, dtype)


@pytest.mark.parametrize("N,H,C,F,pool", [(1, 4, 8, 32, False), (2, 7, 16, 64, False),
                                          (3, 13, 8, 32, True), (2, 9, 64, 256, False)])
def test_winograd_forward_reads_no_buffer_before_writing_it(N, H, C, F, pool, monkeypatch):
    """The forward's scratch V and M, and its outputs, come from np.empty: with every such
    buffer full of NaN the results are the same bits (blocks smaller than a product tile,
    the 1-image and odd-sized cases included)."""
    rng = np.random.default_rng(H)
    x = rng.standard_normal((N, H, H, C)).astype(np.float32)
    Wt = rng.standard_normal((3, 3, C, F)).astype(np.float32)
    want = winograd_forward(x, Wt, None, 1, 1, H, H, relu=True, pool=pool)
    poisoned = _NaNEmpty()
    monkeypatch.setattr(cw, "np", poisoned)
    got = winograd_forward(x, Wt, None, 1, 1, H, H, relu=True, pool=pool)
    assert any(size % (36 * F) == 0 for size in poisoned.sizes)     # M came from empty()
    for a, b in zip(want, got) if pool else [(want, got)]:
        assert np.isfinite(b).all()
        np.testing.assert_array_equal(a, b)
