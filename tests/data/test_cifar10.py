"""Tests for minicnn.data.cifar10: reading and validating CIFAR-10, and locating it.

Small fake datasets (4 records a batch) are written to tmp_path in both official layouts.
The real data (../shared/data/cifar-10-batches-bin or $MINICNN_DATA) is used when present.
"""
import gzip
import io
import os
import pickle
import signal
import struct
import subprocess
import sys
import tarfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from helpers import Py2Pickler

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




def py2_dumps(obj):
    f = io.BytesIO()
    Py2Pickler(f, protocol=2).dump(obj)
    return f.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def write_dataset(root, layout="binary", py2=True, protocol=4):
    """Write a fake 5+1 batch dataset under root; returns (folder, dict of source arrays).
    Python layout: Python 2 style pickles (py2), else pickle.dumps with ``protocol``."""
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
            (folder / stem).write_bytes(py2_dumps(d) if py2 else pickle.dumps(d, protocol=protocol))
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


@pytest.mark.parametrize("dumps", [py2_dumps] + [lambda o, p=p: pickle.dumps(o, protocol=p)
                                                 for p in (0, 2, 4, 5)])
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


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_python3_pickles_of_every_protocol_load(tmp_path, protocol):
    """pickle.dumps of the batch dicts as a Python 3 user writes them: protocols 0-2 store
    bytes through _codecs.encode (and b'' through bytes()), numpy scalars through scalar(),
    protocol 5 arrays through _frombuffer. Labels as numpy ints and as an array load too."""
    folder, src = write_dataset(tmp_path, "python", py2=False, protocol=protocol)
    for stem, labels in (("data_batch_2", lambda y: [np.int64(v) for v in y]),
                         ("test_batch", lambda y: np.array(y, np.int32))):
        d = pickle.loads((folder / stem).read_bytes())
        d[b"labels"], d[b"batch_label"] = labels(d[b"labels"]), b""
        (folder / stem).write_bytes(pickle.dumps(d, protocol=protocol))
    assert_same(read_cifar10(folder), src)


@pytest.mark.parametrize("labels, message", [
    ([0.0, 1.0, 2.0, 3.0], r"expected integer labels, got 0.0 \(float\) at record 0"),
    ([0, 1, 2.5, 3], r"got 2.5 \(float\) at record 2"),
    ([0, True, 2, 3], r"got True \(bool\) at record 1"),
    (np.array([0.0, 1.0, 2.0, 3.0]), "expected integer labels, got an array of float64"),
    ([0, 1, 2, 10], "labels must be in 0..9, got 10 at record 3"),
    ([0, 1, -1, 3], "labels must be in 0..9, got -1 at record 2"),
    ([0, 1, 2, 10**30], "labels must be in 0..9, got 1000000000000000000000000000000"),
    (np.array([0, 1, 2, 2**63 + 1], np.uint64), "labels must be in 0..9, got 9223372036854775809"),
    ([0, 1, 2], "expected 4 labels, got 3"),
    ("0123", "expected labels as a list of ints, got str"),
])
def test_labels_that_are_not_integers_in_range_are_refused(tmp_path, labels, message):
    folder, _ = write_dataset(tmp_path, "python")
    d = {b"data": np.zeros((N, 3072), np.uint8), b"labels": labels}
    (folder / "data_batch_4").write_bytes(pickle.dumps(d, protocol=2))
    with pytest.raises(DatasetError, match=message) as e:
        read_cifar10(folder)
    assert str(folder / "data_batch_4") in str(e.value)


class ArrayState:
    """Pickles as numpy pickles an array, with the state (shape, dtype, data) given.
    numpy's own ndarray.__setstate__ crashes the interpreter on an object dtype with a
    shape of 10**6 and an empty list."""

    def __init__(self, shape, dtype, data):
        self.state = (1, shape, np.dtype(dtype), False, data)

    def __reduce__(self):
        return np.empty(0).__reduce__()[0], (np.ndarray, (0,), b"b"), self.state


class CallsNdarray:
    """numpy.ndarray((2**40,)) in a pickle: a 1 TiB allocation if it were called."""

    def __reduce__(self):
        return np.ndarray, ((2**40,),)


@pytest.mark.parametrize("raw, message", [
    (pickle.dumps({b"data": ArrayState((10**6,), object, [])}, protocol=2), "refusing dtype 'O"),
    (pickle.dumps({b"data": ArrayState((10**6,), object, [])}, protocol=4), "refusing dtype 'O"),
    (pickle.dumps(ArrayState((3,), np.float64, b"\0" * 16), protocol=2), "needs 24 bytes, got 16"),
    (pickle.dumps(ArrayState((10**12,), np.float64, b""), protocol=4),
     "needs 8000000000000 bytes, got 0"),
    (pickle.dumps({b"data": CallsNdarray()}, protocol=2), "ndarray may only appear"),
    (b"\x80\x02Nr\xff\xff\xff\x07.", "memo index 134217727 at opcode 2"),
    (b"\x80\x04\x8e" + struct.pack("<Q", 2**40) + b"x.", "expected 1099511627776 bytes"),
    (pickle.dumps(np.zeros(3, dtype=[("a", "<f4")]), protocol=2), "refusing dtype"),
])
def test_pickles_that_would_crash_or_allocate_are_refused(raw, message):
    """Run in a child process: a crash there fails this test instead of ending the run."""
    code = ("import sys\nfrom minicnn.data.safe_pickle import load_pickle\n"
            "from minicnn.data import DatasetError\n"
            "try:\n    load_pickle(sys.stdin.buffer.read(), 'the file')\n"
            "except DatasetError as e:\n    print(e)\nelse:\n    print('loaded')\n")
    child = subprocess.run([sys.executable, "-c", code], input=raw, capture_output=True,
                           timeout=120, cwd=ROOT)
    assert child.returncode == 0, f"the child died ({child.returncode}): {child.stderr[-500:]}"
    out = child.stdout.decode()
    assert out.startswith("the file: not a valid CIFAR-10 pickle") and message in out, out


