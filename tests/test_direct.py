"""The direct convolution (kernels/direct.py, tiles.py, layers/conv_direct.py): against its
NumPy twins and against Conv2D's im2col path; the rule that picks it; parallel_matmul."""
import subprocess
import sys

import numpy as np
import pytest

import minicnn.layers.conv as conv_module
from minicnn.kernels.direct import (conv_reference, pack_weights, slp_vectorizer_on, tile_width,
                                    weight_grad_reference)
from minicnn.kernels.im2col import im2col_reference
from minicnn.kernels.microkernel import TILES_PATH, module_source
from minicnn.kernels.parallel import parallel_matmul
from minicnn.layers import Conv2D
from minicnn.layers.conv_direct import direct_forward, direct_weight_grad


def rel_err(a, b):
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)


def test_generated_tiles_are_up_to_date():
    assert TILES_PATH.read_text() == module_source(), \
        "kernels/tiles.py is stale: run python -m minicnn.kernels.microkernel"


def test_slp_vectorizer_switched_on_by_import():
    code = "import minicnn, numba; print(numba.config.SLP_VECTORIZE)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
    assert slp_vectorizer_on()


def test_user_setting_of_slp_vectorizer_wins():
    code = "import minicnn, numba; print(numba.config.SLP_VECTORIZE)"
    env = {**__import__("os").environ, "NUMBA_SLP_VECTORIZE": "0"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=env)
    assert out.stdout.strip() == "0"


def test_conv_reference_matches_im2col_reference():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 7, 3))
    W = rng.standard_normal((3, 2, 3, 5))
    OH, OW = 6 + 2 - 3 + 1, 7 + 1 - 2 + 1           # pad (1, 1) top/bottom, (1, 0) left/right
    y = conv_reference(x, W, 1, 1, OH, OW)
    cols = im2col_reference(x, 3, 2, 1, 1, 1, OH, OW)
    np.testing.assert_allclose(y, (cols @ W.reshape(-1, 5)).reshape(2, OH, OW, 5), rtol=1e-12)


def test_pack_weights_layout():
    W = np.arange(3 * 3 * 2 * 64, dtype=np.float32).reshape(3, 3, 2, 64)
    p = pack_weights(W, 32)
    assert p.shape == (2, 18, 32) and p.flags.c_contiguous
    np.testing.assert_array_equal(p[1, 5], W.reshape(18, 64)[5, 32:])
    assert tile_width(64, 32) == 32 and tile_width(64, 31) == 32 and tile_width(64, 15) == 32
    assert tile_width(64, 16) == 16                       # 16 columns in 4s, not 18 in 3s
    assert tile_width(48, 16) == 24 and tile_width(16, 32) == 16 and tile_width(40, 32) == 0


# (N, H, W, C, F, KH, KW, pad_top, pad_left, pad_bottom, pad_right): widths that are and are
# not multiples of the 3- and 4-pixel tiles, 24- and 32-channel tiles, odd kernels and paddings
FORWARD_CASES = [(3, 5, 5, 4, 32, 3, 3, 1, 1, 1, 1), (2, 4, 7, 3, 64, 3, 3, 1, 1, 1, 1),
                 (2, 6, 6, 5, 24, 3, 3, 0, 0, 0, 0), (1, 5, 9, 8, 48, 2, 3, 1, 0, 0, 2),
                 (2, 3, 3, 2, 32, 1, 1, 0, 0, 0, 0), (1, 8, 6, 3, 96, 5, 5, 2, 2, 2, 2),
                 (5, 4, 13, 7, 32, 3, 3, 2, 1, 0, 1), (2, 6, 16, 8, 64, 3, 3, 1, 1, 1, 1),
                 (2, 5, 8, 4, 16, 3, 3, 3, 1, 3, 1)]     # the last: whole rows of padding


@pytest.mark.parametrize("case", FORWARD_CASES)
@pytest.mark.parametrize("bias", [False, True])
def test_direct_forward_matches_reference(case, bias):
    N, H, W, C, F, KH, KW, pt, pl, pb, pr = case
    rng = np.random.default_rng(sum(case))
    x = rng.standard_normal((N, H, W, C)).astype(np.float32)
    Wt = rng.standard_normal((KH, KW, C, F)).astype(np.float32)
    b = rng.standard_normal(F).astype(np.float32) if bias else None
    OH, OW = H + pt + pb - KH + 1, W + pl + pr - KW + 1
    y = direct_forward(x, Wt, b, pt, pl, OH, OW)
    ref = conv_reference(x.astype(np.float64), Wt.astype(np.float64), pt, pl, OH, OW)
    if bias:
        ref = ref + b
    assert y.dtype == np.float32 and y.shape == (N, OH, OW, F)
    assert rel_err(y, ref) < 1e-5


