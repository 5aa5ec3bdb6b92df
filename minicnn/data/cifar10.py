"""Read CIFAR-10 from its official layouts, validating everything, and find it on disk.

Layouts (what the official archives extract to):
  binary  cifar-10-batches-bin/  data_batch_{1..5}.bin, test_batch.bin, batches.meta.txt
          each record = 1 label byte + 3072 pixel bytes: R plane, G plane, B plane,
          each a 32x32 plane in row-major order; 10,000 records = 30,730,000 bytes a file.
  python  cifar-10-batches-py/   data_batch_{1..5}, test_batch, batches.meta
          pickled dicts: b'data' (10000, 3072) uint8 in the same plane order, b'labels' list.

Pickles are read with `RestrictedUnpickler` (safe_pickle.py), which can build numpy arrays
and nothing else, so a malicious file cannot run code. Every file is checked to be a regular
file, and its size, before it is read; an archive's gzip CRC is checked (files.py). Anything
wrong (size, count, shape, dtype, label, missing files) raises `DatasetError` naming the
file and what was expected versus found: never a partial dataset.
"""
import gzip
import os
import stat
import tarfile
import warnings
from pathlib import Path, PurePosixPath

import numpy as np

from ..checkpoint import file_kind, open_regular_file
from .download import download_cifar10
from .files import (BIN_ARCHIVE, BIN_DIR, PY_ARCHIVE, PY_DIR, UNREADABLE_ARCHIVE,  # noqa: F401
                    DatasetError, DatasetNotFoundError, bounded_members, read_to_end)
from .safe_pickle import RestrictedUnpickler, load_pickle  # noqa: F401

H, W, C = 32, 32, 3
PIXELS = C * H * W                  # 3072 bytes of pixels per image
RECORD_BYTES = 1 + PIXELS           # binary layout: label byte + pixels
RECORDS_PER_BATCH = 10_000          # read at call time, so tests may shrink it
NUM_CLASSES = 10
MAX_PICKLE_BYTES = 64 * 2**20       # an official pickle batch is ~31 MB
MAX_META_BYTES = 2**20
CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck"]
LAYOUTS = {  # layout -> (folder name, train files, test file, meta file)
    "binary": (BIN_DIR, [f"data_batch_{i}.bin" for i in range(1, 6)], "test_batch.bin",
               "batches.meta.txt"),
    "python": (PY_DIR, [f"data_batch_{i}" for i in range(1, 6)], "test_batch", "batches.meta"),
}


# ---------------------------------------------------------------- decoding bytes
def decode_bin(raw, where, n_records=None):
    """Decode one binary-layout batch file.

    raw: bytes of n_records * 3073. Returns x (n, 32, 32, 3) uint8 NHWC (a read-only
    transposed view of raw) and y (n,) int64.
    """
    n = RECORDS_PER_BATCH if n_records is None else n_records
    if len(raw) != n * RECORD_BYTES:
        raise DatasetError(f"{where}: expected {n * RECORD_BYTES} bytes "
                           f"({n} records of {RECORD_BYTES}), got {len(raw)}")
    rec = np.frombuffer(raw, dtype=np.uint8).reshape(n, RECORD_BYTES)
    y = rec[:, 0].astype(np.int64)
    x = rec[:, 1:].reshape(n, C, H, W).transpose(0, 2, 3, 1)   # (N, C, H, W) -> (N, H, W, C)
    return x, _check_labels(y, where)


def _get(d, key, where):
    """d[b'key'] or d['key'] (Python 2 pickles give bytes keys)."""
    if not isinstance(d, dict):
        raise DatasetError(f"{where}: expected a pickled dict, got {type(d).__name__}")
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    raise DatasetError(f"{where}: expected a dict with key {key!r}, got keys {list(d)[:8]}")


