"""Fuzzing every file reader of minicnn's data and checkpoints.

Targets: the CIFAR-10 binary batch reader, the python-layout pickle reader (batches and
batches.meta), the .tar.gz archive reader (read_cifar10 and safe_extract),
load_checkpoint and Sequential.load. Every input must load correctly or raise the
library's own error (DatasetError or CheckpointError, both ValueErrors) whose message
holds the file's path: never another exception, a hang (SECONDS_PER_CASE) or a large
allocation (MEMORY_PER_CASE, traced with tracemalloc, which sees numpy's buffers too).
"Correctly" is checked against what was written, or, for checkpoints, against np.load.

Inputs: small valid files, then truncated, bit-flipped, overwritten, extended or replaced
by random bytes, the damage aimed half the time at fields that declare sizes (zip
directory, .npy header, tar header, pickle opcodes); and forged files whose checksums are
right but whose declarations lie (huge shapes, sizes that disagree, object dtypes, float
labels, duplicate entries).

Deterministic (derandomize=True) and fast by default: MINICNN_FUZZ_EXAMPLES examples per
target (60 unless set). A long run:

    MINICNN_FUZZ_EXAMPLES=2000 python -m pytest -q tests/fuzz/test_fuzz_loaders.py

The number of cases each target ran, and how many were refused, is printed at the end.
"""
import collections
import contextlib
import gzip
import io
import math
import os
import pickle
import pickletools
import re
import shutil
import signal
import struct
import tarfile
import threading
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from helpers import Py2BytesPickler

from minicnn.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from minicnn.data import DatasetError, read_cifar10, safe_extract
from minicnn.data import cifar10
from minicnn.nn import Dense, ReLU, Sequential