def test_direct_forward_refuses_maps_narrower_than_a_tile():
    x = np.zeros((1, 4, 2, 3), np.float32)
    with pytest.raises(ValueError, match="OW >= 3"):
        direct_forward(x, np.zeros((1, 1, 3, 32), np.float32), None, 0, 0, 4, 2)


# (N, H, W, C, F, KH, KW, pad_top, pad_left, pad_bottom, pad_right); odd OH leaves a last
# group of one row (DW_ROWS = 2)
DW_CASES = [(3, 5, 5, 4, 16, 3, 3, 1, 1, 1, 1), (2, 7, 6, 8, 32, 3, 3, 1, 1, 1, 1),
            (4, 4, 9, 24, 64, 3, 3, 0, 0, 0, 0), (1, 6, 5, 12, 48, 2, 3, 1, 0, 0, 2),
            (5, 3, 3, 4, 16, 1, 1, 0, 0, 0, 0), (2, 4, 6, 4, 16, 3, 3, 3, 4, 3, 2)]


@pytest.mark.parametrize("case", DW_CASES)
def test_direct_weight_grad_matches_reference(case):
    N, H, W, C, F, KH, KW, pt, pl, pb, pr = case
    rng = np.random.default_rng(sum(case))
    x = rng.standard_normal((N, H, W, C)).astype(np.float32)
    OH, OW = H + pt + pb - KH + 1, W + pl + pr - KW + 1
    dy = rng.standard_normal((N, OH, OW, F)).astype(np.float32)
    dW = direct_weight_grad(x, dy, KH, KW, pt, pl, groups=4)
    ref = weight_grad_reference(x.astype(np.float64), dy.astype(np.float64), KH, KW, pt, pl)
    assert dW.dtype == np.float32 and dW.shape == (KH, KW, C, F)
    assert rel_err(dW, ref) < 1e-5
    np.testing.assert_array_equal(dW, direct_weight_grad(x, dy, KH, KW, pt, pl, groups=4))


def spy(monkeypatch, name):
    """Record the calls Conv2D makes to conv_module.<name> (the fast paths)."""
    calls, real = [], getattr(conv_module, name)
    monkeypatch.setattr(conv_module, name, lambda *a, **k: calls.append(name) or real(*a, **k))
    return calls


def forward_backward(C, F, H, padding, x, batch_seed=7, **switches):
    layer = Conv2D(C, F, 3, padding=padding, rng=1)
    for key, value in switches.items():
        setattr(layer, key, value)
    y = layer.forward(x, training=True)
    dy = np.random.default_rng(batch_seed).standard_normal(y.shape).astype(np.float32)
    return y, layer.backward(dy), layer.grads["W"].copy(), layer.grads["b"].copy()


@pytest.mark.parametrize("C,F,H,padding,N", [(32, 32, 14, "same", 3), (24, 64, 13, "same", 3),
                                             (64, 48, 12, 1, 3), (8, 32, 16, "valid", 3),
                                             (32, 24, 12, "same", 1), (16, 48, 12, "same", 2)])
def test_conv2d_direct_path_matches_im2col_path(monkeypatch, C, F, H, padding, N):
    """The whole layer, forward and backward, with the direct path (forward, dW and, when
    C allows, dx: checked by spies) and with the im2col paths only."""
    rng = np.random.default_rng(C + F + H)
    x = rng.standard_normal((N, H, H, C)).astype(np.float32)
    fwd, dW = spy(monkeypatch, "direct_forward"), spy(monkeypatch, "direct_weight_grad")
    fast = forward_backward(C, F, H, padding, x, allow_winograd=False)
    assert len(fwd) >= 1
    assert dW == (["direct_weight_grad"] if C % 4 == 0 and F % 16 == 0 else [])
    assert len(fwd) == 2 if C % 16 == 0 or C % 24 == 0 else len(fwd) == 1   # dx direct too
    plain = forward_backward(C, F, H, padding, x, allow_winograd=False, allow_direct=False)
    for got, want in zip(fast, plain):
        assert rel_err(got, want) < 1e-5


