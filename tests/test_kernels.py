"""Every numba kernel against its plain-NumPy reference twin, float32 and float64,
on random shapes, strides and paddings (kernels/*.py)."""
import numpy as np
import pytest

from minicnn.kernels.batchnorm import (affine_backward, dsums_partials, dsums_reference,
                                       moments_partials, moments_reference, normalize)
from minicnn.kernels.gelu import (gelu_backward, gelu_forward, gelu_grad_reference,
                                  gelu_reference)
from minicnn.kernels.im2col import col2im_reference, col2im_rows, im2col_reference, im2col_rows
from minicnn.kernels.parallel import parallel_blocks
from minicnn.kernels.taps import (gather_rows, im2col_class_reference, im2col_class_rows,
                                  padding_share, scatter_rows, tap_classes)
from minicnn.kernels.pooling import (maxpool_backward, maxpool_backward_reference,
                                     maxpool_forward, maxpool_reference)
from minicnn.kernels.relu import (leaky_relu_backward, leaky_relu_forward,
                                  leaky_relu_grad_reference, leaky_relu_reference, relu_backward,
                                  relu_forward, relu_grad_reference, relu_reference)

DTYPES = [np.float32, np.float64]
TOL = {np.float32: 1e-5, np.float64: 1e-12}


def random_conv_geometry(rng):
    """N, H, W, C, KH, KW, stride, pad_top, pad_left, OH, OW with OH, OW >= 1."""
    while True:
        N, H, W, C = rng.integers(1, 4), rng.integers(1, 10), rng.integers(1, 10), rng.integers(1, 6)
        KH, KW, S = rng.integers(1, 5), rng.integers(1, 5), rng.integers(1, 4)
        pt, pl = rng.integers(0, KH), rng.integers(0, KW)
        pb, pr = rng.integers(0, KH), rng.integers(0, KW)
        OH, OW = (H + pt + pb - KH) // S + 1, (W + pl + pr - KW) // S + 1
        if OH >= 1 and OW >= 1:
            return N, H, W, C, KH, KW, S, pt, pl, OH, OW


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(30))
def test_im2col_col2im_match_reference(dtype, seed):
    rng = np.random.default_rng(seed)
    N, H, W, C, KH, KW, S, pt, pl, OH, OW = random_conv_geometry(rng)
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    ref = im2col_reference(x, KH, KW, S, pt, pl, OH, OW)
    M = ref.shape[0]
    R = int(rng.integers(1, M + 1))                      # rows per block, blocks in any order
    cols = np.full_like(ref, np.nan)
    dcols = rng.standard_normal(ref.shape).astype(dtype)
    dx = np.zeros_like(x)
    for r0 in rng.permutation(np.arange(0, M, R)):
        im2col_rows(x, KH, KW, S, pt, pl, OH, OW, r0, cols[r0:r0 + R])
        col2im_rows(dcols[r0:r0 + R], KH, KW, S, pt, pl, OH, OW, r0, dx)
    np.testing.assert_array_equal(cols, ref)
    want = col2im_reference(dcols, x.shape, KH, KW, S, pt, pl, OH, OW)
    np.testing.assert_allclose(dx, want, rtol=TOL[dtype], atol=TOL[dtype])
    assert cols.dtype == dx.dtype == dtype


