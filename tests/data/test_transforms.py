"""Tests for minicnn.data.transforms: stats, standardize, split, augmentation."""
import numpy as np
import pytest

from minicnn.data import (alternating_flip, channel_stats, crop_flip, crop_flip_reference,
                          draw_flip_mask, random_crop, random_crop_flip, random_flip,
                          standardize, train_val_split)


def images(n=6, h=32, w=32, c=3, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal((n, h, w, c)).astype(dtype)


# ---------------------------------------------------------------- preprocessing
def test_channel_stats_matches_numpy():
    x = np.random.default_rng(0).integers(0, 256, (50, 8, 9, 3), dtype=np.uint8)
    mean, std = channel_stats(x, chunk=7)
    assert mean.dtype == np.float32 and mean.shape == (3,)
    np.testing.assert_allclose(mean, (x / 255.0).mean(axis=(0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(std, (x / 255.0).std(axis=(0, 1, 2)), rtol=1e-5)


def test_standardize():
    x = np.random.default_rng(1).integers(0, 256, (20, 4, 4, 3), dtype=np.uint8)
    mean, std = channel_stats(x)
    z = standardize(x, mean, std)
    assert z.dtype == np.float32 and z.shape == x.shape
    np.testing.assert_allclose(z, (x / 255.0 - mean) / std, atol=1e-5)
    np.testing.assert_allclose(z.mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(0, 1, 2)), 1, atol=1e-4)
    with pytest.raises(ValueError, match=r"expected mean and std of shape \(3,\), got \(2,\)"):
        standardize(x, mean[:2], std)
    with pytest.raises(ValueError, match="expected dtype uint8, got float32"):
        standardize(z, mean, std)


def test_split_is_stratified_and_deterministic():
    y = np.random.default_rng(0).permutation(np.repeat(np.arange(10), 5000))
    x = np.arange(len(y))                     # stand-in images: each "image" is its index
    xt, yt, xv, yv = train_val_split(x, y, val_size=5000, seed=0)
    assert len(xv) == 5000 and len(xt) == 45000
    assert np.bincount(yv).tolist() == [500] * 10
    np.testing.assert_array_equal(y[xv], yv)                   # images stay with labels
    assert np.union1d(xt, xv).size == 50000 and np.intersect1d(xt, xv).size == 0
    np.testing.assert_array_equal(train_val_split(x, y, 5000, seed=0)[2], xv)
    assert not np.array_equal(train_val_split(x, y, 5000, seed=1)[2], xv)
    xt0, yt0, xv0, yv0 = train_val_split(x, y, val_size=0)
    assert len(xt0) == 50000 and xv0.shape == (0,) and yv0.shape == (0,)


# ---------------------------------------------------------------- augmentation
@pytest.mark.parametrize("shape,pad,mode,dtype", [
    ((7, 32, 32, 3), 4, "reflect", np.float32), ((7, 32, 32, 3), 4, "zero", np.float32),
    ((5, 9, 13, 1), 8, "reflect", np.float64), ((5, 6, 5, 2), 7, "zero", np.float32),
    ((3, 8, 8, 3), 0, "reflect", np.float32), ((0, 8, 8, 3), 2, "zero", np.float32)])
def test_crop_flip_matches_reference(shape, pad, mode, dtype):
    x = images(*shape, dtype=dtype)
    rng = np.random.default_rng(3)
    dy, dx = rng.integers(0, 2 * pad + 1, (2, len(x)))
    flip = draw_flip_mask(len(x), rng)
    out = crop_flip(x, dy, dx, flip, pad, mode)
    assert out.dtype == dtype and out.shape == x.shape
    np.testing.assert_array_equal(out, crop_flip_reference(x, dy, dx, flip, pad, mode))


def test_crop_is_a_translation():
    x = images(2)
    n = len(x)
    same = crop_flip(x, [4] * n, [4] * n, [False] * n, 4, "zero")       # centre window
    np.testing.assert_array_equal(same, x)
    down = crop_flip(x, [1] * n, [4] * n, [False] * n, 4, "zero")       # content moves down 3
    np.testing.assert_array_equal(down[:, 3:], x[:, :-3])
    assert np.all(down[:, :3] == 0)
    refl = crop_flip(x, [0] * n, [4] * n, [False] * n, 4, "reflect")    # rows 4,3,2,1 on top
    np.testing.assert_array_equal(refl[:, :4], x[:, [4, 3, 2, 1]])


def test_random_crop_and_flip():
    x = images(64)
    c = random_crop(x, np.random.default_rng(0), pad=4, mode="zero")
    np.testing.assert_array_equal(c, random_crop(x, np.random.default_rng(0), pad=4, mode="zero"))
    assert not np.array_equal(c, x)
    f = random_flip(x, np.random.default_rng(0))
    flipped = np.array([np.array_equal(f[i], x[i, :, ::-1]) for i in range(len(x))])
    kept = np.array([np.array_equal(f[i], x[i]) for i in range(len(x))])
    assert np.all(flipped ^ kept) and 16 < flipped.sum() < 48
    both = random_crop_flip(x, np.random.default_rng(5))
    assert both.shape == x.shape and both.dtype == np.float32


def test_alternating_flip_sees_both_ways():
    x = images(40)
    mask = draw_flip_mask(len(x), np.random.default_rng(0))
    e0, e1, e2 = (alternating_flip(x, e, mask) for e in (0, 1, 2))
    np.testing.assert_array_equal(e0, e2)
    for i in range(len(x)):
        pair = [e1[i], e0[i]] if mask[i] else [e0[i], e1[i]]     # [unflipped, flipped]
        np.testing.assert_array_equal(pair[0], x[i])
        np.testing.assert_array_equal(pair[1], x[i, :, ::-1])


def test_augment_errors_quote_values():
    x = images(2)
    with pytest.raises(ValueError, match="mode must be one of .* got 'wrap'"):
        random_crop(x, np.random.default_rng(0), mode="wrap")
    with pytest.raises(ValueError, match="pad must be .* got 32"):
        random_crop(x, np.random.default_rng(0), pad=32)
    with pytest.raises(ValueError, match=r"expected images \(N, H, W, C\), got \(32, 32, 3\)"):
        random_flip(x[0], np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"expected flip of shape \(2,\), got \(3,\)"):
        crop_flip(x, [0, 0], [0, 0], [True] * 3)