def test_memo_bomb_is_refused_without_allocating():
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match="memo index"):
            cifar10.load_pickle(b"\x80\x02Nr\xff\xff\xff\x07.", "bomb")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20


# ---------------------------------------------------------------- archives and special files
def archive_bytes(folder, compresslevel):
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as t:
        t.add(folder, arcname=folder.name)
    return tar.getvalue(), gzip.compress(tar.getvalue(), compresslevel=compresslevel, mtime=0)


def test_flipped_pixel_in_archive_is_caught_by_the_gzip_crc(tmp_path):
    """Stored (level 0) deflate blocks hold the tar bytes as they are, so a flipped byte
    decompresses fine: only the CRC-32 in the gzip trailer can tell."""
    folder, src = write_dataset(tmp_path / "src")
    tar, gz = archive_bytes(folder, compresslevel=0)
    archive = tmp_path / "cifar-10-binary.tar.gz"
    archive.write_bytes(gz)
    assert_same(read_cifar10(archive), src)
    pixel = to_records(*fake_split(2, N)).tobytes()[1:40]      # data_batch_3, record 0
    at = gz.find(pixel)
    assert at > 0 and tar.count(pixel) == 1
    damaged = bytearray(gz)
    damaged[at + 20] ^= 0x04
    archive.write_bytes(bytes(damaged))
    with pytest.raises(DatasetError, match="CRC check failed") as e:
        read_cifar10(archive)
    assert str(archive) in str(e.value)
    archive.write_bytes(gz[:-8])                                # no CRC/length trailer
    with pytest.raises(DatasetError, match="not a readable .tar.gz"):
        read_cifar10(archive)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
def test_fifo_or_directory_where_a_file_is_expected_is_refused_at_once(tmp_path):
    folder, _ = write_dataset(tmp_path / "bin")
    (folder / "data_batch_1.bin").unlink()
    os.mkfifo(folder / "data_batch_1.bin")
    py_folder, _ = write_dataset(tmp_path / "py", "python")
    (py_folder / "test_batch").unlink()
    (py_folder / "test_batch").mkdir()
    os.mkfifo(tmp_path / "cifar-10-binary.tar.gz")
    signal.alarm(20)                                        # a blocking open fails the test
    try:
        with pytest.raises(DatasetError, match="data_batch_1.bin: is a FIFO"):
            read_cifar10(folder)
        with pytest.raises(DatasetError, match="test_batch: is a directory, expected a regular"):
            read_cifar10(py_folder)
        with pytest.raises(DatasetError, match="cifar-10-binary.tar.gz: is a FIFO"):
            read_cifar10(tmp_path)
        with pytest.raises(DatasetError, match="cifar-10-binary.tar.gz: is a FIFO .*expected "
                                               "a folder or a .tar.gz file"):
            read_cifar10(tmp_path / "cifar-10-binary.tar.gz")
    finally:
        signal.alarm(0)


def test_incomplete_folder_names_the_missing_files_and_downloads_nothing(tmp_path):
    folder, _ = write_dataset(tmp_path / "d")
    (folder / "data_batch_1.bin").unlink()
    before = sorted(os.listdir(folder))
    calls = []

    def urlopen(url, timeout=None):
        calls.append(url)
        raise AssertionError("no download should be tried")
    for path in (folder, tmp_path / "d"):               # the folder itself, or its parent
        with pytest.raises(DatasetError) as e:
            load_cifar10(path, urlopen=urlopen)
        msg = str(e.value)
        assert msg.startswith(f"{folder}: incomplete CIFAR-10 binary layout: missing "
                              f"data_batch_1.bin; present: data_batch_2.bin, data_batch_3.bin, "
                              f"data_batch_4.bin, data_batch_5.bin, test_batch.bin, "
                              f"batches.meta.txt."), msg
        assert "delete" not in msg.lower() and "remove" not in msg.lower()
    assert calls == [] and sorted(os.listdir(folder)) == before
    for name in before:
        (folder / name).unlink()
    (folder / "batches.meta.txt").write_text("\n".join(NAMES))
    with pytest.raises(DatasetError, match="missing data_batch_1.bin, data_batch_2.bin, "
                                           "data_batch_3.bin, data_batch_4.bin, "
                                           "data_batch_5.bin, test_batch.bin; present: "
                                           "batches.meta.txt"):
        load_cifar10(folder, urlopen=urlopen)
    assert calls == []


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