def test_col2im_is_the_adjoint_of_im2col():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 7, 6, 3))
    cols = im2col_reference(x, 3, 2, 2, 1, 1, 4, 3)
    d = rng.standard_normal(cols.shape)
    dx = col2im_rows(d, 3, 2, 2, 1, 1, 4, 3, 0, np.zeros_like(x))
    assert np.isclose(np.sum(cols * d), np.sum(x * dx), rtol=1e-12)   # <Ax, d> = <x, A^T d>


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("approximate", [False, True])
def test_gelu_matches_reference(dtype, approximate):
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.standard_normal(5000) * 4, np.linspace(-20, 20, 4001),
                        [0.0, -0.0, 1e-30, -1e-30, 1e30, -1e30]]).astype(dtype)
    dy = rng.standard_normal(x.size).astype(dtype)
    y, dx = np.empty_like(x), np.empty_like(x)
    gelu_forward(x, y, approximate)
    gelu_backward(x, dy, dx, approximate)
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    want_y = gelu_reference(x64, approximate)
    want_dx = gelu_grad_reference(x64, dy64, approximate)
    # GELU' is a sum of two terms that cancel near x = -0.75: measure dx errors
    # against |dy| * (|term 1| + |term 2|), the size of what is being added
    if approximate:
        from scipy.special import expit
        s = expit(2 * np.sqrt(2 / np.pi) * (x64 + 0.044715 * x64 ** 3))
        terms = s + np.abs(2 * x64 * s * (1 - s) * np.sqrt(2 / np.pi) * (1 + 3 * 0.044715 * x64 ** 2))
    else:
        from scipy.special import ndtr
        terms = ndtr(x64) + np.abs(x64) * np.exp(-x64 * x64 / 2) / np.sqrt(2 * np.pi)
    scale = np.abs(dy64) * terms
    if dtype == np.float64:            # libm kernels: agree with scipy to rounding
        np.testing.assert_allclose(y, want_y, rtol=1e-12, atol=1e-300)   # exp(-600): cond. 600
        assert np.all(np.abs(dx - want_dx) <= 1e-12 * scale + 1e-300)
    else:                              # polynomial kernels: within ~1/2 ulp of the exact value
        ulp = np.spacing(np.abs(want_y).astype(np.float32)).astype(np.float64)
        assert np.all(np.abs(y - want_y) <= 0.51 * ulp + 1e-45)
        assert np.all(np.abs(dx - want_dx) <= 1.2e-7 * scale + 1e-45)
    assert y.dtype == dx.dtype == dtype
    special = np.array([np.inf, np.nan], dtype)
    np.testing.assert_array_equal(gelu_forward(special, np.empty_like(special), approximate),
                                  [np.inf, np.nan])