def decode_pickle(raw, where, n_records=None):
    """Decode one python-layout batch pickle -> x (n, 32, 32, 3) uint8 NHWC, y (n,) int64.

    The pickle must be a dict with b'data', a uint8 array (n, 3072), and b'labels', a list
    of ints or an integer array (n,), each in 0..9.
    """
    n = RECORDS_PER_BATCH if n_records is None else n_records
    d = load_pickle(raw, where)
    data, labels = _get(d, "data", where), _get(d, "labels", where)
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8
            and data.shape == (n, PIXELS)):
        got = (f"{data.dtype} array {data.shape}" if isinstance(data, np.ndarray)
               else type(data).__name__)
        raise DatasetError(f"{where}: expected data as a uint8 array ({n}, {PIXELS}), got {got}")
    return data.reshape(n, C, H, W).transpose(0, 2, 3, 1), _decode_labels(labels, n, where)


def _decode_labels(labels, n, where):
    """Labels of a pickle batch -> (n,) int64. Anything but integers is refused: a float
    label (even 3.0) means the file is not what it claims to be, and truncating it could
    change a class silently."""
    if isinstance(labels, np.ndarray):
        if labels.dtype.kind not in "iu":
            raise DatasetError(f"{where}: expected integer labels, got an array of {labels.dtype}")
        if labels.shape != (n,):
            raise DatasetError(f"{where}: expected {n} labels, got shape {labels.shape}")
        return _check_labels(labels, where).astype(np.int64)
    if not isinstance(labels, (list, tuple)):
        raise DatasetError(f"{where}: expected labels as a list of ints, "
                           f"got {type(labels).__name__}")
    if len(labels) != n:
        raise DatasetError(f"{where}: expected {n} labels, got {len(labels)}")
    for i, label in enumerate(labels):
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
            raise DatasetError(f"{where}: expected integer labels, got {label!r} "
                               f"({type(label).__name__}) at record {i}")
    bad = [i for i, label in enumerate(labels) if not 0 <= label < NUM_CLASSES]
    if bad:
        raise DatasetError(f"{where}: labels must be in 0..{NUM_CLASSES - 1}, got "
                           f"{labels[bad[0]]} at record {bad[0]} ({len(bad)} bad labels)")
    return np.array(labels, dtype=np.int64)


def _check_labels(y, where):
    bad = np.flatnonzero((y < 0) | (y >= NUM_CLASSES))
    if bad.size:
        raise DatasetError(f"{where}: labels must be in 0..{NUM_CLASSES - 1}, got {y[bad[0]]} "
                           f"at record {bad[0]} ({bad.size} bad labels)")
    return y


def decode_meta(raw, where, layout):
    """Class names from batches.meta.txt (one a line) or the batches.meta pickle."""
    if layout == "binary":
        names = [s.strip() for s in raw.decode("utf-8", "replace").splitlines() if s.strip()]
    else:
        names = _get(load_pickle(raw, where), "label_names", where)
        if not isinstance(names, (list, tuple)):
            raise DatasetError(f"{where}: expected label_names as a list, "
                               f"got {type(names).__name__}")
        try:
            names = [n.decode("utf-8") if isinstance(n, bytes) else n for n in names]
        except UnicodeDecodeError as e:
            raise DatasetError(f"{where}: class names are not UTF-8 text: {e}") from e
    if len(names) != NUM_CLASSES or not all(isinstance(n, str) for n in names):
        raise DatasetError(f"{where}: expected {NUM_CLASSES} class names, got {names!r}")
    return names


# ---------------------------------------------------------------- reading a source
def _check_size(where, got, layout, name):
    """Reject a file before reading it: a .bin must be exactly n * 3073 bytes; others capped."""
    if name == LAYOUTS[layout][3] or layout == "python":
        most = MAX_META_BYTES if name == LAYOUTS[layout][3] else MAX_PICKLE_BYTES
        if got > most:
            raise DatasetError(f"{where}: oversized: expected at most {most} bytes, got {got}")
        return
    exact = RECORDS_PER_BATCH * RECORD_BYTES
    if got != exact:
        raise DatasetError(f"{where}: {'truncated' if got < exact else 'oversized'}: expected "
                           f"{exact} bytes ({RECORDS_PER_BATCH} records of {RECORD_BYTES}), got {got}")


def _read_file(path, layout, name):
    """The bytes of one file of a batches folder: refused before reading if it is not a
    regular file or has the wrong size (decoding checks the length of what was read)."""
    with open_regular_file(path, DatasetError) as f:
        size = os.fstat(f.fileno()).st_size
        _check_size(path, size, layout, name)
        return f.read(size)