EXAMPLES = int(os.environ.get("MINICNN_FUZZ_EXAMPLES", "60"))
FUZZ = settings(derandomize=True, max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SECONDS_PER_CASE = 20            # a read that takes longer counts as a hang
MEMORY_PER_CASE = 32 * 2**20     # the valid inputs need well under 1 MB
N = 4                            # records per fake batch
CASES = collections.Counter()


# -- valid starting points ------------------------------------------------------------
def fake_batches():
    """Six (x (N, 32, 32, 3) uint8, y (N,) int64) batches: five to train on, one to test."""
    rng = np.random.default_rng(0)
    return [(rng.integers(0, 256, (N, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, N))
            for _ in range(6)]


BATCHES = fake_batches()
NAMES = [f"class{i}" for i in range(10)]
STEMS = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def planes(x):
    """(n, 32, 32, 3) -> (n, 3072): R plane, G plane, B plane, as the files store them."""
    return x.transpose(0, 3, 1, 2).reshape(len(x), 3072)


def bin_batch(x, y):
    return np.hstack([y[:, None].astype(np.uint8), planes(x)]).tobytes()


def dumps(obj, protocol):
    """pickle.dumps, or protocol "py2": a Python 2 style pickle (numpy 1.x module names)."""
    if protocol != "py2":
        return pickle.dumps(obj, protocol=protocol)
    f = io.BytesIO()
    Py2BytesPickler(f, protocol=2).dump(obj)
    return f.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def py_batch(x, y, protocol="py2"):
    return dumps({b"batch_label": b"fake", b"labels": [int(v) for v in y],
                  b"data": planes(x).copy(), b"filenames": [b"a.png"] * len(y)}, protocol)


def py_meta(protocol="py2"):
    return dumps({b"label_names": [n.encode() for n in NAMES], b"num_cases_per_batch": N},
                 protocol)


def write_folder(root, layout):
    """A complete fake dataset of either layout under root; returns its folder."""
    folder = root / cifar10.LAYOUTS[layout][0]
    folder.mkdir(parents=True)
    for stem, (x, y) in zip(STEMS, BATCHES):
        if layout == "binary":
            (folder / f"{stem}.bin").write_bytes(bin_batch(x, y))
        else:
            (folder / stem).write_bytes(py_batch(x, y))
    if layout == "binary":
        (folder / "batches.meta.txt").write_text("\n".join(NAMES) + "\n")
    else:
        (folder / "batches.meta").write_bytes(py_meta())
    return folder


def tar_bytes(folder):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(folder, arcname=folder.name)
    return buffer.getvalue()


def small_model():
    return Sequential([Dense(4, 3, rng=0), ReLU(), Dense(3, 2, rng=1)])


def checkpoint_arrays():
    rng = np.random.default_rng(1)
    return {"model/0.W": rng.standard_normal((4, 3)).astype(np.float32),
            "model/0.b": np.zeros(3, np.float32), "optim/step": np.asarray(7),
            "optim/type": np.asarray("SGD"), "order": np.array([2, 0, 1], np.int64),
            "fortran": np.asfortranarray(rng.standard_normal((3, 2))),
            "big_endian": np.arange(5, dtype=">i4"), "flags": np.array([True, False])}


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """{name: bytes} of every valid starting point, and the folders they come from."""
    root = tmp_path_factory.mktemp("good")
    binary, python = write_folder(root / "b", "binary"), write_folder(root / "p", "python")
    save_checkpoint(root / "plain.npz", checkpoint_arrays(), {"epoch": 3, "lr": [0.1]})
    save_checkpoint(root / "packed.npz", checkpoint_arrays(), {"epoch": 3}, compress=True)
    small_model().save(root / "weights.npz")
    files = {"bin": bin_batch(*BATCHES[2]), "tar_binary": tar_bytes(binary),
             "tar_python": tar_bytes(python), "meta_py": py_meta(),
             "plain.npz": (root / "plain.npz").read_bytes(),
             "packed.npz": (root / "packed.npz").read_bytes(),
             "weights.npz": (root / "weights.npz").read_bytes()}
    for protocol in ("py2", 0, 2, 4, 5):
        files[f"pickle_{protocol}"] = py_batch(*BATCHES[1], protocol=protocol)
    return files, binary, python


@pytest.fixture(scope="module", autouse=True)
def small_batches():
    """Batch files of N records, as the fake data has."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cifar10, "RECORDS_PER_BATCH", N)
        yield


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module", autouse=True)
def report_case_counts(request):
    """Print how many cases each target ran, past pytest's output capture."""
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None and CASES:
        counts = ", ".join(f"{name} {n}" for name, n in sorted(CASES.items()))
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\ntest_fuzz_loaders ({EXAMPLES} examples a target): "
                                f"cases run: {counts}")


def assert_ran(target):
    assert CASES[target] >= EXAMPLES // 2, f"{target}: only {CASES[target]} cases ran"


# -- running one case ---------------------------------------------------------------
@contextlib.contextmanager
def bounded():
    """Fail the case if it runs longer than SECONDS_PER_CASE (a hang) or its traced
    allocations peak above MEMORY_PER_CASE."""
    timed = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if timed:
        def on_alarm(signum, frame):
            raise TimeoutError(f"still running after {SECONDS_PER_CASE} s: a hang")
        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, SECONDS_PER_CASE)
    tracemalloc.start()
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1]
        assert peak <= MEMORY_PER_CASE, f"allocated {peak} bytes while reading"
    finally:
        tracemalloc.stop()
        if timed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def load_or_refuse(target, load, path, error):
    """load(): its result, or None if it raised ``error`` with ``path`` in the message.
    Any other exception, a hang or a large allocation fails the case."""
    CASES[target] += 1
    with bounded():
        try:
            return load()
        except error as e:
            assert str(path) in str(e), f"the message does not name {path}: {e}"
            CASES[target + " refused"] += 1
            return None


# -- damage -------------------------------------------------------------------------
SIZE_LIKE = [b"\xff\xff\xff\xff", b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80", b"\x00\x00\x00\x00",
             b"\x00\x00\x01\x00", b"9999999999", b"77777777777"]


def zip_landmarks(data):
    """Offsets of the fields of a zip that hold sizes, counts, offsets, flags and methods,
    and of the start of each .npy header."""
    fields = {b"PK\x03\x04": (6, 8, 18, 22, 26, 28), b"PK\x01\x02": (8, 10, 16, 20, 24, 28, 30, 42),
              b"PK\x05\x06": (8, 10, 12, 16, 20), b"\x93NUMPY": (6, 8, 10, 20, 30, 40, 50)}
    return [m.start() + f for sig, offsets in fields.items()
            for m in re.finditer(re.escape(sig), data) for f in offsets]


def pickle_landmarks(data):
    """Offsets of every opcode of a pickle and of its argument."""
    return [p for _, _, pos in pickletools.genops(data) for p in (pos, pos + 1)][:4000]


def tar_landmarks(data):
    """Offsets of the name, size, checksum and type fields of each tar header."""
    return [m.start() - 257 + f for m in re.finditer(b"ustar", data) for f in (0, 124, 148, 156)]


