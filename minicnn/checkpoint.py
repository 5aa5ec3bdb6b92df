"""Checkpoints: one ``.npz`` file of named arrays plus JSON metadata, written atomically.

File layout (a plain numpy ``.npz`` zip, loadable with ``allow_pickle=False``):

    "<key>"     one entry per array, e.g. "model/3.W", "optim/3.W.momentum"
    "__meta__"  uint8 array: UTF-8 JSON text
                {"format": "minicnn-checkpoint", "version": 1, "meta": {...}}

Nested state (model, optimizer, EMA, ...) is stored flat with "/" between the
levels: ``flatten({"model": {"3.W": W}})  ->  {"model/3.W": W}``, and
``unflatten`` undoes it. Python scalars and strings (an optimizer's step count,
its type name) are stored as 0-d arrays and come back as 0-d arrays.

Atomic write: the file is written to a temporary file in the same directory,
flushed and fsync'ed, then ``os.replace``'d over ``path`` (an atomic rename on
POSIX and Windows). A crash before the rename leaves the previous checkpoint
untouched; the temporary file is removed when the error can be caught.

Bounded loading, without pickle: ``read_npz`` (and ``load_checkpoint``, ``Sequential.load``
built on it) checks the whole file before reading any array data:

    the path           a regular file: a FIFO would block forever, a device never ends
    the zip directory  every entry "<key>.npy", once; stored or deflate, not encrypted;
                       a stored entry's sizes agree, a deflated one claims no more than
                       deflate can produce (MAX_DEFLATE_RATIO); sizes total <= max_bytes
    each .npy header   read alone (numpy.lib.format): a numeric, bool, bytes or str dtype
                       (no objects, which need pickle), and shape * itemsize + header
                       equal to the entry's size in the directory

so a 2 MB file that inflates to 2 GiB, or a header declaring 4 TiB, is refused before
memory is taken. Each array is then read in chunks into memory sized from its checked
header; zipfile checks the entry's CRC-32 as its last byte arrives. Anything wrong
raises ``CheckpointError`` naming the file and what was expected versus found.
"""
import io
import json
import math
import os
import stat
import struct
import tempfile
import zipfile
import zlib

import numpy as np

FORMAT = "minicnn-checkpoint"
VERSION = 1
META_KEY = "__meta__"
SEP = "/"
RESERVED = {META_KEY, "file", "allow_pickle"}    # names np.savez itself takes

MAX_CHECKPOINT_BYTES = 4 * 2**30   # uncompressed bytes a file may declare in all (read_npz)
MAX_META_BYTES = 64 * 2**20        # the JSON entry; a long run's history is well under 1 MB
MAX_DEFLATE_RATIO = 1032           # deflate's limit: at most 258 bytes out per 2 bits in
ARRAY_KINDS = "biufcSU"            # bool, int, uint, float, complex, bytes, str
CHUNK = 2**20                      # bytes read at a time


class CheckpointError(ValueError):
    """A file that is not a readable minicnn checkpoint or ``.npz`` weights file:
    truncated, damaged, oversized, foreign, or not a regular file."""


def save_checkpoint(path, arrays, meta=None, compress=False):
    """Write ``arrays`` (flat ``{str: array}``) and JSON ``meta`` to ``path`` atomically.

    ``path`` is used exactly as given (no ".npz" is appended). ``compress=True``
    uses ``np.savez_compressed``. Object arrays and non-JSON meta are refused
    before anything is written.
    """
    path = os.fspath(path)
    entries = _check_arrays(arrays, path)
    header = {"format": FORMAT, "version": VERSION, "meta": {} if meta is None else meta}
    try:
        text = json.dumps(header)
    except (TypeError, ValueError) as e:
        raise TypeError(f"save_checkpoint({path!r}): meta must be JSON-serialisable "
                        f"(dicts, lists, str, numbers, bool, None): {e}") from None
    entries[META_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)

    write_npz_atomic(path, entries, compress)