@pytest.mark.parametrize("C,F,k,padding", [(32, 32, 1, 1), (32, 32, 3, 3), (128, 128, 3, 3)])
def test_padding_wider_than_the_kernel_keeps_dx_off_the_fast_paths(C, F, k, padding):
    """dx of a stride-1 conv is the flipped kernel over dy padded by k-1-p: negative when
    p > k-1, which the direct and Winograd kernels cannot do; the layer must still work."""
    x = np.random.default_rng(0).standard_normal((2, 12, 12, C)).astype(np.float32)
    results = []
    for allow in (True, False):
        layer = Conv2D(C, F, k, padding=padding, rng=1)
        layer.allow_direct = layer.allow_winograd = allow
        y = layer.forward(x, training=True)
        dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
        results.append((y, layer.backward(dy)))
    for got, want in zip(*results):
        assert rel_err(got, want) < 1e-5


@pytest.mark.parametrize("frozen,skip", [({"W"}, False), ({"b"}, True)])
def test_direct_path_with_frozen_params_and_skipped_input_grad(frozen, skip):
    x = np.random.default_rng(0).standard_normal((2, 12, 12, 32)).astype(np.float32)
    outs = []
    for allow in (True, False):
        layer = Conv2D(32, 32, 3, rng=1)
        layer.allow_direct, layer.frozen, layer.skip_input_grad = allow, set(frozen), skip
        y = layer.forward(x, training=True)
        dx = layer.backward(np.ones_like(y))
        outs.append((y, dx, layer.grads["W"].copy(), layer.grads["b"].copy()))
    assert (outs[0][1] is None) == skip
    for got, want in zip(outs[0], outs[1]):
        if got is not None:
            assert rel_err(got, want) < 1e-5


def test_direct_functions_refuse_shapes_they_cannot_do():
    x = np.zeros((1, 6, 6, 3), np.float32)
    with pytest.raises(ValueError, match="C a multiple of 4"):
        direct_weight_grad(x, np.zeros((1, 6, 6, 16), np.float32), 3, 3, 1, 1, groups=1)
    with pytest.raises(ValueError, match="must agree on C"):
        direct_forward(x, np.zeros((3, 3, 4, 32), np.float32), None, 1, 1, 6, 6)
    with pytest.raises(TypeError, match="float32 only"):
        direct_forward(x.astype(np.float64), np.zeros((3, 3, 3, 32)), None, 1, 1, 6, 6)
    with pytest.raises(ValueError, match="padding must be >= 0"):
        direct_forward(x, np.zeros((3, 3, 3, 32), np.float32), None, -1, 1, 6, 6)


def test_numba_imported_first_is_a_warning_not_a_silent_slowdown():
    code = "import numba, warnings; warnings.simplefilter('always'); import minicnn"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={k: v for k, v in __import__("os").environ.items()
                              if k != "NUMBA_SLP_VECTORIZE"})
    assert out.returncode == 0 and "NUMBA_SLP_VECTORIZE" in out.stderr


def test_direct_rule():
    layer = Conv2D(32, 32, 3, rng=0)
    assert layer.use_direct(np.float32, 32, 32)
    assert layer.use_direct(np.float32, 32, 32, weight_grad=True)
    assert not layer.use_direct(np.float64, 32, 32)                  # gradient checks: im2col
    assert not layer.use_direct(np.float32, 7, 32)                   # small map: tap classes
    assert not layer.use_direct(np.float32, 32, 256)                 # wide: OpenBLAS
    assert not layer.use_direct(np.float32, 32, 40)                  # no tile fits 40 channels
    assert layer.use_direct(np.float32, 16, 16)
    assert not Conv2D(32, 32, 3, stride=2, rng=0).use_direct(np.float32, 32, 32)
    assert not Conv2D(3, 32, 3, rng=0).use_direct(np.float32, 32, 32, weight_grad=True)  # C % 4
    layer.allow_direct = False
    assert not layer.use_direct(np.float32, 32, 32)


def test_direct_path_off_without_slp_vectorizer(monkeypatch):
    monkeypatch.setattr(conv_module, "slp_vectorizer_on", lambda: False)
    assert not Conv2D(32, 32, 3, rng=0).use_direct(np.float32, 32, 32)