@st.composite
def damaged(draw, data, landmarks=()):
    """``data`` damaged one to three times: cut, a bit flipped, bytes overwritten (with
    size-like values or random ones), inserted or appended, or all replaced by random
    bytes; half the time at a landmark."""
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["cut", "flip", "flip", "overwrite", "insert", "append",
                                   "random"]))
        if op == "random":
            data = bytearray(draw(st.binary(max_size=4096)))
            continue
        if landmarks and draw(st.booleans()):
            pos = min(draw(st.sampled_from(landmarks)), len(data))
        else:
            pos = draw(st.integers(0, len(data)))
        if op == "cut":
            del data[pos:]
        elif op == "flip" and pos < len(data):
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "overwrite":
            patch = draw(st.sampled_from(SIZE_LIKE) | st.binary(min_size=1, max_size=8))
            data[pos:pos + len(patch)] = patch
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "append":
            data += draw(st.binary(min_size=1, max_size=64)) * draw(st.sampled_from([1, 100]))
    return bytes(data)


# -- the readers --------------------------------------------------------------------
def read_dataset(target, folder, name, data):
    """Replace ``folder/name`` by ``data`` and read the folder: the fake dataset, or None."""
    path = folder / name
    original = path.read_bytes()
    path.write_bytes(data)
    try:
        return load_or_refuse(target, lambda: read_cifar10(folder), path, DatasetError)
    finally:
        path.write_bytes(original)


def assert_dataset(out, exact):
    """A loaded dataset has the documented shapes, dtypes and label range; ``exact``: it
    is also the fake dataset itself (its file is protected by a checksum)."""
    assert out["x_train"].shape == (5 * N, 32, 32, 3) and out["x_train"].dtype == np.uint8
    assert out["y_train"].shape == (5 * N,) and out["y_train"].dtype == np.int64
    assert out["x_test"].shape == (N, 32, 32, 3) and out["y_test"].shape == (N,)
    for y in (out["y_train"], out["y_test"]):
        assert y.min() >= 0 and y.max() <= 9
    assert len(out["class_names"]) == 10 and all(isinstance(n, str) for n in out["class_names"])
    if exact:
        np.testing.assert_array_equal(out["x_train"], np.concatenate([x for x, _ in BATCHES[:5]]))
        np.testing.assert_array_equal(out["y_train"], np.concatenate([y for _, y in BATCHES[:5]]))
        np.testing.assert_array_equal(out["x_test"], BATCHES[5][0])
        assert out["class_names"] == NAMES


def read_archive(target, workdir, data, exact):
    """Write ``data`` as an archive; read it with read_cifar10 and with safe_extract.
    ``exact``: a dataset read must be the fake one (the gzip CRC guards every byte)."""
    archive = workdir / "cifar-10-binary.tar.gz"
    archive.write_bytes(data)
    out = load_or_refuse(target, lambda: read_cifar10(archive), archive, DatasetError)
    if out is not None:
        assert_dataset(out, exact)
    target_dir = workdir / "extracted"
    shutil.rmtree(target_dir, ignore_errors=True)
    target_dir.mkdir()
    extracted = load_or_refuse(target + " extract", lambda: safe_extract(archive, target_dir),
                               archive, DatasetError)
    if extracted is None:
        assert list(target_dir.iterdir()) == [], "safe_extract refused but wrote files"
    return out


def read_checkpoint(target, workdir, data):
    path = workdir / "checkpoint.npz"
    path.write_bytes(data)
    out = load_or_refuse(target, lambda: load_checkpoint(path), path, CheckpointError)
    if out is not None:
        arrays, meta = out
        assert isinstance(meta, dict)
        with zipfile.ZipFile(path) as z:            # accepted: numpy reads the same arrays
            assert sorted(z.namelist()) == sorted(f"{key}.npy" for key in [*arrays, "__meta__"])
            for key, value in arrays.items():
                with z.open(f"{key}.npy") as f:
                    reference = np.lib.format.read_array(f, allow_pickle=False)
                assert value.dtype == reference.dtype and value.shape == reference.shape, key
                np.testing.assert_array_equal(value, reference, err_msg=key)
    return out


def read_weights(target, workdir, data):
    path = workdir / "weights.npz"
    path.write_bytes(data)
    model = small_model()
    for p in model.parameters():
        p[...] = 0
    out = load_or_refuse(target, lambda: model.load(path) or model, path, CheckpointError)
    if out is not None:                                           # the CRC guards every byte
        for name, value in small_model().state_dict().items():
            np.testing.assert_array_equal(out.state_dict()[name], value, err_msg=name)
    return out