def _folder_files(folder, layout, names):
    """Yield (name, where, bytes) for each file of a complete batches folder."""
    for name in names:
        yield name, str(folder / name), _read_file(folder / name, layout, name)


def _check_complete(folder, layout):
    """The files to read from a batches folder; DatasetError naming every missing one and
    every one present when the folder is incomplete (nothing is downloaded into it)."""
    _, train, test, meta = LAYOUTS[layout]
    present = [name for name in train + [test, meta] if os.path.lexists(folder / name)]
    missing = [name for name in train + [test] if name not in present]
    if missing:
        raise DatasetError(
            f"{folder}: incomplete CIFAR-10 {layout} layout: missing {', '.join(missing)}; "
            f"present: {', '.join(present)}. Put the missing files in this folder (the "
            f"official {BIN_ARCHIVE if layout == 'binary' else PY_ARCHIVE} holds them all), "
            f"or point data_dir / MINICNN_DATA at a complete copy. Nothing was downloaded "
            f"here, and the files present are left as they are.")
    return train + [test] + ([meta] if meta in present else [])


def _archive_files(tar, archive, layout, names):
    """Yield (name, where, bytes) from an open tarfile, in archive order (one pass over the gzip)."""
    wanted, folder = set(names), LAYOUTS[layout][0]
    for m in bounded_members(tar, archive):
        p = PurePosixPath(m.name)
        if m.isfile() and p.parent.name == folder and p.name in wanted:
            where = f"{archive}:{m.name}"
            _check_size(where, m.size, layout, p.name)
            wanted.discard(p.name)
            yield p.name, where, tar.extractfile(m).read()
    if wanted:
        raise DatasetError(f"{archive}: missing {sorted(wanted)} under {folder}/")


def _archive_layout(tar, archive):
    for m in bounded_members(tar, archive):
        parts = PurePosixPath(m.name).parts
        for layout, (folder, *_) in LAYOUTS.items():
            if folder in parts:
                return layout
    raise DatasetError(f"{archive}: expected a folder {BIN_DIR}/ or {PY_DIR}/ inside, found none")


def _read_archive(archive):
    """Decode a .tar.gz of either layout, then read the gzip stream to its end so its
    CRC-32 is checked (files.py); a damaged archive is reported as such even when it
    was a bad member that stopped the decoding."""
    with open_regular_file(archive, DatasetError) as f:
        try:
            with gzip.GzipFile(fileobj=f, mode="rb") as gz, \
                    tarfile.open(fileobj=gz, mode="r:") as tar:
                try:
                    layout = _archive_layout(tar, archive)
                    _, train, test, meta = LAYOUTS[layout]
                    data = _assemble(_archive_files(tar, archive, layout, train + [test, meta]),
                                     layout)
                except DatasetError:
                    read_to_end(gz, archive)
                    raise
                read_to_end(gz, archive)
        except UNREADABLE_ARCHIVE as e:
            raise DatasetError(f"{archive}: not a readable .tar.gz archive "
                               f"(truncated or damaged?): {e}") from e
    return data


def _assemble(files, layout):
    """Decode every (name, where, bytes) into one dict of arrays; each batch is copied once."""
    _, train, test, meta = LAYOUTS[layout]
    n = RECORDS_PER_BATCH
    out = {"x_train": np.empty((5 * n, H, W, C), np.uint8), "y_train": np.empty(5 * n, np.int64),
           "x_test": np.empty((n, H, W, C), np.uint8), "y_test": np.empty(n, np.int64),
           "class_names": list(CLASS_NAMES)}
    slots = {name: ("train", i * n) for i, name in enumerate(train)}
    slots[test] = ("test", 0)
    decode = decode_bin if layout == "binary" else decode_pickle
    for name, where, raw in files:
        if name == meta:
            out["class_names"] = decode_meta(raw, where, layout)
            continue
        split, start = slots[name]
        out["x_" + split][start:start + n], out["y_" + split][start:start + n] = decode(raw, where)
    return out