def write_npz_atomic(path, arrays, compress=False):
    """np.savez to a temporary file beside ``path``, fsync, then rename over ``path``:
    a crash mid-write leaves the previous file intact, never a half-written one."""
    save = np.savez_compressed if compress else np.savez
    write_atomic(path, lambda f: save(f, allow_pickle=False, **arrays))


# The stages of an atomic write, in order. Functions in WRITE_HOOKS are called as
# hook(stage, path) at each: the crash tests (tests/train/test_fault_injection.py) kill the
# process there, or raise to play a full disk. Empty, they cost nothing.
WRITE_STAGES = ("opened", "written", "synced", "replaced")
WRITE_HOOKS = []


def write_atomic(path, write):
    """Call ``write(f)`` on a binary file beside ``path``, fsync, then rename it over
    ``path``: readers see the old file or the complete new one, never a partial one.
    A crash at any stage leaves ``path`` as it was before, or as the new file, whole."""
    def reached(stage):
        for hook in WRITE_HOOKS:
            hook(stage, path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            reached("opened")
            write(f)
            f.flush()
            reached("written")
            os.fsync(f.fileno())
            reached("synced")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    reached("replaced")
    _fsync_directory(directory)


def load_checkpoint(path, max_bytes=MAX_CHECKPOINT_BYTES):
    """Read ``path`` -> ``(arrays, meta)``: a flat ``{str: array}`` and the meta dict.

    max_bytes: the most uncompressed bytes the file may declare in all (see read_npz).
    The meta entry is read and checked first, so a foreign file is refused before any
    other array is read.
    Raises FileNotFoundError if there is no such file, CheckpointError (naming the file)
    if it is not a complete minicnn checkpoint: not a regular file, truncated, damaged,
    larger than max_bytes, no meta entry, a newer format version, or object arrays.
    """
    path = os.fspath(path)
    try:
        npz = BoundedNpz(path, max_bytes)
    except FileNotFoundError:
        raise FileNotFoundError(f"load_checkpoint: no checkpoint file at {path!r}") from None
    with npz:
        if META_KEY not in npz.names:
            raise CheckpointError(f"{path}: no {META_KEY!r} entry, so not a minicnn checkpoint "
                                  f"(entries: {npz.names[:5]})")
        if npz.nbytes(META_KEY) > MAX_META_BYTES:
            raise CheckpointError(f"{path}: {META_KEY!r} declares {npz.nbytes(META_KEY)} bytes, "
                                  f"expected at most {MAX_META_BYTES} (MAX_META_BYTES)")
        meta = _read_meta(npz.read(META_KEY), path)
        arrays = {key: npz.read(key) for key in npz.names if key != META_KEY}
    return arrays, meta


def require_keys(mapping, keys, path, what):
    """Raise CheckpointError unless ``mapping`` holds every one of ``keys``.

    For code that takes its state from a checkpoint: ``require_keys(meta, ["epoch",
    "loader"], path, "meta entries")`` turns a missing key into one message naming the
    file, every missing key and what is there, instead of a KeyError on the first.
    """
    if not isinstance(mapping, dict):
        raise CheckpointError(f"{path}: expected {what} as a dict, got {type(mapping).__name__}")
    missing = [key for key in keys if key not in mapping]
    if missing:
        raise CheckpointError(f"{path}: missing {what} {missing} (it holds {sorted(mapping)}); "
                              f"was it written by another program or another configuration?")


def flatten(nested, prefix=""):
    """``{"model": {"3.W": W}, "step": 5}`` -> ``{"model/3.W": W, "step": 5}``.

    Keys must be non-empty strings without "/" (so ``unflatten`` can undo it).
    Empty sub-dicts disappear.
    """
    out = {}
    for key, value in nested.items():
        if not isinstance(key, str) or not key or SEP in key:
            raise ValueError(f"flatten: keys must be non-empty strings without {SEP!r}, "
                             f"got {key!r} (under {prefix!r})")
        if isinstance(value, dict):
            out.update(flatten(value, prefix + key + SEP))
        else:
            out[prefix + key] = value
    return out


def unflatten(flat):
    """``{"model/3.W": W, "step": 5}`` -> ``{"model": {"3.W": W}, "step": 5}``."""
    out = {}
    for key, value in flat.items():
        *parents, leaf = key.split(SEP)
        node = out
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"unflatten: {key!r} clashes with another entry ({part!r} is not a dict)")
        if leaf in node:
            raise ValueError(f"unflatten: {key!r} clashes with another entry")
        node[leaf] = value
    return out