def test_direct_path_is_taken(monkeypatch):
    """Conv2D calls the direct functions where the rule says so (and only there)."""
    calls = []
    real = conv_module.direct_forward
    monkeypatch.setattr(conv_module, "direct_forward",
                        lambda *a, **k: calls.append(a[1].shape) or real(*a, **k))
    x = np.zeros((2, 16, 16, 32), np.float32)
    Conv2D(32, 48, 3, rng=0).forward(x)                 # F % 32 != 0: not Winograd
    Conv2D(32, 64, 3, rng=0).forward(x)                 # Winograd comes first
    no_winograd = Conv2D(32, 64, 3, rng=0)
    no_winograd.allow_winograd = False
    no_winograd.forward(x)
    Conv2D(32, 64, 5, rng=0).forward(x)                 # 5x5: direct, not Winograd
    Conv2D(32, 64, 3, rng=0).to(np.float64).forward(x.astype(np.float64))
    Conv2D(32, 256, 3, rng=0).forward(x)
    assert calls == [(3, 3, 32, 48), (3, 3, 32, 64), (5, 5, 32, 64)]


@pytest.mark.parametrize("M,K,F", [(1, 5, 3), (7, 4, 9), (128, 64, 10), (300, 33, 17), (16, 64, 520)])
def test_parallel_matmul(M, K, F):
    rng = np.random.default_rng(M)
    a = rng.standard_normal((K, M)).astype(np.float32).T        # a transposed view, as in dW
    b = rng.standard_normal((K, F)).astype(np.float32)
    out = np.full((M, F), np.nan, np.float32)
    got = parallel_matmul(a, b, out=out)
    assert got is out
    np.testing.assert_allclose(out, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-5)
    assert parallel_matmul(a, b).dtype == np.float32