def test_gelu_float32_tail_is_accurate():
    """Far left the output is tiny but must keep its relative accuracy."""
    from scipy.special import ndtr
    x = np.linspace(-13, -3, 20001).astype(np.float32)
    y = np.empty_like(x)
    gelu_forward(x, y, False)
    x64 = x.astype(np.float64)
    want = x64 * ndtr(x64)
    assert np.max(np.abs(y / want - 1)) < 1.2e-7


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_and_leaky_relu_match_reference(dtype):
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.standard_normal(1001), [0.0, -0.0, np.inf, -np.inf]]).astype(dtype)
    dy = rng.standard_normal(x.size).astype(dtype)
    y, dx = np.empty_like(x), np.empty_like(x)
    np.testing.assert_array_equal(relu_forward(x, y), relu_reference(x))
    np.testing.assert_array_equal(relu_backward(x, dy, dx), relu_grad_reference(x, dy))
    a = dtype(0.1)
    np.testing.assert_array_equal(leaky_relu_forward(x, y, a), leaky_relu_reference(x, a))
    np.testing.assert_array_equal(leaky_relu_backward(x, dy, dx, a),
                                  leaky_relu_grad_reference(x, dy, a))
    assert np.isnan(relu_forward(np.array([np.nan], dtype), np.empty(1, dtype))[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,C,offset", [(1, 3, 0.0), (7, 5, 0.0), (1000, 16, 0.0), (4099, 3, 1e4)])
def test_batchnorm_kernels_match_reference(dtype, m, C, offset):
    rng = np.random.default_rng(3)
    x2 = (rng.standard_normal((m, C)) + offset).astype(dtype)       # offset: |mean| >> std
    dy2 = rng.standard_normal((m, C)).astype(dtype)
    B = min(m, 16)
    shift = x2[0].astype(np.float64)
    S = moments_partials(x2, shift, np.empty((B, 2, C))).sum(axis=0)
    mu, var = shift + S[0] / m, (S[1] - S[0] ** 2 / m) / m
    mu_ref, var_ref = moments_reference(x2)
    np.testing.assert_allclose(mu, mu_ref, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(var, var_ref, rtol=1e-9, atol=1e-13)
    D = dsums_partials(x2, dy2, mu, np.empty((B, 2, C))).sum(axis=0)
    for got, want in zip(D, dsums_reference(x2, dy2, mu)):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    a, beta = rng.uniform(0.5, 2, C).astype(dtype), rng.standard_normal(C).astype(dtype)
    mu_t = mu.astype(dtype)
    y2 = normalize(x2, mu_t, a, beta, np.empty_like(x2))
    np.testing.assert_allclose(y2, (x2 - mu_t) * a + beta, rtol=TOL[dtype], atol=TOL[dtype])
    p, q, r = (rng.standard_normal(C).astype(dtype) for _ in range(3))
    dx2 = affine_backward(x2, dy2, mu_t, p, q, r, np.empty_like(x2))
    np.testing.assert_allclose(dx2, p * dy2 + q * (x2 - mu_t) + r, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("K,S,shape", [(2, 2, (2, 6, 6, 3)), (2, 2, (3, 7, 5, 8)), (3, 2, (2, 7, 7, 2)),
                                       (3, 1, (1, 5, 6, 2)), (3, 3, (2, 4, 3, 33)), (2, 3, (2, 8, 7, 4)),
                                       (1, 1, (1, 2, 3, 2)), (3, 3, (1, 3, 3, 5))])
def test_maxpool_matches_reference(dtype, K, S, shape):
    rng = np.random.default_rng(4)
    x = rng.integers(-2, 3, shape).astype(dtype)                  # many ties: the first wins
    N, H, W, C = shape
    OH, OW = (H - K) // S + 1, (W - K) // S + 1
    y, arg = np.empty((N, OH, OW, C), dtype), np.empty((N, OH, OW, C), np.int8)
    maxpool_forward(x, K, S, y, arg)
    y_ref, arg_ref = maxpool_reference(x, K, S)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(arg, arg_ref)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = np.full(shape, np.nan, dtype)                             # every pixel must be written
    maxpool_backward(dy, arg, K, S, dx)
    np.testing.assert_allclose(dx, maxpool_backward_reference(dy, arg, shape, K, S),
                               rtol=TOL[dtype], atol=TOL[dtype])


def test_parallel_blocks_runs_every_block_once_and_reraises():
    seen = []
    parallel_blocks(37, lambda b, t: seen.append(b))
    assert sorted(seen) == list(range(37))

    def boom(b, t):
        if b == 5:
            raise RuntimeError("block 5")
    with pytest.raises(RuntimeError, match="block 5"):
        parallel_blocks(9, boom)


@pytest.mark.parametrize("taps", [False, True], ids=["im2col", "taps"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(12))
def test_conv2d_blocked_paths_match_one_big_product(dtype, seed, taps):
    """Conv2D's cache-sized blocks, thread groups and flipped-kernel dx -- on the plain
    im2col path and on the tap-class path -- against the textbook: all of im2col at
    once, one matrix product, col2im."""
    from minicnn.layers import Conv2D
    rng = np.random.default_rng(100 + seed)
    N, H, W, C, F = (int(v) for v in rng.integers(1, 7, 5))
    k, S = int(rng.integers(1, 4)), int(rng.integers(1, 3))
    padding = ["same", "valid", int(rng.integers(0, k))][seed % 3]
    layer = Conv2D(C, F, k, stride=S, padding=padding, rng=seed, dtype=dtype,
                   max_chunk_bytes=int(rng.integers(1, 2000)))   # many blocks
    layer.taps_min_padding = 0.0 if taps else 2.0                   # force the path
    H, W = H + k, W + k                              # even 'valid' has an output
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    y = layer.forward(x, True)
    OH, OW, pt, pl = layer.geometry(H, W)
    cols = im2col_reference(x, k, k, S, pt, pl, OH, OW)
    Wm = layer.params["W"].reshape(-1, F)
    np.testing.assert_allclose(y.reshape(-1, F), cols @ Wm + layer.params["b"],
                               rtol=TOL[dtype], atol=TOL[dtype])
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = layer.backward(dy)
    dy2 = dy.reshape(-1, F)
    np.testing.assert_allclose(layer.grads["W"].reshape(-1, F), cols.T @ dy2,
                               rtol=TOL[dtype], atol=TOL[dtype])
    np.testing.assert_allclose(layer.grads["b"], dy2.sum(axis=0), rtol=TOL[dtype], atol=TOL[dtype])
    np.testing.assert_allclose(dx, col2im_reference(dy2 @ Wm.T, x.shape, k, k, S, pt, pl, OH, OW),
                               rtol=TOL[dtype], atol=TOL[dtype])
    assert y.dtype == dx.dtype == layer.grads["W"].dtype == dtype
    grads = {key: g.copy() for key, g in layer.grads.items()}       # bit-for-bit repeatable
    dx2 = layer.backward(dy)
    np.testing.assert_array_equal(dx2, dx)
    for key, g in grads.items():
        np.testing.assert_array_equal(layer.grads[key], g)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("H,W,K,S,pad", [(7, 7, 3, 1, 1), (3, 3, 3, 1, 1), (6, 5, 3, 2, 1),
                                         (4, 4, 3, 1, 3), (5, 8, 2, 1, 0)])
def test_tap_classes_cover_every_valid_tap_once(dtype, H, W, K, S, pad):
    rng = np.random.default_rng(7)
    N, C = 2, 3
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    OH, OW = (H + 2 * pad - K) // S + 1, (W + 2 * pad - K) // S + 1
    classes = tap_classes(H, W, K, K, S, pad, pad, OH, OW)
    full = im2col_reference(x, K, K, S, pad, pad, OH, OW).reshape(N, OH * OW, K, K, C)
    seen = np.zeros((OH * OW, K, K), int)
    for cls in classes:
        h0, h1, w0, w1, pos = cls
        seen[np.ix_(pos, range(h0, h1), range(w0, w1))] += 1
        ref = im2col_class_reference(x, K, K, S, pad, pad, OH, OW, cls)
        for r0 in range(0, len(ref), 3):                       # blocks of 3 rows, any offset
            R = min(3, len(ref) - r0)
            out = im2col_class_rows(x, h0, h1, w0, w1, S, pad, pad, OW, pos, r0,
                                    np.empty((R, ref.shape[1]), dtype))
            np.testing.assert_array_equal(out, ref[r0:r0 + R])
    # every tap that reads the image is in exactly one class; the skipped ones are zeros
    inside = np.abs(full).sum(axis=(0, 4)) > 0
    np.testing.assert_array_equal(seen, inside.astype(int))
    assert padding_share(H, W, K, K, S, pad, pad, OH, OW) == pytest.approx(1 - inside.mean())


def test_scatter_and_gather_rows_are_each_others_inverse():
    rng = np.random.default_rng(3)
    pos, OHW, N, F = np.array([1, 4, 5], np.int64), 6, 3, 4
    src = rng.standard_normal((N * 3, F)).astype(np.float32)
    dst = np.zeros((N * OHW, F), np.float32)
    scatter_rows(src[2:7], pos, 2, OHW, dst)                  # rows 2..6 of the class
    rows = [n * OHW + p for n in range(N) for p in pos][2:7]
    np.testing.assert_array_equal(dst[rows], src[2:7])
    assert np.count_nonzero(np.abs(dst).sum(1)) == 5
    back = gather_rows(dst, pos, 2, OHW, np.empty((5, F), np.float32))
    np.testing.assert_array_equal(back, src[2:7])


def test_conv_takes_the_tap_path_on_small_maps_only():
    from minicnn.layers import Conv2D
    conv = Conv2D(4, 4, 3)
    assert conv.use_taps(7, 7, 7, 7, 1, 1, 1) and conv.use_taps(3, 3, 3, 3, 1, 1, 1)
    assert not conv.use_taps(31, 31, 31, 31, 1, 1, 1) and not conv.use_taps(32, 32, 32, 32, 1, 1, 1)


@pytest.mark.parametrize("user_value,expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_idle_openmp_threads_sleep_unless_the_user_chose(user_value, expected):
    import os, subprocess, sys
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    if user_value:
        env["OMP_WAIT_POLICY"] = user_value
    out = subprocess.run([sys.executable, "-c", "import os, minicnn; print(os.environ['OMP_WAIT_POLICY'])"],
                         env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert out == expected


def test_importing_minicnn_after_numba_started_openmp_warns():
    import os, subprocess, sys
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    code = ("import numba; numba.config.THREADING_LAYER = 'omp'\n"
            "try:\n    numba.set_num_threads(1)\nexcept Exception:\n    print('no-omp'); raise SystemExit\n"
            "import warnings; warnings.simplefilter('error')\n"
            "try:\n    import minicnn\nexcept RuntimeWarning as w:\n    print('warned:', w)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout
    if "no-omp" in out:
        pytest.skip("numba's OpenMP threading layer is not available here")
    assert "warned:" in out and "OMP_WAIT_POLICY=PASSIVE" in out