# -- helpers -----------------------------------------------------------------
def _check_arrays(arrays, path):
    """Return ``{key: ndarray}``; refuse nested dicts, object arrays and reserved names."""
    where = f"save_checkpoint({path!r})"
    if not isinstance(arrays, dict):
        raise TypeError(f"{where}: arrays must be a dict {{name: array}}, "
                        f"got {type(arrays).__name__}")
    out = {}
    for key, value in arrays.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"{where}: array names must be non-empty strings, got {key!r}")
        if key in RESERVED:
            raise ValueError(f"{where}: {key!r} is a reserved name; use another key")
        if isinstance(value, dict):
            raise TypeError(f"{where}: {key!r} holds a dict; pass flatten(arrays) "
                            f"to store nested state as '{key}/...'")
        array = np.asarray(value)
        if array.dtype.kind not in "biufcSU":
            raise TypeError(f"{where}: {key!r} has dtype {array.dtype}; expected a numeric "
                            f"or string array (object arrays would need pickle)")
        out[key] = array
    return out


# -- reading files within bounds ---------------------------------------------
def open_regular_file(path, error):
    """Open ``path`` for binary reading if it is a regular file; return the file object.

    A FIFO, directory, socket or device is refused with ``error("<path>: is a FIFO, ...")``
    at once: reading a FIFO waits for a writer forever, and a device may never end. The
    file is stat'ed before it is opened (so nothing is opened that is not a file) and
    again once open, non-blocking, in case it was swapped in between. Raises
    FileNotFoundError if nothing is at ``path``.
    """
    _check_regular(path, os.stat(path).st_mode, error)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        _check_regular(path, os.fstat(fd).st_mode, error)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def _check_regular(path, mode, error):
    if not stat.S_ISREG(mode):
        raise error(f"{path}: is {file_kind(mode)}, expected a regular file")