def test_sequential_fuses_conv_and_relu():
    """Conv2D + ReLU fused in Sequential (forward, backward, predict) gives the same numbers
    as the layers run one by one."""
    from minicnn import Sequential
    from minicnn.layers import Dense, Flatten, MaxPool2D, ReLU
    from minicnn.losses import softmax_cross_entropy  # noqa: F811

    def net():
        return Sequential([Conv2D(3, 16, 3, rng=0), ReLU(), Conv2D(16, 16, 3, rng=1), ReLU(),
                           MaxPool2D(2), Conv2D(16, 8, 3, rng=2), ReLU(), Flatten(),
                           Dense(6 * 6 * 8, 10, rng=3)])

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 12, 12, 3)).astype(np.float32)   # 12 wide: the direct path
    labels = np.array([0, 1, 2, 3])
    fused, plain = net(), net()
    calls = []
    real = ReLU.forward_fused
    ReLU.forward_fused = lambda self, y: calls.append(y.shape) or real(self, y)
    try:
        logits = fused.forward(x, training=True)
    finally:
        ReLU.forward_fused = real
    assert len(calls) == 3                          # every Conv2D + ReLU pair was fused
    fused.backward(softmax_cross_entropy(logits, labels)[1])
    h = x
    for layer in plain.layers:                      # one by one: no fusion
        h = layer.forward(h, training=True)
    d = softmax_cross_entropy(h, labels)[1]
    for layer in reversed(plain.layers):
        d = layer.backward(d)
    np.testing.assert_allclose(logits, h, rtol=1e-6, atol=1e-6)
    assert (logits != 0).any()
    for (name, _, g1), (_, _, g2) in zip(fused.named_parameters(), plain.named_parameters()):
        np.testing.assert_allclose(g1, g2, rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(fused.predict(x, batch_size=3), h, rtol=1e-6, atol=1e-6)


# ---- Winograd F(4x4, 3x3) (kernels/winograd.py, layers/conv_winograd.py) -------------
from minicnn.kernels.winograd import G, weight_transform, winograd_reference  # noqa: E402
from minicnn.layers.conv_winograd import winograd_forward  # noqa: E402

WINOGRAD_TOL = 3e-5     # float32: the transforms scale by up to 8 and 1/24 (kernels/winograd.py)


def test_weight_transform_is_G_g_Gt_packed():
    W = np.random.default_rng(0).standard_normal((3, 3, 5, 64))
    want = np.einsum("ai,ijcf,bj->abcf", G, W, G).reshape(36, 5, 64)
    got = weight_transform(W)                                   # (36, F/32, C, 32)
    assert got.shape == (36, 2, 5, 32)
    np.testing.assert_allclose(got.transpose(0, 2, 1, 3).reshape(36, 5, 64), want,
                               rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("N,H,W,C,F,pt,pl,pb,pr", [
    (2, 7, 7, 8, 32, 1, 1, 1, 1), (3, 6, 5, 4, 64, 1, 1, 1, 1), (1, 8, 9, 3, 32, 0, 0, 0, 0),
    (2, 5, 6, 16, 96, 2, 1, 0, 1), (4, 3, 3, 2, 32, 1, 1, 1, 1), (1, 15, 15, 64, 32, 1, 1, 1, 1),
    (5, 16, 16, 32, 64, 1, 1, 1, 1), (3, 13, 22, 24, 32, 1, 1, 1, 1),
    (1, 4, 8, 16, 32, 1, 1, 1, 1), (2, 7, 9, 16, 32, 2, 2, 2, 2), (2, 9, 7, 16, 32, 0, 2, 2, 0)])
@pytest.mark.parametrize("bias,relu", [(False, False), (True, False), (True, True)])
def test_winograd_matches_direct_sum_and_twin(N, H, W, C, F, pt, pl, pb, pr, bias, relu):
    rng = np.random.default_rng(N + H + W + C + F)
    x = rng.standard_normal((N, H, W, C)).astype(np.float32)
    Wt = rng.standard_normal((3, 3, C, F)).astype(np.float32)
    b = rng.standard_normal(F).astype(np.float32) if bias else None
    OH, OW = H + pt + pb - 2, W + pl + pr - 2
    y = winograd_forward(x, Wt, b, pt, pl, OH, OW, relu)
    ref = conv_reference(x.astype(np.float64), Wt.astype(np.float64), pt, pl, OH, OW)
    if bias:
        ref = ref + b
    twin = winograd_reference(x.astype(np.float64), Wt.astype(np.float64), b, pt, pl, OH, OW)
    np.testing.assert_allclose(twin, ref, rtol=1e-10, atol=1e-10)        # the algorithm is exact
    if relu:
        ref = np.maximum(ref, 0)
    assert y.shape == (N, OH, OW, F) and y.dtype == np.float32
    assert rel_err(y, ref) < WINOGRAD_TOL                                 # float32 rounding


@pytest.mark.parametrize("tiles_per_block", [1, 2, 5])
def test_winograd_any_block_size_gives_the_same_result(monkeypatch, tiles_per_block):
    """Blocks of one tile row, blocks with fewer than 3 tiles, a short last block: all
    give what the default blocking gives (each output is summed in a fixed order)."""
    import minicnn.layers.conv_winograd as cw
    rng = np.random.default_rng(tiles_per_block)
    x = rng.standard_normal((3, 11, 23, 16)).astype(np.float32)
    Wt = rng.standard_normal((3, 3, 16, 32)).astype(np.float32)
    want = winograd_forward(x, Wt, None, 1, 1, 11, 23)
    monkeypatch.setattr(cw, "TILES_PER_BLOCK", tiles_per_block)
    np.testing.assert_array_equal(winograd_forward(x, Wt, None, 1, 1, 11, 23), want)
    ref = conv_reference(x.astype(np.float64), Wt.astype(np.float64), 1, 1, 11, 23)
    assert rel_err(want, ref) < WINOGRAD_TOL


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
    with pytest.raises(ValueError, match="multiple of 32"):
        winograd_forward(x, np.zeros((3, 3, 4, 48), np.float32), None, 1, 1, 6, 6)
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
    (24, 64, 9, "same", 1), (32, 32, 11, "valid", 2), (32, 32, 8, 2, 2)])
