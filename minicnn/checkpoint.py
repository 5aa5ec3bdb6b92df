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

Loading never unpickles: ``np.load(..., allow_pickle=False)``. A damaged,
truncated or foreign file raises ``CheckpointError`` naming the file.
"""
import json
import os
import tempfile
import zipfile
import zlib

import numpy as np

FORMAT = "minicnn-checkpoint"
VERSION = 1
META_KEY = "__meta__"
SEP = "/"
RESERVED = {META_KEY, "file", "allow_pickle"}    # names np.savez itself takes


class CheckpointError(ValueError):
    """A file that is not a readable minicnn checkpoint."""


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


def write_atomic(path, write):
    """Call ``write(f)`` on a binary file beside ``path``, fsync, then rename it over
    ``path``: readers see the old file or the complete new one, never a partial one."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def load_checkpoint(path):
    """Read ``path`` -> ``(arrays, meta)``: a flat ``{str: array}`` and the meta dict.

    Raises FileNotFoundError if there is no such file, CheckpointError if it is
    not a complete minicnn checkpoint (truncated, corrupt, no meta entry, a
    newer format version, or pickled object arrays).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_checkpoint: no checkpoint file at {path!r}")
    unreadable = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)
    try:
        data = np.load(path, allow_pickle=False)
    except unreadable as e:
        raise CheckpointError(f"{path}: not a readable .npz file "
                              f"(truncated or damaged?): {e}") from e
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise CheckpointError(f"{path}: holds a single .npy array, expected an .npz checkpoint")
    with data:
        if META_KEY not in data.files:
            raise CheckpointError(f"{path}: no {META_KEY!r} entry, so not a minicnn checkpoint "
                                  f"(entries: {data.files[:5]})")
        arrays = {}
        for key in data.files:
            try:
                arrays[key] = data[key]
            except unreadable as e:
                if "allow_pickle" in str(e):
                    raise CheckpointError(f"{path}: entry {key!r} is an object (pickled) array; "
                                          f"checkpoints are loaded without pickle") from e
                raise CheckpointError(f"{path}: entry {key!r} cannot be read "
                                      f"(truncated or damaged?): {e}") from e
    return arrays, _read_meta(arrays.pop(META_KEY), path)


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
    return header.get("meta", {})


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
