"""Unpickle the CIFAR-10 python layout without letting the file run code or take memory.

A pickle is a program: each global it names (``os.system``, ``builtins.eval``, ...) is
looked up and may be called with arguments of the file's choosing. `RestrictedUnpickler`
answers only the names that pickles of numpy arrays, lists, dicts and bytes use, with
stand-ins that check their arguments before numpy sees them:

    name in the pickle                          stand-in
    numpy(._)core.multiarray._reconstruct       _ArrayStandIn: becomes an array when its
      (with numpy.ndarray as its argument)        state (shape, dtype, raw bytes) arrives
    numpy(._)core.numeric._frombuffer           _frombuffer (protocol 5 arrays)
    numpy(._)core.multiarray.scalar             _scalar: one value of a checked dtype
    numpy.dtype                                 _DtypeStandIn: plain dtypes only
    _codecs.encode                              _latin1: how protocols 0-2 write bytes
    __builtin__.bytes / builtins.bytes          _empty_bytes: how they write b""

Stand-ins, not numpy's own functions: numpy's ``ndarray.__setstate__`` trusts its
arguments (an object dtype with a short list crashes the interpreter), and ``ndarray``
itself allocates whatever shape it is called with. A stand-in builds an array only
from raw bytes whose length equals shape * itemsize, for dtypes of kind bool, int,
uint, float, complex, bytes or str (never objects).

`load_pickle` also reads the opcode stream once with pickletools before unpickling:
the C unpickler sizes its memo table from the largest index a pickle names (a 9-byte
pickle naming slot 2**27 takes 2 GB) and allocates a declared string length before
reading it; the scan refuses both, so memory stays proportional to the file's size.
"""
import io
import math
import pickle
import pickletools

import numpy as np

from .files import DatasetError

ARRAY_KINDS = "biufcSU"     # bool, int, uint, float, complex, bytes, str
MEMO_OPCODES = {"PUT", "BINPUT", "LONG_BINPUT"}


class _DtypeStandIn:
    """``numpy.dtype(spec, align, copy)`` as a pickle calls it: ``spec`` must be a string
    naming a plain dtype; the state that follows may set only its byte order."""

    def __init__(self, spec, align=False, copy=False):
        spec = _text(spec)
        if not isinstance(spec, str):
            raise pickle.UnpicklingError(f"numpy.dtype({spec!r}): expected a type string")
        dtype = np.dtype(spec)
        if dtype.kind not in ARRAY_KINDS or dtype.fields is not None or dtype.subdtype:
            raise pickle.UnpicklingError(f"refusing dtype {spec!r}: only plain bool, int, "
                                         f"uint, float, complex, bytes or str dtypes")
        self.dtype = dtype

    def __setstate__(self, state):
        # numpy's dtype state: (version, byteorder, subarray, names, fields, elsize, ...)
        if (not isinstance(state, tuple) or len(state) < 5 or any(s is not None for s in state[2:5])
                or (len(state) > 5 and state[5] not in (-1, self.dtype.itemsize))):
            raise pickle.UnpicklingError(f"refusing dtype state {state!r} for {self.dtype}: "
                                         f"only a byte order may be set")
        byteorder = _text(state[1])
        if byteorder in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(byteorder)
        elif byteorder not in ("|", "="):
            raise pickle.UnpicklingError(f"dtype byte order {byteorder!r}: expected <, >, | or =")


def _text(value):
    """Python 2 pickles, read with encoding='bytes', give their short strings as bytes."""
    return value.decode("ascii") if isinstance(value, bytes) else value


def _dtype_of(d):
    if not isinstance(d, _DtypeStandIn):
        raise pickle.UnpicklingError(f"expected a numpy dtype, got {type(d).__name__}")
    return d.dtype


def _array_from_bytes(raw, d, shape, fortran_order):
    """An array of ``shape`` viewing ``raw``, which must hold exactly its bytes."""
    dtype = _dtype_of(d)
    if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)):
        raise pickle.UnpicklingError(f"array shape {shape!r}: expected a tuple of ints >= 0")
    if not isinstance(raw, (bytes, bytearray)):
        raise pickle.UnpicklingError(f"array data: expected bytes, got {type(raw).__name__}")
    if dtype.itemsize == 0 or len(raw) != math.prod(shape) * dtype.itemsize:
        raise pickle.UnpicklingError(f"array of shape {shape} and dtype {dtype} needs "
                                     f"{math.prod(shape) * dtype.itemsize} bytes, got {len(raw)}")
    return np.frombuffer(raw, dtype).reshape(shape, order="F" if fortran_order else "C")


class _NdarrayName:
    """What ``numpy.ndarray`` resolves to: only a tag for _reconstruct, never called."""

    def __new__(cls, *args):
        raise pickle.UnpicklingError("numpy.ndarray may only appear as _reconstruct's argument")


