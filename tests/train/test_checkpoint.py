"""Checkpoints: round trip, damaged files, crashes mid-write, no pickle."""
import json
import os
import pickle

import numpy as np
import pytest

from minicnn.checkpoint import (CheckpointError, flatten, load_checkpoint, save_checkpoint,
                                unflatten)


def sample_arrays():
    return {"model/0.W": np.arange(6, dtype=np.float32).reshape(2, 3),
            "model/0.b": np.zeros(3, np.float32),
            "optim/step": np.asarray(7),
            "optim/type": np.asarray("SGD"),
            "data/order": np.array([2, 0, 1], np.int64),
            "flags": np.array([True, False])}


def assert_same(a, b):
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        np.testing.assert_array_equal(a[key], b[key])


def test_round_trip_with_meta(tmp_path):
    path = tmp_path / "run.npz"
    meta = {"epoch": 3, "config": {"lr": 0.1, "layers": [16, 32]}, "note": None, "ok": True}
    save_checkpoint(path, sample_arrays(), meta)
    arrays, loaded_meta = load_checkpoint(path)
    assert_same(arrays, sample_arrays())
    assert loaded_meta == meta
    assert os.listdir(tmp_path) == ["run.npz"]      # no temp files left behind


def test_compressed_and_exact_path(tmp_path):
    path = str(tmp_path / "ckpt.bin")               # no ".npz" gets appended
    save_checkpoint(path, sample_arrays(), compress=True)
    arrays, meta = load_checkpoint(path)
    assert_same(arrays, sample_arrays())
    assert meta == {}
    assert os.listdir(tmp_path) == ["ckpt.bin"]


def test_overwrite_replaces_the_previous_checkpoint(tmp_path):
    path = tmp_path / "run.npz"
    save_checkpoint(path, {"x": np.zeros(2)}, {"epoch": 1})
    save_checkpoint(path, {"x": np.ones(2)}, {"epoch": 2})
    arrays, meta = load_checkpoint(path)
    np.testing.assert_array_equal(arrays["x"], [1.0, 1.0])
    assert meta == {"epoch": 2}


def test_flatten_unflatten_round_trip():
    nested = {"model": {"0.W": 1, "1.gamma": 2}, "optim": {"step": 3}, "epoch": 4}
    flat = flatten(nested)
    assert flat == {"model/0.W": 1, "model/1.gamma": 2, "optim/step": 3, "epoch": 4}
    assert unflatten(flat) == nested
    with pytest.raises(ValueError, match="without '/'"):
        flatten({"a/b": 1})
    with pytest.raises(ValueError, match="clashes"):
        unflatten({"a": 1, "a/b": 2})


@pytest.mark.parametrize("keep", [0, 10, 0.5, -30])
def test_truncated_file_raises_checkpoint_error(tmp_path, keep):
    path = tmp_path / "run.npz"
    save_checkpoint(path, sample_arrays(), {"epoch": 1})
    data = path.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else keep % len(data)
    path.write_bytes(data[:cut])
    with pytest.raises(CheckpointError, match="run.npz"):
        load_checkpoint(path)


def test_corrupted_bytes_raise_checkpoint_error(tmp_path):
    path = tmp_path / "run.npz"
    save_checkpoint(path, {"x": np.arange(1000, dtype=np.float64)})
    data = bytearray(path.read_bytes())
    i = data.find(np.arange(1000, dtype=np.float64)[500:].tobytes()[:16])
    assert i > 0
    data[i:i + 8] = b"\xff" * 8                      # damage the array bytes: CRC mismatch
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="'x' cannot be read"):
        load_checkpoint(path)


def test_foreign_files_raise_checkpoint_error(tmp_path):
    plain_npz = tmp_path / "plain.npz"
    np.savez(plain_npz, x=np.zeros(2))
    with pytest.raises(CheckpointError, match="no '__meta__' entry"):
        load_checkpoint(plain_npz)

    npy = tmp_path / "single.npy"
    np.save(npy, np.zeros(2))
    with pytest.raises(CheckpointError, match="single .npy array"):
        load_checkpoint(npy)

    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="notes.txt"):
        load_checkpoint(text)

    newer = tmp_path / "newer.npz"
    header = json.dumps({"format": "minicnn-checkpoint", "version": 99, "meta": {}})
    np.savez(newer, __meta__=np.frombuffer(header.encode(), np.uint8))
    with pytest.raises(CheckpointError, match="version 99"):
        load_checkpoint(newer)

    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_checkpoint(tmp_path / "missing.npz")


def test_object_array_is_rejected_not_unpickled(tmp_path):
    path = tmp_path / "evil.npz"
    header = json.dumps({"format": "minicnn-checkpoint", "version": 1, "meta": {}})
    np.savez(path, allow_pickle=True, __meta__=np.frombuffer(header.encode(), np.uint8),
             payload=np.array([{"a": 1}], dtype=object))
    with pytest.raises(CheckpointError, match="'payload' is an object"):
        load_checkpoint(path)


def test_loading_never_calls_pickle(tmp_path, monkeypatch):
    path = tmp_path / "run.npz"
    save_checkpoint(path, sample_arrays(), {"epoch": 1})

    def refuse(*args, **kwargs):
        raise AssertionError("pickle was used")
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    arrays, _ = load_checkpoint(path)
    assert_same(arrays, sample_arrays())


@pytest.mark.parametrize("arrays, meta, message", [
    ({"x": np.array([object()], dtype=object)}, None, "'x' has dtype object"),
    ({"model": {"0.W": np.zeros(2)}}, None, "flatten"),
    ({"__meta__": np.zeros(2)}, None, "reserved"),
    ({"file": np.zeros(2)}, None, "reserved"),
    ({"x": np.zeros(2)}, {"bad": np.zeros(2)}, "JSON"),
])
def test_save_refuses_bad_input_and_writes_nothing(tmp_path, arrays, meta, message):
    with pytest.raises((TypeError, ValueError), match=message):
        save_checkpoint(tmp_path / "run.npz", arrays, meta)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("where", ["savez", "fsync", "replace"])
def test_crash_mid_write_keeps_previous_checkpoint(tmp_path, monkeypatch, where):
    path = tmp_path / "run.npz"
    save_checkpoint(path, sample_arrays(), {"epoch": 1})
    before = path.read_bytes()

    def crash(*args, **kwargs):
        if where == "savez":
            args[0].write(b"PK\x03\x04 partial bytes")
        raise OSError(f"simulated crash in {where}")
    monkeypatch.setattr(np if where == "savez" else os, where, crash)
    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(path, {"x": np.ones(3)}, {"epoch": 2})
    monkeypatch.undo()

    assert os.listdir(tmp_path) == ["run.npz"]      # temp file removed
    assert path.read_bytes() == before
    arrays, meta = load_checkpoint(path)
    assert_same(arrays, sample_arrays())
    assert meta == {"epoch": 1}
