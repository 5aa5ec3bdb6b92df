"""Checkpoints: round trip, damaged files, crashes mid-write, no pickle, bounded reading
(sizes declared by the zip directory and the .npy headers checked before any data)."""
import io
import json
import os
import pickle
import signal
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest

from minicnn.checkpoint import (MAX_CHECKPOINT_BYTES, CheckpointError, flatten, load_checkpoint,
                                read_npz, require_keys, save_checkpoint, unflatten)


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


# -- bounded reading ----------------------------------------------------------------
META = json.dumps({"format": "minicnn-checkpoint", "version": 1, "meta": {}}).encode()


def npy(descr, shape, data=b"", fortran_order=False):
    """The bytes of a .npy file whose header declares (descr, shape), followed by data."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": descr, "fortran_order": fortran_order, "shape": shape})
    return header.getvalue() + data


def write_zip(path, entries, method=zipfile.ZIP_STORED):
    """A zip of (name, bytes) entries, each with a correct CRC."""
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w", method) as z:
        warnings.simplefilter("ignore")                     # "Duplicate name"
        for name, data in entries:
            z.writestr(name, data)
    return path


def with_meta(*entries):
    return [("__meta__.npy", npy("|u1", (len(META),), META)), *entries]


def test_header_declaring_4_tib_is_refused_by_the_bound_not_memory(tmp_path):
    path = write_zip(tmp_path / "huge.npz", with_meta(("x.npy", npy("<f8", (2**39,), b"\0" * 64))))
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    msg = str(e.value)
    assert str(path) in msg and "'x'" in msg and "(549755813888,)" in msg
    assert f"{2**42} bytes, more than the bound of {MAX_CHECKPOINT_BYTES} bytes" in msg


def test_compression_bomb_is_refused_before_inflating(tmp_path):
    """8 MB of zeros deflates to 8 KB; with a 1 MB bound nothing is inflated."""
    path = tmp_path / "bomb.npz"
    save_checkpoint(path, {"x": np.zeros(2**20)}, compress=True)
    assert os.path.getsize(path) < 64 * 2**10
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match="more than 1048576 bytes unpacked") as e:
            load_checkpoint(path, max_bytes=2**20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(e.value) and peak < 2**20
    arrays, _ = load_checkpoint(path)                       # the default bound allows it
    assert arrays["x"].shape == (2**20,)


def patch_directory(path, entry, offset, value):
    """Overwrite a 4-byte field of ``entry``'s record in the zip's central directory
    (offset 20: compressed size, 24: uncompressed size, 8: flags)."""
    data = bytearray(path.read_bytes())
    name = entry.encode()
    at = data.find(b"PK\x01\x02")
    while data[at + 46:at + 46 + len(name)] != name:
        at = data.find(b"PK\x01\x02", at + 1)
    size = 2 if offset == 8 else 4
    data[at + offset:at + offset + size] = value.to_bytes(size, "little")
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("compress, patches, message", [
    (False, [(20, 3 * 2**30), (24, 3 * 2**30)], "claims 3221225472 compressed bytes, but the file"),
    (True, [(24, 3 * 2**30)], "more than deflate can"),
    (True, [(24, 3 * 2**20)], "more than deflate can"),
    (False, [(20, 10)], "stored uncompressed but claims 10 bytes in the file"),
    (False, [(8, 1)], "encrypted"),
])
def test_directory_that_lies_is_refused(tmp_path, compress, patches, message):
    path = tmp_path / "run.npz"
    save_checkpoint(path, {"x": np.arange(1000, dtype=np.float64)}, compress=compress)
    for offset, value in patches:
        patch_directory(path, "x.npy", offset, value)
    with pytest.raises(CheckpointError, match=message) as e:
        load_checkpoint(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("entries, message", [
    (with_meta(("x.npy", npy("<f8", (10,), b"\0" * 40))),
     r"\(10,\) of float64 \(128 \+ 80 bytes\), but the zip directory says 168"),
    (with_meta(("x.npy", npy("<f8", (2,), b"\0" * 16)), ("x.npy", npy("<f8", (2,), b"\0" * 16))),
     "'x.npy' appears twice"),
    (with_meta(("notes.txt", b"hello")), "'notes.txt' is not an .npy array"),
    (with_meta(("x.npy", npy("|O", (1,), b"\0" * 8))), "'x' is an object \\(pickled\\) array"),
    (with_meta(("x.npy", npy([("a", "<f4")], (1,), b"\0" * 4))), "has dtype"),
    (with_meta(("x.npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': 'zz'}\n")), "'x' cannot be read"),
    (with_meta(("x.npy", b"\x93NUMPY\x03\x00" + b"\0" * 60)), "format version \\(3, 0\\)"),
    ([("__meta__.npy", npy("|u1", (2,), b"[]"))], "not valid JSON|lacks format"),
])
def test_forged_entries_are_refused(tmp_path, entries, message):
    path = write_zip(tmp_path / "forged.npz", entries)
    with pytest.raises(CheckpointError, match=message) as e:
        load_checkpoint(path)
    assert str(path) in str(e.value)


def test_header_length_field_is_not_believed(tmp_path):
    """A version 2.0 header may declare up to 4 GiB of header text; numpy reads all it
    declares before checking its limit, so only the first bytes are handed to it."""
    path = tmp_path / "long_header.npz"
    entry = b"\x93NUMPY\x02\x00" + (2**31).to_bytes(4, "little") + b"{" + b" " * 2**25
    write_zip(path, with_meta(("x.npy", entry)), zipfile.ZIP_DEFLATED)
    assert os.path.getsize(path) < 2**20
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match="'x' cannot be read .*array header"):
            load_checkpoint(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20


def test_meta_that_is_not_a_dict_is_refused(tmp_path):
    text = json.dumps({"format": "minicnn-checkpoint", "version": 1, "meta": [1, 2]}).encode()
    path = write_zip(tmp_path / "list.npz", [("__meta__.npy", npy("|u1", (len(text),), text))])
    with pytest.raises(CheckpointError, match="meta of type list, expected a dict"):
        load_checkpoint(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
@pytest.mark.parametrize("kind, word", [("fifo", "FIFO"), ("directory", "directory"),
                                        ("device", "character device")])
def test_non_regular_files_are_refused_at_once(tmp_path, kind, word):
    path = tmp_path / "checkpoint.npz"
    {"fifo": os.mkfifo, "directory": os.mkdir,
     "device": lambda p: os.symlink(os.devnull, p)}[kind](path)
    signal.alarm(20)                                        # a blocking open fails the test
    try:
        with pytest.raises(CheckpointError, match=f"is (a|an) {word}") as e:
            load_checkpoint(path)
        with pytest.raises(CheckpointError, match=word):
            read_npz(path)
    finally:
        signal.alarm(0)
    assert str(path) in str(e.value)


def test_read_npz_matches_np_load(tmp_path):
    path = tmp_path / "arrays.npz"
    arrays = {"f": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
              "be": np.arange(4, dtype=">i2"),
              "s": np.array([b"ab", b"c"]), "u": np.array(["xyz", ""]), "empty": np.zeros((0, 3)),
              "scalar": np.asarray(2.5, np.float32), "c": np.array([1 + 2j], np.complex64)}
    for compress in (False, True):
        (np.savez_compressed if compress else np.savez)(path, **arrays)
        got = read_npz(path)
        assert sorted(got) == sorted(arrays)
        for key, value in arrays.items():
            assert got[key].dtype == value.dtype and got[key].shape == value.shape, key
            assert got[key].flags.f_contiguous == value.flags.f_contiguous, key
            np.testing.assert_array_equal(got[key], value, err_msg=key)


def test_require_keys_names_every_missing_key(tmp_path):
    require_keys({"a": 1, "b": 2}, ["a", "b"], "run.npz", "meta entries")
    with pytest.raises(CheckpointError) as e:
        require_keys({"a": 1}, ["a", "loader", "lookahead"], "run.npz", "meta entries")
    assert str(e.value).startswith("run.npz: missing meta entries ['loader', 'lookahead'] "
                                   "(it holds ['a'])")
    with pytest.raises(CheckpointError, match="expected arrays as a dict, got list"):
        require_keys([], ["model"], "run.npz", "arrays")