# -- damaged valid files --------------------------------------------------------------
def test_binary_batches(good):
    files, binary, _ = good
    landmarks = [k * 3073 for k in range(N)] + [N * 3073]

    @FUZZ
    @given(data=damaged(files["bin"], landmarks), stem=st.sampled_from(STEMS))
    def run(data, stem):
        out = read_dataset("binary batch", binary, f"{stem}.bin", data)
        if out is not None:
            assert_dataset(out, exact=False)       # no checksum: pixels may differ
    run()
    assert_ran("binary batch")


def test_pickle_batches(good):
    files, _, python = good
    starts = [files[f"pickle_{p}"] for p in ("py2", 0, 2, 4, 5)] + [files["meta_py"]]

    @FUZZ
    @given(data=st.sampled_from(starts).flatmap(lambda s: damaged(s, pickle_landmarks(s))),
           name=st.sampled_from(STEMS + ["batches.meta"]))
    def run(data, name):
        out = read_dataset("pickle batch", python, name, data)
        if out is not None:
            assert_dataset(out, exact=False)
    run()
    assert_ran("pickle batch")


def test_archives(good, workdir):
    files, _, _ = good
    tars = [files["tar_binary"], files["tar_python"]]

    @FUZZ
    @given(tar=st.sampled_from(tars), level=st.sampled_from([0, 1, 9]), inner=st.booleans(),
           more=st.data())
    def run(tar, level, inner, more):
        if inner:      # damage the tar stream, then gzip it: a good CRC over bad content
            tar = more.draw(damaged(tar, tar_landmarks(tar)))
            read_archive("archive", workdir, gzip.compress(tar, level, mtime=0), exact=False)
        else:          # damage the gzip stream itself: header, data or CRC trailer
            data = gzip.compress(tar, level, mtime=0)
            data = more.draw(damaged(data, [0, 3, 4, 8, 9, 10, len(data) - 8, len(data) - 4]))
            read_archive("archive", workdir, data, exact=True)
    run()
    assert_ran("archive")


def test_checkpoints(good, workdir):
    files, _, _ = good
    starts = [files["plain.npz"], files["packed.npz"]]

    @FUZZ
    @given(data=st.sampled_from(starts).flatmap(lambda s: damaged(s, zip_landmarks(s))))
    def run(data):
        read_checkpoint("checkpoint", workdir, data)
    run()
    assert_ran("checkpoint")


def test_sequential_load(good, workdir):
    files, _, _ = good
    start = files["weights.npz"]

    @FUZZ
    @given(data=damaged(start, zip_landmarks(start)))
    def run(data):
        read_weights("Sequential.load", workdir, data)
    run()
    assert_ran("Sequential.load")


# -- forged files: checksums right, declarations wrong -----------------------------------
DESCRS = ["<f8", "<f4", "|u1", ">i4", "<i8", "<U3", "|S2", "|b1", "<c8", "|O", "|V8",
          "<M8[s]", [("a", "<f4")], "<f2", "bogus"]
HEADER_TEXT = (st.text(st.characters(max_codepoint=255), max_size=200)
               | st.builds("{{'descr': {}, 'fortran_order': {}, 'shape': {}, }}".format,
                           st.sampled_from(["'<f8'", "'<f8", "[]", "None", "{}", "1e999",
                                            "'<f8' if 1 else 2", "(" * 150 + ")" * 150]),
                           st.sampled_from(["False", "0", "None", "'x'"]),
                           st.sampled_from(["(3,)", "(-1,)", "(3.0,)", "[3]", "(True,)", "()",
                                            "(10**30,)", "(2**64, 2**64)", "(" * 150])))
DIMS = st.sampled_from([0, 1, 2, 3, 5, 2**20, 2**31, 2**40, 2**62, -1]) | st.integers(0, 6)


def npy_bytes(descr, fortran_order, shape, data, version=1, text=None):
    """A .npy file whose header says (descr, fortran_order, shape), or ``text`` if given,
    followed by data."""
    if text is None:
        text = "{'descr': %r, 'fortran_order': %r, 'shape': %r, }" % (descr, fortran_order, shape)
    prefix = 10 if version == 1 else 12
    text += " " * (-(prefix + len(text) + 1) % 64) + "\n"
    size = struct.pack("<H" if version == 1 else "<I", len(text))
    return b"\x93NUMPY" + bytes([version, 0]) + size + text.encode("latin1") + data