class _ArrayStandIn:
    """``_reconstruct(ndarray, (0,), b'b')``: an array waiting for its state
    ``(version, shape, dtype, fortran_order, raw bytes)``; ``array`` once it arrives."""

    def __init__(self, cls, shape, typecode):
        if cls is not _NdarrayName:
            raise pickle.UnpicklingError("_reconstruct: expected numpy.ndarray as its class")
        self.array = None

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 5:
            state = state[1:]                      # (version, shape, dtype, fortran, raw)
        if not (isinstance(state, tuple) and len(state) == 4):
            raise pickle.UnpicklingError("array state: expected (shape, dtype, fortran, data)")
        shape, d, fortran_order, raw = state
        self.array = _array_from_bytes(raw, d, shape, bool(fortran_order))


def _frombuffer(buf, d, shape, order):
    """numpy.core.numeric._frombuffer, as protocol 5 pickles arrays."""
    order = _text(order)
    if order not in ("C", "F"):
        raise pickle.UnpicklingError(f"array order {order!r}: expected 'C' or 'F'")
    return _array_from_bytes(buf, d, shape, order == "F")


def _scalar(d, raw=None):
    """numpy.core.multiarray.scalar: one value of dtype ``d`` from its bytes."""
    dtype = _dtype_of(d)
    if dtype.kind not in "biufc":
        raise pickle.UnpicklingError(f"refusing a scalar of dtype {dtype}")
    return _array_from_bytes(raw, d, (), False)[()]


def _latin1(text, encoding):
    """_codecs.encode(text, 'latin1'): protocols 0-2 store bytes as latin-1 text."""
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError(f"_codecs.encode: only (str, 'latin1'), got "
                                     f"({type(text).__name__}, {encoding!r})")
    return text.encode("latin1")


def _empty_bytes():
    """bytes(), as protocols 0-2 store b''."""
    return b""


ALLOWED_GLOBALS = {("numpy", "ndarray"): _NdarrayName, ("numpy", "dtype"): _DtypeStandIn,
                   ("_codecs", "encode"): _latin1, ("__builtin__", "bytes"): _empty_bytes,
                   ("builtins", "bytes"): _empty_bytes}
for numpy_core in ("numpy.core", "numpy._core"):     # as numpy 1.x and 2.x name it
    ALLOWED_GLOBALS[(f"{numpy_core}.multiarray", "_reconstruct")] = _ArrayStandIn
    ALLOWED_GLOBALS[(f"{numpy_core}.multiarray", "scalar")] = _scalar
    ALLOWED_GLOBALS[(f"{numpy_core}.numeric", "_frombuffer")] = _frombuffer


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for the CIFAR-10 python layout: numpy arrays, lists, dicts, bytes, str,
    numbers, and nothing else (see the module docstring).

    Any other global (os.system, builtins.eval, ...) raises pickle.UnpicklingError before
    it can be called. ``load()`` returns the object with every array stand-in inside its
    dicts and lists replaced by its array (a read-only view of the pickle's bytes).
    Read files with `load_pickle`, which also checks the opcode stream first.
    """
    ALLOWED = ALLOWED_GLOBALS

    def find_class(self, module, name):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: a CIFAR-10 pickle only needs "
                f"numpy arrays, lists, dicts and bytes") from None

    def load(self):
        return _swap_stand_ins(super().load())


def _swap_stand_ins(obj):
    """Replace each _ArrayStandIn inside dicts and lists (nested, shared or cyclic) by
    its array; the walk keeps its own stack, so deep nesting is no problem."""
    def swap(value):
        if isinstance(value, _ArrayStandIn):
            if value.array is None:
                raise pickle.UnpicklingError("an array without its data")
            return value.array
        if isinstance(value, (dict, list)) and id(value) not in seen:
            seen.add(id(value))
            todo.append(value)
        return value

    seen, todo = set(), []
    obj = swap(obj)
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                node[key] = swap(value)
        else:
            for i, value in enumerate(node):
                node[i] = swap(value)
    return obj


def check_opcodes(raw):
    """Read the opcode stream of ``raw`` without running it; raise ValueError for a
    truncated stream (a declared length longer than what follows) or a memo index
    larger than the number of opcodes before it (picklers number memo slots in order)."""
    for count, (opcode, arg, _) in enumerate(pickletools.genops(raw)):
        if opcode.name in MEMO_OPCODES and not 0 <= arg <= count:
            raise ValueError(f"memo index {arg} at opcode {count}: a pickler would have "
                             f"used at most {count}")


def load_pickle(raw, where):
    """Unpickle bytes with RestrictedUnpickler (encoding='bytes', as the Python 2 files
    need), after check_opcodes. Any failure raises DatasetError naming ``where``."""
    try:
        check_opcodes(raw)
        return RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as e:   # a damaged pickle can fail in many ways; none runs code
        raise DatasetError(f"{where}: not a valid CIFAR-10 pickle: {e}") from e
