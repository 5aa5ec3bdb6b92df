"""Names of the CIFAR-10 files and folders, the errors for bad or missing data, and the
bounded reading of a .tar.gz archive.

Shared by cifar10.py (reading) and download.py (fetching), which import this
module and not each other's internals.

A .tar.gz is a tar stream inside a gzip stream. Reading it within bounds means:
  - the file is a regular file (checkpoint.open_regular_file: a FIFO would block);
  - at most MAX_ARCHIVE_MEMBERS members, none reaching past MAX_ARCHIVE_BYTES of the
    unpacked stream (`bounded_members`), so a gzip bomb of tar headers stops early;
  - the gzip stream read to its end (`read_to_end`): gzip keeps a CRC-32 and the length
    of the data in a trailer after it, and Python's gzip checks them only when a read
    reaches that trailer. tarfile stops at the end-of-archive marker, before it, so a
    flipped byte would otherwise load silently.
"""
import tarfile
import zlib

BIN_DIR, PY_DIR = "cifar-10-batches-bin", "cifar-10-batches-py"
BIN_ARCHIVE, PY_ARCHIVE = "cifar-10-binary.tar.gz", "cifar-10-python.tar.gz"
MAX_ARCHIVE_BYTES = 2**30       # unpacked; each official archive unpacks to about 180 MB
MAX_ARCHIVE_MEMBERS = 1000      # each official archive holds one folder and 8 files
CHUNK = 2**20

# What gzip, zlib and tarfile raise on a damaged archive (gzip.BadGzipFile is an OSError).
UNREADABLE_ARCHIVE = (tarfile.TarError, OSError, EOFError, zlib.error)


class DatasetError(ValueError):
    """A dataset file is present but wrong: truncated, oversized, corrupt or unsafe."""


class DatasetNotFoundError(FileNotFoundError):
    """CIFAR-10 is in none of the places looked, and could not be downloaded."""


def bounded_members(tar, archive):
    """Iterate the members of an open tarfile, raising DatasetError (naming ``archive``)
    past MAX_ARCHIVE_MEMBERS members or MAX_ARCHIVE_BYTES of unpacked stream."""
    for count, member in enumerate(tar, 1):
        if count > MAX_ARCHIVE_MEMBERS:
            raise DatasetError(f"{archive}: more than {MAX_ARCHIVE_MEMBERS} members "
                               f"(MAX_ARCHIVE_MEMBERS); not a CIFAR-10 archive")
        if member.offset_data + member.size > MAX_ARCHIVE_BYTES:
            raise DatasetError(f"{archive}: member {member.name!r} reaches "
                               f"{member.offset_data + member.size} bytes into the unpacked "
                               f"stream, more than {MAX_ARCHIVE_BYTES} (MAX_ARCHIVE_BYTES)")
        yield member


def read_to_end(gz, archive):
    """Read an open gzip.GzipFile to its end, so gzip checks its CRC-32 and length
    (gzip.BadGzipFile if they differ); DatasetError past MAX_ARCHIVE_BYTES."""
    while gz.read(CHUNK):
        if gz.tell() > MAX_ARCHIVE_BYTES:
            raise DatasetError(f"{archive}: unpacks to more than {MAX_ARCHIVE_BYTES} bytes "
                               f"(MAX_ARCHIVE_BYTES); not a CIFAR-10 archive")
