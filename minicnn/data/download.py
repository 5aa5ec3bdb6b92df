"""Download the official CIFAR-10 archive, check its MD5, and extract it safely.

    download_cifar10(dest_dir)  -> dest_dir/cifar-10-batches-bin
      1. stream https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz to a temp file in
         dest_dir (tqdm progress bar), hashing as it goes;
      2. if the MD5 is the published one, rename the temp file into place (atomic);
      3. read the archive to its end (gzip CRC, size bounds: files.py), check every member
         (no absolute paths, no '..' escapes, no links or devices), extract into a temp
         folder, and rename the batches folder into place.

The opener is injectable (urlopen=...) so tests never touch the network.
"""
import gzip
import hashlib
import os
import posixpath
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path, PurePosixPath, PureWindowsPath

from tqdm import tqdm

from ..checkpoint import open_regular_file
from .files import (BIN_ARCHIVE, BIN_DIR, PY_ARCHIVE, PY_DIR, UNREADABLE_ARCHIVE, DatasetError,
                    bounded_members, read_to_end)

ARCHIVES = {  # layout -> (url, published md5, archive file name, folder it extracts to)
    "binary": ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
               "c32a1d4ab5d03f1284b67883e8d87530", BIN_ARCHIVE, BIN_DIR),
    "python": ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
               "c58f30108f718f92721af3b95e74349a", PY_ARCHIVE, PY_DIR),
}
CHUNK = 2**20


def md5_file(path):
    """Hex MD5 of a regular file, read in 1 MiB chunks (DatasetError for a FIFO, device...)."""
    h = hashlib.md5(usedforsecurity=False)
    with open_regular_file(path, DatasetError) as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def download_file(url, dest, md5, urlopen=None, timeout=60, progress=True):
    """Fetch url (HTTPS only) to dest atomically, accepting it only if its MD5 equals md5.

    urlopen: callable (url, timeout=...) -> response with .read(n) (a context manager);
    defaults to urllib.request.urlopen. On any failure the temp file is removed and dest
    is left untouched. Returns dest (Path).
    """
    if not url.startswith("https://"):
        raise ValueError(f"download_file: expected an https:// URL, got {url!r}")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    h = hashlib.md5(usedforsecurity=False)
    try:
        with os.fdopen(fd, "wb") as f, (urlopen or urllib.request.urlopen)(url, timeout=timeout) as r:
            total = getattr(r, "headers", {}).get("Content-Length")
            with tqdm(total=int(total) if total else None, unit="B", unit_scale=True,
                      desc=f"downloading {dest.name}", disable=not progress) as bar:
                for block in iter(lambda: r.read(CHUNK), b""):
                    f.write(block)
                    h.update(block)
                    bar.update(len(block))
        if h.hexdigest() != md5:
            raise DatasetError(f"{url}: MD5 mismatch: expected {md5}, got {h.hexdigest()} "
                               f"(corrupt or not the official file; nothing was kept)")
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def check_member(member, target):
    """Raise DatasetError unless extracting tar member stays a plain file or folder in target."""
    name = member.name
    if member.issym() or member.islnk():
        raise DatasetError(f"unsafe archive member {name!r}: links are not allowed")
    if not (member.isfile() or member.isdir()):
        raise DatasetError(f"unsafe archive member {name!r}: devices/fifos are not allowed")
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute() \
            or PureWindowsPath(name).drive:
        raise DatasetError(f"unsafe archive member {name!r}: absolute paths are not allowed")
    root = Path(target).resolve()
    if not (root / name).resolve().is_relative_to(root):
        raise DatasetError(f"unsafe archive member {name!r}: it would land outside {root}")


def check_paths(members, archive):
    """Raise DatasetError if two members would collide on disk: a file where another
    member needs a folder, or a file and a folder at one path (extraction would fail
    halfway with files already written)."""
    files, folders = set(), {"."}
    for m in members:
        path = posixpath.normpath(m.name)
        parents = [str(p) for p in PurePosixPath(path).parents]
        clash = next((p for p in parents if p in files), None)
        if clash is None and (path in folders if not m.isdir() else path in files):
            clash = path
        if clash is not None:
            raise DatasetError(f"{archive}: member {m.name!r} collides with another member "
                               f"at {clash!r} (a file and a folder at one path)")
        folders.update(parents)
        (folders if m.isdir() else files).add(path)


def safe_extract(archive, target):
    """Extract a .tar.gz into target after checking the whole archive and every member.

    Nothing is written unless the archive is a regular file that reads to its end with a
    good gzip CRC, within files.MAX_ARCHIVE_BYTES and MAX_ARCHIVE_MEMBERS (tarfile itself
    refuses a member whose data runs past the end), every member passes check_member,
    and no two members collide (check_paths). Files get mode 0o644, folders 0o755;
    ownership and timestamps from the archive are ignored. Returns target (Path).
    """
    target = Path(target)
    with open_regular_file(archive, DatasetError) as f, gzip.GzipFile(fileobj=f, mode="rb") as gz:
        try:
            read_to_end(gz, archive)          # the CRC, before anything is written
            gz.seek(0)
            tar = tarfile.open(fileobj=gz, mode="r:")
            members = list(bounded_members(tar, archive))
        except UNREADABLE_ARCHIVE as e:
            raise DatasetError(f"{archive}: not a readable .tar.gz archive: {e}") from e
        with tar:
            for m in members:
                try:
                    check_member(m, target)
                except DatasetError as e:
                    raise DatasetError(f"{archive}: {e}") from None
            check_paths(members, archive)
            for m in members:
                out = target / m.name
                if m.isdir():
                    out.mkdir(mode=0o755, parents=True, exist_ok=True)
                    continue
                out.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(m) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
                out.chmod(0o644)
    return target


def download_cifar10(dest_dir, layout="binary", urlopen=None, md5=None, progress=True):
    """Download, verify and extract the official archive into dest_dir.

    layout: "binary" (default) or "python". md5: override the published checksum (tests).
    Returns the extracted folder dest_dir/cifar-10-batches-bin (or -py). The archive is
    deleted once extracted. Network failures raise OSError (urllib.error.URLError).
    """
    if layout not in ARCHIVES:
        raise ValueError(f"download_cifar10: layout must be one of {list(ARCHIVES)}, got {layout!r}")
    url, published, archive_name, folder = ARCHIVES[layout]
    dest_dir = Path(dest_dir).expanduser()
    final = dest_dir / folder
    if final.exists() and any(final.iterdir()):
        held = sorted(p.name for p in final.iterdir())
        raise DatasetError(f"{final} already holds files ({', '.join(held[:8])}"
                           f"{', ...' if len(held) > 8 else ''}); not downloading into a folder "
                           f"that is not empty. Pass another folder, or, if these are part of "
                           f"CIFAR-10, add the missing files to them")
    archive = download_file(url, dest_dir / archive_name, md5 or published, urlopen,
                            progress=progress)
    tmp = Path(tempfile.mkdtemp(dir=dest_dir, prefix=".extract-"))
    try:
        safe_extract(archive, tmp)
        if not (tmp / folder).is_dir():
            raise DatasetError(f"{archive}: expected a folder {folder}/ inside, found none")
        if final.exists():
            final.rmdir()   # empty, checked above
        os.replace(tmp / folder, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    archive.unlink()
    return final