@st.composite
def forged_npz(draw, with_meta=True):
    """A zip of .npy entries with made-up headers and data, each CRC right."""
    entries = []
    if with_meta and draw(st.integers(0, 9)):
        text = b'{"format": "minicnn-checkpoint", "version": 1, "meta": {"epoch": 1}}'
        entries.append(("__meta__.npy", npy_bytes("|u1", False, (len(text),), text)))
    for _ in range(draw(st.integers(0, 3))):
        descr = draw(st.sampled_from(DESCRS))
        shape = tuple(draw(st.lists(DIMS, max_size=3)))
        try:
            itemsize = np.dtype(descr if isinstance(descr, str) else descr).itemsize
            exact = -1 if min(shape, default=0) < 0 else math.prod(shape) * itemsize
        except TypeError:
            exact = -1
        length = draw(st.sampled_from([exact, 0, 7, 64]) if 0 <= exact <= 4096
                      else st.sampled_from([0, 7, 64]))
        payload = draw(st.binary(min_size=length, max_size=length))
        name = draw(st.sampled_from(["x.npy", "y.npy", "x.npy", "model/0.W.npy", "notes.txt"]))
        text = draw(st.none() | st.none() | st.none() | HEADER_TEXT)
        entries.append((name, npy_bytes(descr, draw(st.booleans()), shape, payload,
                                        draw(st.sampled_from([1, 2])), text)))
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as z:
        warnings.simplefilter("ignore")                     # "Duplicate name"
        for name, data in entries:
            method = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
            z.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return buffer.getvalue()


def test_forged_checkpoints(workdir):
    @FUZZ
    @given(data=forged_npz())
    def run(data):
        read_checkpoint("forged checkpoint", workdir, data)
    run()
    assert_ran("forged checkpoint")


def test_forged_weights(workdir):
    @FUZZ
    @given(data=forged_npz(with_meta=False))
    def run(data):
        read_weights("forged weights", workdir, data)
    run()
    assert_ran("forged weights")


LABELS = ["ints", "np ints", "int array", "uint64 array", "float array", "integral floats",
          "floats", "bools", "out of range", "negative", "huge int", "too few", "tuple",
          "string", "none"]


def make_labels(kind, rng):
    """Labels of the given kind for one batch; valid ones as the expected int64 array."""
    y = rng.integers(0, 10, N)
    made = {"ints": [int(v) for v in y], "np ints": [np.int64(v) for v in y],
            "int array": y.astype(np.int32), "uint64 array": y.astype(np.uint64) + 2**63,
            "float array": y.astype(np.float64), "integral floats": [float(v) for v in y],
            "floats": [v + 0.5 for v in y], "bools": [bool(v % 2) for v in y],
            "out of range": [int(v) for v in y[:-1]] + [10],
            "negative": [-1] + [int(v) for v in y[1:]], "huge int": [10**30] * N,
            "too few": [int(v) for v in y[:-1]], "tuple": tuple(int(v) for v in y),
            "string": "0123", "none": None}[kind]
    valid = kind in ("ints", "np ints", "int array", "tuple")
    return made, (y if valid else None)


