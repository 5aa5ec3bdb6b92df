"""Sequential.load on damaged and foreign files: every failure is a CheckpointError (a
ValueError) naming the file, found before any array data is read where the sizes lie."""
import io
import os
import signal
import zipfile

import numpy as np
import pytest

from minicnn.checkpoint import CheckpointError
from minicnn.nn import Dense, ReLU, Sequential


def small_model(seed=0):
    return Sequential([Dense(4, 3, rng=seed), ReLU(), Dense(3, 2, rng=seed + 1)])


def saved(tmp_path, compress=False, **changes):
    """The path of a weights file of small_model(), with arrays replaced or removed
    (a value of None removes the array)."""
    state = small_model().state_dict()
    for name, value in changes.items():
        name = name.replace("_", ".")
        if value is None:
            del state[name]
        else:
            state[name] = value
    path = tmp_path / "weights.npz"
    (np.savez_compressed if compress else np.savez)(path, **state)
    return path


def test_round_trip(tmp_path):
    a, b = small_model(0), small_model(5)
    a.save(tmp_path / "w.npz")
    b.load(tmp_path / "w.npz")
    for (name, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_array_equal(p, q, err_msg=name)


def damage(path, how):
    data = bytearray(path.read_bytes())
    if how == "truncated":
        data = data[:len(data) // 2]
    elif how == "not a zip":
        data = bytearray(b"not a zip file at all")
    elif how == "deflate stream damaged":
        i = data.find(b"0.W.npy") + len("0.W.npy") + 40      # inside the deflated data
        data[i:i + 8] = b"\xff" * 8
    elif how == "deflate stream cut short":
        i = data.find(b"PK\x01\x02")                         # first entry's compressed size
        size = int.from_bytes(data[i + 20:i + 24], "little")
        data[i + 20:i + 24] = (size // 2).to_bytes(4, "little")
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("compress, how", [
    (False, "truncated"), (True, "truncated"), (False, "not a zip"),
    (True, "deflate stream damaged"), (True, "deflate stream cut short"),
])
def test_damaged_file_raises_checkpoint_error_naming_it(tmp_path, compress, how):
    path = saved(tmp_path, compress)
    damage(path, how)
    model = small_model(3)
    before = model.state_dict()
    with pytest.raises(CheckpointError) as e:
        model.load(path)
    assert str(e.value).startswith(f"Sequential.load: cannot read {path}"), e.value
    for name, value in model.state_dict().items():             # nothing half-loaded
        np.testing.assert_array_equal(value, before[name], err_msg=name)


@pytest.mark.parametrize("changes, message", [
    ({"2_b": None}, r"missing arrays \['2.b'\]"),
    ({"0_W": np.zeros((3, 3), np.float32)},
     r"0.W \(Dense.W\): expected shape \(4, 3\), got \(3, 3\)"),
    ({"0_W": np.zeros((4, 3), np.int32)}, "expected a float array, got int32"),
])
def test_file_of_another_model_names_the_file(tmp_path, changes, message):
    path = saved(tmp_path, **changes)
    with pytest.raises(CheckpointError, match=message) as e:
        small_model().load(path)
    assert str(e.value).startswith(f"Sequential.load: {path} does not hold this model's weights")


def test_object_array_and_huge_header_are_refused_before_reading(tmp_path):
    path = saved(tmp_path, **{"0_W": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(CheckpointError, match=r"'0.W' is an object \(pickled\) array"):
        small_model().load(path)
    with zipfile.ZipFile(path, "w") as z:                     # CRCs right, a header that lies
        for name, value in small_model().state_dict().items():
            f = io.BytesIO()
            np.lib.format.write_array(f, value)
            z.writestr(f"{name}.npy", f.getvalue())
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": "<f4", "fortran_order": False, "shape": (2**40, 3)})
        z.writestr("huge.npy", header.getvalue() + b"\0" * 64)
    with pytest.raises(CheckpointError, match=r"'huge': its header declares shape "
                                              r"\(1099511627776, 3\) of float32, "
                                              r"13194139533312 bytes, more than the bound"):
        small_model().load(path)


def test_missing_file_and_non_regular_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        small_model().load(tmp_path / "nothing.npz")
    (tmp_path / "folder.npz").mkdir()
    with pytest.raises(CheckpointError, match="folder.npz: is a directory"):
        small_model().load(tmp_path / "folder.npz")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.npz")
        signal.alarm(20)                                        # a blocking open fails the test
        try:
            with pytest.raises(CheckpointError, match="pipe.npz: is a FIFO"):
                small_model().load(tmp_path / "pipe.npz")
        finally:
            signal.alarm(0)