def file_kind(mode):
    """What an ``os.stat`` mode says is there: "a regular file", "a directory",
    "a FIFO (named pipe)", "a character device", "a block device" or "a socket"."""
    kinds = [(stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"),
             (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")]
    return next((name for test, name in kinds if test(mode)), "not a regular file")


# What zipfile and numpy raise on a damaged file: bad structure, short reads, bad CRC.
DAMAGED = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, struct.error,
           NotImplementedError, OverflowError)
HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0,
                  (2, 0): np.lib.format.read_array_header_2_0}
MAX_NPY_HEADER_BYTES = 16 * 2**10   # magic, length, and numpy's limit of 10000 characters


class BoundedNpz:
    """An ``.npz`` file open for reading, every entry checked (see the module docstring).

    ``names``: the entry names (keys as np.savez wrote them, without ".npy");
    ``nbytes(name)``: the bytes of its array; ``read(name)``: the array. Use as a
    context manager. Raises FileNotFoundError if there is no file, CheckpointError for
    anything else that is wrong, before any array data is read.
    """

    def __init__(self, path, max_bytes=MAX_CHECKPOINT_BYTES):
        if not isinstance(max_bytes, (int, np.integer)) or max_bytes < 0:
            raise ValueError(f"max_bytes must be an integer >= 0, got {max_bytes!r}")
        self.path = os.fspath(path)
        self.file = open_regular_file(self.path, CheckpointError)
        self.zip = None
        try:
            self.zip = self._open_zip()
            self.entries = self._check_directory(max_bytes)   # {name: ZipInfo}
            self.headers = {name: self._check_header(name, info, max_bytes)
                            for name, info in self.entries.items()}
        except BaseException:
            self.close()
            raise
        self.names = list(self.entries)

    def _open_zip(self):
        start = self.file.read(6)
        self.file.seek(0)
        if start == b"\x93NUMPY":
            raise CheckpointError(f"{self.path}: holds a single .npy array, expected an .npz "
                                  f"file (a zip of arrays)")
        try:
            return zipfile.ZipFile(self.file)
        except DAMAGED as e:
            raise CheckpointError(f"{self.path}: not a readable .npz file "
                                  f"(truncated or damaged?): {e}") from e

    def _check_directory(self, max_bytes):
        """The zip's own list of entries, before any entry is opened."""
        where, entries, total = self.path, {}, 0
        file_bytes = os.fstat(self.file.fileno()).st_size
        for info in self.zip.infolist():
            entry = info.filename
            if not entry.endswith(".npy"):
                raise CheckpointError(f"{where}: entry {entry!r} is not an .npy array; an "
                                      f".npz file holds only '<name>.npy' entries")
            name = entry[:-len(".npy")]
            if name in entries:
                raise CheckpointError(f"{where}: entry {entry!r} appears twice")
            if info.flag_bits & 0x1:
                raise CheckpointError(f"{where}: entry {entry!r} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise CheckpointError(f"{where}: entry {entry!r} uses compression method "
                                      f"{info.compress_type}; expected stored (0) or deflate (8)")
            if info.compress_size > file_bytes:
                raise CheckpointError(f"{where}: entry {entry!r} claims {info.compress_size} "
                                      f"compressed bytes, but the file has {file_bytes}")
            if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
                raise CheckpointError(f"{where}: entry {entry!r} is stored uncompressed but "
                                      f"claims {info.compress_size} bytes in the file and "
                                      f"{info.file_size} bytes unpacked")
            if info.file_size > MAX_DEFLATE_RATIO * info.compress_size + 64:   # + block headers
                raise CheckpointError(f"{where}: entry {entry!r} claims to unpack "
                                      f"{info.compress_size} bytes into {info.file_size}, more "
                                      f"than deflate can ({MAX_DEFLATE_RATIO}:1)")
            total += info.file_size
            if total > max_bytes:
                raise CheckpointError(f"{where}: declares more than {max_bytes} bytes unpacked "
                                      f"(the bound; {total} by entry {entry!r}); pass a larger "
                                      f"max_bytes if the file is trusted")
            entries[name] = info
        return entries

    def _check_header(self, name, info, max_bytes):
        """(shape, fortran_order, dtype, header bytes) of one entry's .npy header, checked
        against max_bytes and against the entry's size in the zip directory."""
        where = f"{self.path}: entry {name!r}"
        try:
            # Only the first bytes go to numpy: it reads as many as a header's length
            # field declares (up to 4 GiB in version 2.0) before checking its own limit.
            with self.zip.open(info) as entry:
                start = io.BytesIO(entry.read(min(info.file_size, MAX_NPY_HEADER_BYTES)))
            version = np.lib.format.read_magic(start)
            if version not in HEADER_READERS:
                raise CheckpointError(f"{where}: .npy format version {version}, "
                                      f"expected 1.0 or 2.0")
            shape, fortran_order, dtype = HEADER_READERS[version](start)
            header_bytes = start.tell()
        except CheckpointError:
            raise
        except Exception as e:
            # Reading the zip entry fails with DAMAGED; numpy's parser of the header text
            # (at most 10000 characters, read with ast.literal_eval, so it runs no code)
            # raises ValueError, SyntaxError, tokenize.TokenError, IndexError, ... on text
            # that is not the dict it expects. Any of them means a damaged header.
            raise CheckpointError(f"{where} cannot be read (truncated or damaged?): {e}") from e
        if dtype.hasobject:
            raise CheckpointError(f"{where} is an object (pickled) array; .npz files are "
                                  f"loaded without pickle")
        if dtype.kind not in ARRAY_KINDS or dtype.itemsize == 0:
            raise CheckpointError(f"{where} has dtype {dtype}; expected a numeric, bool, "
                                  f"bytes or str dtype")
        if any(n < 0 for n in shape):
            raise CheckpointError(f"{where}: its header declares shape {shape}")
        if math.prod(max(n, 1) for n in shape) * dtype.itemsize > np.iinfo(np.intp).max:
            raise CheckpointError(f"{where}: its header declares shape {shape} of {dtype}, "
                                  f"larger than numpy can index")
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > max_bytes:
            raise CheckpointError(f"{where}: its header declares shape {shape} of {dtype}, "
                                  f"{nbytes} bytes, more than the bound of {max_bytes} bytes")
        if header_bytes + nbytes != info.file_size:
            raise CheckpointError(f"{where}: its header declares shape {shape} of {dtype} "
                                  f"({header_bytes} + {nbytes} bytes), but the zip directory "
                                  f"says {info.file_size} bytes")
        return shape, fortran_order, dtype, header_bytes

    def nbytes(self, name):
        shape, _, dtype, _ = self.headers[name]
        return math.prod(shape) * dtype.itemsize

    def read(self, name):
        """Entry ``name`` as an array, read in chunks into memory of its checked size."""
        shape, fortran_order, dtype, header_bytes = self.headers[name]
        where, total = f"{self.path}: entry {name!r}", self.nbytes(name)
        data = np.empty(total, np.uint8)
        try:
            with self.zip.open(self.entries[name]) as f:
                f.read(header_bytes)
                done = 0
                while done < total:
                    chunk = f.read(min(CHUNK, total - done))
                    if not chunk:
                        raise CheckpointError(f"{where} ends after {done} of its {total} bytes "
                                              f"(truncated?)")
                    data[done:done + len(chunk)] = np.frombuffer(chunk, np.uint8)
                    done += len(chunk)          # zipfile checks the CRC-32 with the last byte
        except CheckpointError:
            raise
        except DAMAGED as e:
            raise CheckpointError(f"{where} cannot be read (truncated or damaged?): {e}") from e
        return data.view(dtype).reshape(shape, order="F" if fortran_order else "C")

    def close(self):
        if self.zip is not None:
            self.zip.close()
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_npz(path, max_bytes=MAX_CHECKPOINT_BYTES):
    """Every array of the ``.npz`` file at ``path``, as ``{name: array}``, read within bounds.

    max_bytes: the most uncompressed bytes the file may declare in all. See the module
    docstring for what is checked before any array data is read. Raises
    FileNotFoundError if there is no file, CheckpointError naming the file otherwise.
    """
    with BoundedNpz(path, max_bytes) as npz:
        return {name: npz.read(name) for name in npz.names}


def _read_meta(raw, path):
    """Decode and check the ``__meta__`` entry; return the user's meta dict."""
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise CheckpointError(f"{path}: {META_KEY!r} should be a 1-D uint8 array, "
                              f"got {raw.dtype}{raw.shape}")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: {META_KEY!r} is not valid JSON: {e}") from e
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: {META_KEY!r} lacks format={FORMAT!r}; "
                              f"not a minicnn checkpoint")
    version = header.get("version")
    if not isinstance(version, int) or not 1 <= version <= VERSION:
        raise CheckpointError(f"{path}: format version {version!r}, this minicnn reads "
                              f"versions 1..{VERSION}")
    meta = header.get("meta", {})
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: {META_KEY!r} holds meta of type {type(meta).__name__}, "
                              f"expected a dict")
    return meta


def _fsync_directory(directory):
    """Make the rename itself durable (POSIX); a no-op where directories can't be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
