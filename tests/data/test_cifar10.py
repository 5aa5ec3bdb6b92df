"""Tests for minicnn.data.cifar10: reading and validating CIFAR-10, and locating it.

Small fake datasets (4 records a batch) are written to tmp_path in both official layouts.
The real data (../shared/data/cifar-10-batches-bin or $MINICNN_DATA) is used when present.
"""
import io
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from minicnn.data import DatasetError, DatasetNotFoundError, channel_stats, load_cifar10, read_cifar10
from minicnn.data import cifar10

from conftest import ROOT

N = 4  # records per fake batch file
NAMES = ["c%d" % i for i in range(10)]


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """Small batches, and no real MINICNN_DATA or ~/.cache visible to the tests."""
    monkeypatch.setattr(cifar10, "RECORDS_PER_BATCH", N)
    monkeypatch.delenv("MINICNN_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def fake_split(seed, n):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n)


def to_records(x, y):
    """(n, 32, 32, 3) + (n,) -> binary records (n, 3073): label, R plane, G plane, B plane."""
    planes = x.transpose(0, 3, 1, 2).reshape(len(x), 3072)
    return np.hstack([y[:, None].astype(np.uint8), planes])


class Py2Pickler(pickle._Pickler):
    """Writes bytes and ASCII str the way Python 2 did (BINSTRING), like the official files."""
    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj):
        self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)
    dispatch[bytes] = save_bytes

    def save_str(self, obj):
        self.save_bytes(obj.encode("ascii")) if obj.isascii() else super().save_str(obj)
    dispatch[str] = save_str


def py2_dumps(obj):
    f = io.BytesIO()
    Py2Pickler(f, protocol=2).dump(obj)
    return f.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def write_dataset(root, layout="binary", py2=True):
    """Write a fake 5+1 batch dataset under root; returns (folder, dict of source arrays)."""
    folder = root / cifar10.LAYOUTS[layout][0]
    folder.mkdir(parents=True)
    xs, ys = zip(*[fake_split(i, N) for i in range(6)])
    for i, (x, y) in enumerate(zip(xs, ys)):
        stem = f"data_batch_{i + 1}" if i < 5 else "test_batch"
        if layout == "binary":
            (folder / (stem + ".bin")).write_bytes(to_records(x, y).tobytes())
        else:
            d = {b"batch_label": b"fake", b"labels": [int(v) for v in y],
                 b"data": x.transpose(0, 3, 1, 2).reshape(N, 3072).copy(), b"filenames": []}
            (folder / stem).write_bytes(py2_dumps(d) if py2 else pickle.dumps(d, protocol=4))
    if layout == "binary":
        (folder / "batches.meta.txt").write_text("\n".join(NAMES) + "\n\n")
    else:
        meta = {b"label_names": [n.encode() for n in NAMES], b"num_cases_per_batch": N}
        (folder / "batches.meta").write_bytes(py2_dumps(meta))
    return folder, {"x_train": np.concatenate(xs[:5]), "y_train": np.concatenate(ys[:5]),
                    "x_test": xs[5], "y_test": ys[5]}


def assert_same(data, src):
    for k, v in src.items():
        np.testing.assert_array_equal(data[k], v, err_msg=k)
    assert data["y_train"].dtype == np.int64 and data["x_train"].dtype == np.uint8
    assert data["x_train"].shape == (5 * N, 32, 32, 3)
    assert data["class_names"] == NAMES


# ---------------------------------------------------------------- decoding and validation
def test_binary_record_byte_order():
    """Hand-built record: byte 1 + c*1024 + r*32 + col is channel c of pixel (r, col)."""
    rec = bytearray(3073 * N)
    for n in range(N):
        rec[n * 3073] = n
        for c in range(3):
            for r in range(32):
                for col in range(32):
                    rec[n * 3073 + 1 + c * 1024 + r * 32 + col] = (n * 7 + c * 50 + r * 3 + col) % 256
    x, y = cifar10.decode_bin(bytes(rec), "hand-built")
    assert x.shape == (N, 32, 32, 3) and y.tolist() == list(range(N))
    assert x[2, 5, 9, 1] == (2 * 7 + 50 + 15 + 9) % 256 and x[3, 31, 0, 2] == (21 + 100 + 93) % 256


@pytest.mark.parametrize("layout,py2", [("binary", True), ("python", True), ("python", False)])
def test_read_folder_both_layouts(tmp_path, layout, py2):
    folder, src = write_dataset(tmp_path, layout, py2)
    assert_same(read_cifar10(tmp_path), src)            # parent of the batches folder
    assert_same(load_cifar10(folder, download=False), src)   # the batches folder itself


@pytest.mark.parametrize("layout", ["binary", "python"])
def test_read_from_tar_gz(tmp_path, layout):
    folder, src = write_dataset(tmp_path / "src", layout)
    archive = tmp_path / "dl" / ("cifar-10-%s.tar.gz" % layout)
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    data = load_cifar10(archive.parent, download=False)
    assert_same(data, src)
    assert data["source"] == str(archive)


@pytest.mark.parametrize("delta,word", [(-1, "truncated"), (+1, "oversized"), (-3073, "truncated")])
def test_bad_bin_size_is_rejected(tmp_path, delta, word):
    folder, _ = write_dataset(tmp_path)
    f = folder / "data_batch_3.bin"
    raw = f.read_bytes()
    f.write_bytes(raw[:delta] if delta < 0 else raw + b"\0" * delta)
    with pytest.raises(DatasetError, match=word) as e:
        read_cifar10(folder)
    msg = str(e.value)
    assert "data_batch_3.bin" in msg and f"expected {N * 3073} bytes" in msg
    assert f"got {N * 3073 + delta}" in msg


