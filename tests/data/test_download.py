"""Tests for minicnn.data.download: MD5 check, atomic download, safe extraction.

No test touches the network: the opener is a fake that serves bytes from memory.
"""
import gzip
import hashlib
import io
import tarfile
import urllib.error

import numpy as np
import pytest

from minicnn.data import (DatasetError, DatasetNotFoundError, download_cifar10, download_file,
                          load_cifar10, md5_file, safe_extract)
from minicnn.data import cifar10, download

N = 2  # records per fake batch file


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.setattr(cifar10, "RECORDS_PER_BATCH", N)
    monkeypatch.delenv("MINICNN_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def add_bytes(tar, name, data, **attrs):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for k, v in attrs.items():
        setattr(info, k, v)
    tar.addfile(info, io.BytesIO(data))


def fake_archive(extra=()):
    """A small cifar-10-binary.tar.gz in memory: bytes, and the train labels it holds."""
    buf = io.BytesIO()
    labels = []
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for i, stem in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
            rec = np.zeros((N, 3073), np.uint8)
            rec[:, 0] = [i, 9 - i]
            labels += [i, 9 - i] if i < 5 else []
            add_bytes(tar, f"cifar-10-batches-bin/{stem}.bin", rec.tobytes())
        add_bytes(tar, "cifar-10-batches-bin/batches.meta.txt", "\n".join(cifar10.CLASS_NAMES).encode())
        for name, data, attrs in extra:
            add_bytes(tar, name, data, **attrs)
    return buf.getvalue(), labels


class FakeResponse(io.BytesIO):
    def __init__(self, data):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


def opener_for(data, calls):
    def urlopen(url, timeout=None):
        calls.append(url)
        return FakeResponse(data)
    return urlopen


def md5(data):
    return hashlib.md5(data).hexdigest()


def test_download_good_md5(tmp_path):
    data, labels = fake_archive()
    calls = []
    folder = download_cifar10(tmp_path / "d", urlopen=opener_for(data, calls), md5=md5(data),
                              progress=False)
    assert calls == [download.ARCHIVES["binary"][0]]
    assert calls[0].startswith("https://")
    assert folder == tmp_path / "d" / "cifar-10-batches-bin"
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["cifar-10-batches-bin"]  # no temp left
    assert load_cifar10(folder, download=False)["y_train"].tolist() == labels


def test_download_md5_mismatch_keeps_nothing(tmp_path):
    data, _ = fake_archive()
    with pytest.raises(DatasetError, match=f"MD5 mismatch: expected {'0' * 32}, got {md5(data)}"):
        download_file("https://example.invalid/a.tar.gz", tmp_path / "a.tar.gz", "0" * 32,
                      urlopen=opener_for(data, []), progress=False)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DatasetError, match="MD5 mismatch"):    # the published MD5 by default
        download_cifar10(tmp_path, urlopen=opener_for(data, []), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_download_file_writes_and_rejects_http(tmp_path):
    out = download_file("https://x.invalid/f", tmp_path / "f", md5(b"abc"),
                        urlopen=opener_for(b"abc", []), progress=False)
    assert out.read_bytes() == b"abc" and md5_file(out) == md5(b"abc")
    with pytest.raises(ValueError, match="expected an https:// URL, got 'http://x.invalid/f'"):
        download_file("http://x.invalid/f", tmp_path / "g", md5(b"abc"), urlopen=opener_for(b"abc", []))


def test_load_downloads_into_data_dir(tmp_path, monkeypatch):
    data, labels = fake_archive()
    url, _, name, folder = download.ARCHIVES["binary"]
    monkeypatch.setitem(download.ARCHIVES, "binary", (url, md5(data), name, folder))
    calls = []
    out = load_cifar10(tmp_path / "arg", urlopen=opener_for(data, calls))
    assert out["y_train"].tolist() == labels and len(calls) == 1
    assert (tmp_path / "arg" / folder / "data_batch_1.bin").is_file()
    load_cifar10(tmp_path / "arg", urlopen=opener_for(data, calls))   # now found: no download
    assert len(calls) == 1


def test_no_network_error_lists_places(tmp_path):
    def offline(url, timeout=None):
        raise urllib.error.URLError("Temporary failure in name resolution")
    with pytest.raises(DatasetNotFoundError) as e:
        load_cifar10(urlopen=offline)
    msg = str(e.value)
    assert str(tmp_path / "home/.cache/minicnn") in msg
    assert "Temporary failure in name resolution" in msg
    assert "--data-dir" in msg and "MINICNN_DATA" in msg


def archive_and_empty_target(tmp_path, data):
    """(tmp_path/a.tar.gz holding ``data``, an empty folder tmp_path/out to extract into)."""
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(data)
    target = tmp_path / "out"
    target.mkdir()
    return archive, target


@pytest.mark.parametrize("name,attrs,why", [
    ("../evil", {}, "outside"),
    ("cifar-10-batches-bin/../../evil", {}, "outside"),
    ("/tmp/evil", {}, "absolute"),
    ("cifar-10-batches-bin/link", {"type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}, "links"),
    ("cifar-10-batches-bin/hard", {"type": tarfile.LNKTYPE, "linkname": "../x"}, "links"),
    ("cifar-10-batches-bin/dev", {"type": tarfile.CHRTYPE}, "devices"),
    ("cifar-10-batches-bin/fifo", {"type": tarfile.FIFOTYPE}, "fifos"),
])
def test_safe_extract_rejects_unsafe_members(tmp_path, name, attrs, why):
    data, _ = fake_archive(extra=[(name, b"" if attrs else b"evil", attrs)])
    archive, target = archive_and_empty_target(tmp_path, data)
    with pytest.raises(DatasetError, match=why) as e:
        safe_extract(archive, target)
    assert repr(name) in str(e.value)
    assert list(target.iterdir()) == [] and not (tmp_path / "evil").exists()   # nothing written


def test_unsafe_download_is_not_extracted(tmp_path):
    data, _ = fake_archive(extra=[("../evil", b"evil", {})])
    with pytest.raises(DatasetError, match="outside"):
        download_cifar10(tmp_path / "d", urlopen=opener_for(data, []), md5=md5(data), progress=False)
    assert not (tmp_path / "evil").exists() and not (tmp_path / "d/cifar-10-batches-bin").exists()


def test_corrupt_archive_is_rejected(tmp_path):
    bad = tmp_path / "cifar-10-binary.tar.gz"
    bad.write_bytes(b"not a gzip file at all")
    with pytest.raises(DatasetError, match="not a readable .tar.gz"):
        load_cifar10(tmp_path, download=False)
    with pytest.raises(DatasetError, match="not a readable .tar.gz"):
        safe_extract(bad, tmp_path / "out")


def test_damaged_archive_writes_nothing(tmp_path):
    """safe_extract reads the gzip stream to its end (CRC) before writing anything."""
    data, _ = fake_archive()
    tar = gzip.decompress(data)
    stored = bytearray(gzip.compress(tar, compresslevel=0, mtime=0))   # tar bytes as they are
    stored[stored.find(b"cifar-10-batches-bin/test_batch.bin") + 600] ^= 1
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(bytes(stored))
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(DatasetError, match="CRC check failed") as e:
        safe_extract(archive, target)
    assert str(archive) in str(e.value) and list(target.iterdir()) == []


@pytest.mark.parametrize("extra, why", [
    ([("cifar-10-batches-bin/data_batch_1.bin/x", b"x", {})], "collides with another member"),
    ([("cifar-10-batches-bin/test_batch.bin", b"", {"type": tarfile.DIRTYPE})], "collides"),
    ("cut", "unexpected end of data"),
])
def test_archive_whose_members_cannot_all_be_written_writes_nothing(tmp_path, extra, why):
    if extra == "cut":    # the last member declares 10**6 bytes; 512 follow, then nothing
        tar = gzip.decompress(fake_archive()[0])
        with tarfile.open(fileobj=io.BytesIO(tar)) as t:
            end = max(m.offset_data + -(-m.size // 512) * 512 for m in t.getmembers())
        info = tarfile.TarInfo("cifar-10-batches-bin/big")
        info.size = 10**6
        data = gzip.compress(tar[:end] + info.tobuf() + b"x" * 512)
    else:
        data, _ = fake_archive(extra=extra)
    archive, target = archive_and_empty_target(tmp_path, data)
    with pytest.raises(DatasetError, match=why) as e:
        safe_extract(archive, target)
    assert str(archive) in str(e.value) and list(target.iterdir()) == []


def test_download_into_a_folder_that_holds_files_keeps_them_and_says_so(tmp_path):
    data, _ = fake_archive()
    folder = tmp_path / "d" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    calls = []
    with pytest.raises(DatasetError) as e:
        download_cifar10(tmp_path / "d", urlopen=opener_for(data, calls), md5=md5(data),
                         progress=False)
    msg = str(e.value)
    assert "already holds files (notes.txt)" in msg and "not downloading" in msg
    assert "remove" not in msg.lower() and "delete" not in msg.lower()
    assert calls == [] and (folder / "notes.txt").read_text() == "mine"
