"""Read CIFAR-10 from its official layouts, validating everything, and find it on disk.

Layouts (what the official archives extract to):
  binary  cifar-10-batches-bin/  data_batch_{1..5}.bin, test_batch.bin, batches.meta.txt
          each record = 1 label byte + 3072 pixel bytes: R plane, G plane, B plane,
          each a 32x32 plane in row-major order; 10,000 records = 30,730,000 bytes a file.
  python  cifar-10-batches-py/   data_batch_{1..5}, test_batch, batches.meta
          pickled dicts: b'data' (10000, 3072) uint8 in the same plane order, b'labels' list.

Pickles are read with `RestrictedUnpickler`, which can build numpy arrays and nothing else,
so a malicious file cannot run code. Anything wrong (size, count, shape, dtype, label) raises
`DatasetError` naming the file and what was expected versus found: never a partial dataset.
"""
import gzip
import io
import os
import pickle
import tarfile
import warnings
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from .download import download_cifar10
from .files import (BIN_ARCHIVE, BIN_DIR, PY_ARCHIVE, PY_DIR, DatasetError,  # noqa: F401
                     DatasetNotFoundError)

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


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays (all the official pickles hold) and nothing else.

    Any other global (os.system, builtins.eval, ...) raises pickle.UnpicklingError before it
    can be called.
    """
    _reconstruct = np.empty(0).__reduce__()[0]   # numpy's array-rebuild function
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"): _reconstruct,
               ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
               ("numpy", "ndarray"): np.ndarray,
               ("numpy", "dtype"): np.dtype}

    def find_class(self, module, name):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            allowed = ", ".join(f"{m}.{n}" for m, n in self.ALLOWED)
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: a CIFAR-10 pickle only needs "
                f"{allowed}") from None


def load_pickle(raw, where):
    """Unpickle bytes with RestrictedUnpickler (encoding='bytes', as the Python 2 files need)."""
    try:
        return RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as e:  # unpickling can fail in many ways on corrupt bytes
        raise DatasetError(f"{where}: not a valid CIFAR-10 pickle: {e}") from e


def _get(d, key, where):
    """d[b'key'] or d['key'] (Python 2 pickles give bytes keys)."""
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    raise DatasetError(f"{where}: expected a dict with key {key!r}, got keys {list(d)[:8]}")


def decode_pickle(raw, where, n_records=None):
    """Decode one python-layout batch pickle -> x (n, 32, 32, 3) uint8 NHWC, y (n,) int64."""
    n = RECORDS_PER_BATCH if n_records is None else n_records
    d = load_pickle(raw, where)
    if not isinstance(d, dict):
        raise DatasetError(f"{where}: expected a pickled dict, got {type(d).__name__}")
    data, labels = _get(d, "data", where), _get(d, "labels", where)
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8
            and data.shape == (n, PIXELS)):
        got = (f"{data.dtype} array {data.shape}" if isinstance(data, np.ndarray)
               else type(data).__name__)
        raise DatasetError(f"{where}: expected data as a uint8 array ({n}, {PIXELS}), got {got}")
    try:
        y = np.array(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as e:
        raise DatasetError(f"{where}: labels are not a list of integers ({e})") from e
    if y.shape != (n,):
        raise DatasetError(f"{where}: expected {n} labels, got shape {y.shape}")
    return data.reshape(n, C, H, W).transpose(0, 2, 3, 1), _check_labels(y, where)


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
        names = [n.decode() if isinstance(n, bytes) else n
                 for n in _get(load_pickle(raw, where), "label_names", where)]
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


def _folder_files(folder, layout, names):
    """Yield (name, where, bytes) for each file, checking its size before reading it."""
    for name in names:
        p = folder / name
        if not p.is_file():
            raise DatasetError(f"{p}: missing file (the {layout} layout needs {names})")
        _check_size(p, p.stat().st_size, layout, name)
        yield name, str(p), p.read_bytes()


def _archive_files(tar, archive, layout, names):
    """Yield (name, where, bytes) from an open tarfile, in archive order (one pass over the gzip)."""
    wanted, folder = set(names), LAYOUTS[layout][0]
    for m in tar:
        p = PurePosixPath(m.name)
        if m.isfile() and p.parent.name == folder and p.name in wanted:
            where = f"{archive}:{m.name}"
            _check_size(where, m.size, layout, p.name)
            wanted.discard(p.name)
            yield p.name, where, tar.extractfile(m).read()
    if wanted:
        raise DatasetError(f"{archive}: missing {sorted(wanted)} under {folder}/")


def _archive_layout(tar, archive):
    for m in tar:
        parts = PurePosixPath(m.name).parts
        for layout, (folder, *_) in LAYOUTS.items():
            if folder in parts:
                return layout
    raise DatasetError(f"{archive}: expected a folder {BIN_DIR}/ or {PY_DIR}/ inside, found none")


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
    an official .tar.gz, or a .tar.gz file. Extracted folders win over archives.
    """
    path = Path(path).expanduser()
    if path.is_file():
        return ("archive", path) if path.name.endswith((".tar.gz", ".tgz")) else None
    for layout, (folder, train, _, _) in LAYOUTS.items():
        for d in (path, path / folder):
            if (d / train[0]).is_file():
                return layout, d
    for name in (BIN_ARCHIVE, PY_ARCHIVE):
        if (path / name).is_file():
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
        try:
            with tarfile.open(where, "r:gz") as tar:
                layout = _archive_layout(tar, where)
                _, train, test, meta = LAYOUTS[layout]
                data = _assemble(_archive_files(tar, where, layout, train + [test, meta]), layout)
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise DatasetError(f"{where}: not a readable .tar.gz archive: {e}") from e
    else:
        _, train, test, meta = LAYOUTS[kind]
        names = train + [test] + ([meta] if (where / meta).is_file() else [])
        data = _assemble(_folder_files(where, kind, names), kind)
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
