"""Tests for minicnn.data.loader: mini-batches, epochs and exact resume."""
import json

import numpy as np
import pytest

from minicnn.data import BatchLoader, CropFlip, iterate_batches


def images(n=6, h=32, w=32, c=3, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal((n, h, w, c)).astype(dtype)


def test_iterate_batches_covers_each_example_once():
    x, y = np.arange(103) * 10, np.arange(103)
    batches = list(iterate_batches(x, y, 10, rng=np.random.default_rng(0)))
    assert [len(b[1]) for b in batches] == [10] * 10 + [3]
    seen = np.concatenate([b[1] for b in batches])
    assert sorted(seen.tolist()) == list(range(103)) and not np.array_equal(seen, y)
    assert all(np.array_equal(xb, yb * 10) for xb, yb in batches)
    again = np.concatenate([b[1] for b in iterate_batches(x, y, 10, np.random.default_rng(0))])
    np.testing.assert_array_equal(seen, again)
    assert len(list(iterate_batches(x, y, 10, shuffle=False, drop_last=True))) == 10
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        next(iterate_batches(x, y, 0))


def test_batch_loader_epochs_and_exact_resume():
    x = images(50, 8, 8, 3)
    y = np.arange(50)
    make = lambda: BatchLoader(x, y, 16, seed=7, augment=CropFlip(len(x), pad=2))
    a = make()
    assert len(a) == 4
    ep0 = list(a)
    assert a.epoch == 1 and sorted(np.concatenate([yb for _, yb in ep0]).tolist()) == list(range(50))
    it = iter(a)
    next(it), next(it)                                  # two batches into epoch 1
    state = json.loads(json.dumps(a.state_dict()))      # through JSON, as a checkpoint would
    rest_a = list(it) + list(a)                         # rest of epoch 1, then epoch 2
    b = make()
    b.load_state_dict(state)
    rest_b = list(b) + list(b)
    assert len(rest_a) == len(rest_b) == 2 + 4
    for (xa, ya), (xb, yb) in zip(rest_a, rest_b):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xb)
    ep1_order = np.concatenate([yb for _, yb in rest_a[2:]])
    assert not np.array_equal(ep1_order, np.concatenate([yb for _, yb in ep0]))  # reshuffled
    assert a.epoch == b.epoch == 3


def test_lists_are_refused_with_what_was_expected():
    x, y = images(4).tolist(), [0, 1, 2, 3]
    for make in (lambda: BatchLoader(x, y, 2), lambda: next(iterate_batches(x, np.array(y), 2))):
        with pytest.raises(TypeError, match=r"expected numpy arrays x \(N, H, W, C\) and y \(N,\), "
                                            r"got x: list, y: (list|ndarray)"):
            make()


@pytest.mark.parametrize("change, message", [
    (lambda s: [], "expected a dict, got list"),
    (lambda s: {k: v for k, v in s.items() if k != "rng_state"}, r"missing keys \['rng_state'\]"),
    (lambda s: {**s, "batch": "1"}, "batch must be an int, got '1'"),
    (lambda s: {**s, "epoch": -1}, "expected epoch >= 0"),
    (lambda s: {**s, "rng_state": {"bit_generator": "MT19937"}}, "rng_state is not a state"),
    (lambda s: {**s, "rng_state": {**s["rng_state"], "state": {"state": -1, "inc": 1}}},
     "rng_state is not a state"),
])
def test_bad_loader_state_is_refused_and_changes_nothing(change, message):
    x, y = images(10, 4, 4, 3), np.arange(10)
    loader = BatchLoader(x, y, 4, seed=3)
    next(iter(loader))
    state = loader.state_dict()
    with pytest.raises(ValueError, match=message):
        loader.load_state_dict(change(json.loads(json.dumps(state))))
    assert loader.state_dict() == state