def test_conv2d_winograd_path_matches_other_path(monkeypatch, C, F, H, padding, calls):
    """Forward and dx by Winograd (checked by a spy; dx with 24 output channels cannot)
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


def test_winograd_rule(monkeypatch):
    simple = Conv2D(32, 64, 3, rng=0)
    assert simple.use_winograd(np.float32, 16) and simple.use_winograd(np.float32, 16, dx=True)
    assert simple.use_winograd(np.float32, 7) and not simple.use_winograd(np.float32, 6)
    assert not Conv2D(32, 8, 3, rng=0).use_winograd(np.float32, 16, dx=True)  # dx: 8 inputs
    assert not simple.use_winograd(np.float64, 16)                       # gradient checks
    assert not Conv2D(3, 32, 3, rng=0).use_winograd(np.float32, 32)     # 3 input channels
    first = Conv2D(24, 64, 3, rng=0)
    assert first.use_winograd(np.float32, 31) and not first.use_winograd(np.float32, 31, dx=True)
    assert not Conv2D(32, 48, 3, rng=0).use_winograd(np.float32, 16)    # F % 32
    assert not Conv2D(64, 256, 5, rng=0).use_winograd(np.float32, 15)
    assert not Conv2D(64, 256, 3, stride=2, rng=0).use_winograd(np.float32, 15)
    assert not Conv2D(256, 256, 3, rng=0).use_winograd(np.float32, 3)   # 3x3 maps
    monkeypatch.setattr(conv_module, "slp_vectorizer_on", lambda: False)
    assert not simple.use_winograd(np.float32, 16)


# ---- Winograd F(3x3, 4x4) for dW (kernels/winograd_grad.py) ----------------------------
from minicnn.kernels.winograd_grad import weight_grad_reference as winograd_grad_reference  # noqa: E402
from minicnn.layers.conv_winograd import winograd_weight_grad  # noqa: E402


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
    twin = winograd_grad_reference(x.astype(np.float64), dy.astype(np.float64), pt, pl)
    np.testing.assert_allclose(twin, want, rtol=1e-10, atol=1e-10)        # the algorithm is exact
    got = winograd_weight_grad(x, dy, pt, pl, 4)
    assert got.shape == (3, 3, C, F) and got.dtype == np.float32
    assert rel_err(got, want) < WINOGRAD_TOL


@pytest.mark.parametrize("tiles_per_block,groups", [(1, 4), (2, 3), (5, 1), (100, 2)])
def test_winograd_weight_grad_any_blocking_same_numbers(monkeypatch, tiles_per_block, groups):
    """The same groups give bit-identical results whatever the block size or thread
    timing; other groupings agree to rounding."""
    import minicnn.layers.conv_winograd as cw
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 11, 13, 8)).astype(np.float32)
    dy = rng.standard_normal((3, 11, 13, 16)).astype(np.float32)
    base = winograd_weight_grad(x, dy, 1, 1, groups)
    np.testing.assert_array_equal(winograd_weight_grad(x, dy, 1, 1, groups), base)
    monkeypatch.setattr(cw, "GRAD_TILES_PER_BLOCK", tiles_per_block)
    got = winograd_weight_grad(x, dy, 1, 1, groups)
    assert rel_err(got, dW_direct_sum(x.astype(np.float64), dy.astype(np.float64), 1, 1)) < WINOGRAD_TOL


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


def test_winograd_weight_grad_rule():
    assert Conv2D(32, 32, 3, rng=0).use_winograd(np.float32, 16, weight_grad=True)
    assert Conv2D(24, 64, 3, rng=0).use_winograd(np.float32, 31, weight_grad=True)
    assert not Conv2D(3, 32, 3, rng=0).use_winograd(np.float32, 32, weight_grad=True)   # C % 4
    assert not Conv2D(32, 24, 3, rng=0).use_winograd(np.float32, 16, weight_grad=True)  # F % 16
    assert not Conv2D(32, 32, 3, rng=0).use_winograd(np.float32, 6, weight_grad=True)
    assert not Conv2D(32, 32, 3, rng=0).use_winograd(np.float64, 16, weight_grad=True)
    assert Conv2D(64, 256, 3, rng=0).use_winograd(np.float32, 15, weight_grad=True)
    assert not Conv2D(256, 256, 3, rng=0).use_winograd(np.float32, 7, weight_grad=True)


def test_winograd_leaves_no_blas_threads_spinning():
    """The transform must not call two-thread BLAS (its threads would spin and slow what
    follows): CPU time while idle right after a Winograd layer stays near zero."""
    import time
    layer = Conv2D(256, 256, 3, rng=0)     # big enough for OpenBLAS to use 2 threads
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 256)).astype(np.float32)
    layer.forward(x)                       # compile, and the weights' first use
    time.sleep(0.3)                        # let BLAS threads woken by earlier tests settle
    layer.forward(x)
    c0 = time.process_time()
    time.sleep(0.2)
    assert time.process_time() - c0 < 0.05