def test_label_out_of_range_is_rejected(tmp_path):
    folder, _ = write_dataset(tmp_path)
    f = folder / "test_batch.bin"
    raw = bytearray(f.read_bytes())
    raw[2 * 3073] = 10                                   # label of record 2
    f.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match=r"test_batch.bin: labels must be in 0..9, got 10 at record 2"):
        read_cifar10(folder)


@pytest.mark.parametrize("bad", ["shape", "dtype", "labels", "not_dict", "garbage"])
def test_bad_pickle_is_rejected(tmp_path, bad):
    folder, _ = write_dataset(tmp_path, "python")
    data = np.zeros((N, 3072), np.uint8)
    obj = {"shape": {b"data": data[:, :100], b"labels": [0] * N},
           "dtype": {b"data": data.astype(np.float32), b"labels": [0] * N},
           "labels": {b"data": data, b"labels": [0] * (N - 1) + [11]},
           "not_dict": [data], "garbage": None}[bad]
    raw = b"\x80\x02garbage" if bad == "garbage" else pickle.dumps(obj, protocol=4)
    (folder / "data_batch_2").write_bytes(raw)
    with pytest.raises(DatasetError, match="data_batch_2"):
        read_cifar10(folder)


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("dumps", [py2_dumps, lambda o: pickle.dumps(o, protocol=4)])
def test_malicious_pickle_does_not_run(tmp_path, dumps):
    folder, _ = write_dataset(tmp_path, "python")
    marker = tmp_path / "pwned"
    (folder / "data_batch_1").write_bytes(dumps({b"data": Evil(marker), b"labels": [0] * N}))
    with pytest.raises(DatasetError, match=r"refusing to load global (posix|os|nt)\.system"):
        read_cifar10(folder)
    assert not marker.exists()
    control = tmp_path / "control"                      # the payload does work when trusted
    pickle.loads(dumps({b"data": Evil(control)}))
    assert control.exists()
    with pytest.raises(pickle.UnpicklingError, match="builtins.eval"):
        cifar10.RestrictedUnpickler(io.BytesIO()).find_class("builtins", "eval")


# ---------------------------------------------------------------- locating
def test_not_found_without_download_lists_places(tmp_path, monkeypatch):
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path / "env"))
    with pytest.raises(DatasetNotFoundError) as e:
        load_cifar10(tmp_path / "arg", download=False)
    msg = str(e.value)
    assert isinstance(e.value, FileNotFoundError)
    for place in (tmp_path / "arg", tmp_path / "env", tmp_path / "home/.cache/minicnn"):
        assert str(place) in msg
    assert "--data-dir" in msg and "MINICNN_DATA" in msg


def test_search_order(tmp_path, monkeypatch):
    _, src_env = write_dataset(tmp_path / "env")
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path / "env"))
    assert_same(load_cifar10(download=False), src_env)           # env var
    _, src_arg = write_dataset(tmp_path / "arg", "python")
    assert_same(load_cifar10(tmp_path / "arg", download=False), src_arg)  # argument wins
    with pytest.warns(UserWarning, match="no CIFAR-10 in data_dir"):     # falls back, says so
        assert_same(load_cifar10(tmp_path / "empty", download=False), src_env)
    monkeypatch.delenv("MINICNN_DATA")
    _, src_cache = write_dataset(tmp_path / "home/.cache/minicnn")
    assert_same(load_cifar10(download=False), src_cache)        # cache


# ---------------------------------------------------------------- real data
def real_dir():
    env = os.environ.get("MINICNN_DATA")
    d = Path(env) if env else ROOT.parent / "shared/data/cifar-10-batches-bin"
    return d if cifar10.find_in(d) else None


REAL = real_dir()   # read at import, before the fixture hides MINICNN_DATA


@pytest.fixture(scope="module")
def real():
    if REAL is None:
        pytest.skip("real CIFAR-10 not found (../shared/data or MINICNN_DATA)")
    mp = pytest.MonkeyPatch()
    mp.setattr(cifar10, "RECORDS_PER_BATCH", 10_000)
    try:
        return load_cifar10(REAL, download=False)
    finally:
        mp.undo()


def test_real_data(real):
    assert real["x_train"].shape == (50000, 32, 32, 3) and real["x_test"].shape == (10000, 32, 32, 3)
    assert real["x_train"].dtype == np.uint8 and real["y_train"].dtype == np.int64
    assert np.bincount(real["y_train"]).tolist() == [5000] * 10
    assert np.bincount(real["y_test"]).tolist() == [1000] * 10
    assert real["class_names"][0] == "airplane" and real["class_names"][9] == "truck"
    mean, std = channel_stats(real["x_train"])
    np.testing.assert_allclose(mean, [0.4914, 0.4822, 0.4465], atol=1e-4)
    np.testing.assert_allclose(std, [0.2470, 0.2435, 0.2616], atol=1e-4)
    if cifar10.find_in(REAL)[0] == "binary":        # spot-check records against raw bytes
        folder = cifar10.find_in(REAL)[1]
        with open(folder / "data_batch_4.bin", "rb") as f:
            f.seek(1234 * 3073)
            rec = f.read(3073)
        i = 30000 + 1234
        assert real["y_train"][i] == rec[0]
        assert real["x_train"][i, 7, 19, 2] == rec[1 + 2 * 1024 + 7 * 32 + 19]