@st.composite
def forged_batch(draw):
    """A pickled batch dict of drawn data (dtype, shape) and labels (type, values);
    returns (pickle bytes, expected (x planes, y) or None if it must be refused)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dtype = draw(st.sampled_from([np.uint8, np.uint8, np.int8, np.float32, object]))
    shape = draw(st.sampled_from([(N, 3072), (N, 3072), (N, 3071), (N - 1, 3072), (N * 3072,)]))
    data = rng.integers(0, 256, shape).astype(dtype)
    labels, y = make_labels(draw(st.sampled_from(LABELS)), rng)
    keys = draw(st.sampled_from([(b"data", b"labels"), ("data", "labels"), (b"data", b"label")]))
    raw = dumps({keys[0]: data, keys[1]: labels}, draw(st.sampled_from(["py2", 0, 1, 2, 3, 4, 5])))
    valid = (dtype is np.uint8 and shape == (N, 3072) and y is not None
             and keys != (b"data", b"label"))
    return raw, ((data, y) if valid else None)


def test_forged_pickle_batches(good):
    _, _, python = good

    @FUZZ
    @given(forged=forged_batch(), stem=st.sampled_from(STEMS))
    def run(forged, stem):
        raw, expected = forged
        out = read_dataset("forged pickle", python, stem, raw)
        assert (out is None) == (expected is None), "a valid batch refused, or a bad one read"
        if out is not None:
            i = STEMS.index(stem)
            x = out["x_test"] if i == 5 else out["x_train"][i * N:(i + 1) * N]
            y = out["y_test"] if i == 5 else out["y_train"][i * N:(i + 1) * N]
            np.testing.assert_array_equal(planes(x), expected[0])
            np.testing.assert_array_equal(y, expected[1])
    run()
    assert_ran("forged pickle")


def tar_member(name, content, declared_size=None, kind=tarfile.REGTYPE):
    """A tar header (its checksum right) for ``name`` declaring ``declared_size``, then
    ``content`` padded to 512 bytes."""
    info = tarfile.TarInfo(name)
    info.size = len(content) if declared_size is None else declared_size
    info.type = kind
    padding = b"\0" * (-len(content) % 512)
    return info.tobuf(format=tarfile.GNU_FORMAT) + content + padding


@st.composite
def forged_archive(draw):
    """A gzip of tar members with drawn names, types and declared sizes (huge ones too)."""
    good_member = bin_batch(*BATCHES[0])
    members = []
    for _ in range(draw(st.integers(0, 8))):
        stem = draw(st.sampled_from(STEMS + ["batches.meta", "junk"]))
        name = draw(st.sampled_from([f"cifar-10-batches-bin/{stem}.bin",
                                     f"cifar-10-batches-py/{stem}", f"../{stem}", f"/{stem}"]))
        declared = draw(st.sampled_from([None, None, 0, 3073, 2**33, 2**40, 8**11 - 1]))
        kind = draw(st.sampled_from([tarfile.REGTYPE, tarfile.REGTYPE, tarfile.DIRTYPE,
                                     tarfile.SYMTYPE, tarfile.FIFOTYPE]))
        content = good_member if draw(st.booleans()) else draw(st.binary(max_size=64))
        members.append(tar_member(name, content, declared, kind))
    tar = b"".join(members) + b"\0" * 1024 * draw(st.sampled_from([0, 1, 2]))
    return gzip.compress(tar, compresslevel=draw(st.sampled_from([0, 6])), mtime=0)


def test_forged_archives(workdir):
    @FUZZ
    @given(data=forged_archive())
    def run(data):
        read_archive("forged archive", workdir, data, exact=False)
    run()
    assert_ran("forged archive")


# -- not a regular file ----------------------------------------------------------------
def make_special(path, kind):
    """Put a FIFO, a directory or a link to /dev/null (a character device) at path."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        os.symlink(os.devnull, path)


@pytest.mark.skipif(not hasattr(os, "mkfifo") or not os.path.exists(os.devnull),
                    reason="needs POSIX FIFOs and /dev/null")
@pytest.mark.parametrize("kind", ["fifo", "directory", "device"])
def test_special_files_are_refused_at_once(tmp_path, kind):
    """Where each reader expects a file: a FIFO would block forever, /dev/null reads as
    empty forever, a directory cannot be read. Each is refused, naming the path."""
    words = {"fifo": "FIFO", "directory": "directory", "device": "character device"}[kind]
    for layout, name in (("binary", "data_batch_3.bin"), ("python", "data_batch_2"),
                         ("binary", "batches.meta.txt")):
        folder = write_folder(tmp_path / f"{layout}-{name}", layout)
        (folder / name).unlink()
        make_special(folder / name, kind)
        with pytest.raises(DatasetError, match=words):
            load_or_refuse("special file", lambda: read_cifar10(folder), folder / name, ())
    archives = tmp_path / "archives"
    archives.mkdir()
    for path, load, error in (
            (archives / "cifar-10-binary.tar.gz", lambda p: read_cifar10(p.parent), DatasetError),
            (tmp_path / "a.tar.gz", lambda p: safe_extract(p, tmp_path / "out"), DatasetError),
            (tmp_path / "checkpoint.npz", load_checkpoint, CheckpointError),
            (tmp_path / "weights.npz", small_model().load, CheckpointError)):
        make_special(path, kind)
        with pytest.raises(error, match=words) as e:
            load_or_refuse("special file", lambda: load(path), path, ())
        assert str(path) in str(e.value)
    if kind != "directory":             # a FIFO or device given as the data path itself
        with pytest.raises(DatasetError, match=words):
            load_or_refuse("special file", lambda: read_cifar10(tmp_path / "a.tar.gz"),
                           tmp_path / "a.tar.gz", ())