def find_in(path):
    """What CIFAR-10 copy `path` holds: (layout, folder) or ("archive", file) or None.

    path may be a batches folder, a parent of cifar-10-batches-bin/-py, a folder holding
    an official .tar.gz, or a .tar.gz file. A folder holding any of a layout's files
    counts as that layout (read_cifar10 then names what is missing). Extracted folders
    win over archives. A path that is a FIFO, device or socket raises DatasetError.
    """
    path = Path(path).expanduser()
    try:
        mode = os.stat(path).st_mode
    except OSError:                       # nothing there, or a broken link
        return None
    if stat.S_ISREG(mode):
        return ("archive", path) if path.name.endswith((".tar.gz", ".tgz")) else None
    if not stat.S_ISDIR(mode):
        raise DatasetError(f"{path}: is {file_kind(mode)}, expected a folder or a .tar.gz file")
    for layout, (folder, train, test, meta) in LAYOUTS.items():
        for d in (path, path / folder):
            if any(os.path.lexists(d / name) for name in train + [test, meta]):
                return layout, d
    for name in (BIN_ARCHIVE, PY_ARCHIVE):
        if os.path.lexists(path / name):
            return "archive", path / name
    return None


def read_cifar10(path):
    """Read and validate the copy at `path` (see find_in). Returns the load_cifar10 dict."""
    found = find_in(path)
    if found is None:
        raise DatasetNotFoundError(f"no CIFAR-10 data at {path}: expected {BIN_DIR}/, {PY_DIR}/, "
                                   f"{BIN_ARCHIVE} or {PY_ARCHIVE}")
    kind, where = found
    if kind == "archive":
        data = _read_archive(where)
    else:
        data = _assemble(_folder_files(where, kind, _check_complete(where, kind)), kind)
    data["source"] = str(where)
    return data


# ---------------------------------------------------------------- locating
def cache_dir():
    """The default download/cache folder: ~/.cache/minicnn."""
    return Path.home() / ".cache" / "minicnn"


def places(data_dir=None):
    """Where to look, in order: [(label, path)] for data_dir, $MINICNN_DATA, the cache."""
    out = [] if data_dir is None else [("data_dir argument", Path(data_dir).expanduser())]
    if os.environ.get("MINICNN_DATA"):
        out.append(("MINICNN_DATA", Path(os.environ["MINICNN_DATA"]).expanduser()))
    return out + [("cache", cache_dir())]


def _not_found(looked, error=None):
    lines = "\n".join(f"  - {p} ({label})" for label, p in looked)
    why = (f"Download failed: {error}\n" if error is not None
           else "Download was not allowed (download=False).\n")
    return (f"CIFAR-10 not found. Looked in:\n{lines}\n{why}"
            f"Supply a local copy: pass --data-dir / data_dir=PATH or set MINICNN_DATA=PATH, "
            f"where PATH holds {BIN_DIR}/ (or {PY_DIR}/) or the official {BIN_ARCHIVE}.")


def load_cifar10(data_dir=None, download=True, *, urlopen=None):
    """Load CIFAR-10 as NHWC uint8 arrays, downloading it if it is nowhere to be found.

    Looks in data_dir, then $MINICNN_DATA, then ~/.cache/minicnn (see find_in for what each
    may hold). If absent and download is True, fetches the official binary archive into the
    first of those places (MD5-checked, safely extracted). urlopen: injectable opener for tests.
    A folder holding only some of the files raises DatasetError naming the missing ones; no
    download is tried into it.

    Returns dict: x_train (50000, 32, 32, 3) uint8, y_train (50000,) int64,
    x_test (10000, 32, 32, 3) uint8, y_test (10000,) int64, class_names (10 str),
    source (str, the file or folder read).
    Raises DatasetNotFoundError (listing every place looked) or DatasetError (bad file).
    """
    looked = places(data_dir)
    for i, (label, path) in enumerate(looked):
        if find_in(path) is not None:
            if i > 0 and data_dir is not None:
                warnings.warn(f"no CIFAR-10 in data_dir={data_dir}; using {path} ({label})")
            return read_cifar10(path)
    if not download:
        raise DatasetNotFoundError(_not_found(looked))
    try:
        folder = download_cifar10(looked[0][1], urlopen=urlopen)
    except OSError as e:   # no network, HTTP error, timeout, unwritable folder
        raise DatasetNotFoundError(_not_found(looked, e)) from e
    return read_cifar10(folder)
