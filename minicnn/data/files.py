"""Names of the CIFAR-10 files and folders, and the errors for bad or missing data.

Shared by cifar10.py (reading) and download.py (fetching), which import this
module and not each other's internals.
"""
BIN_DIR, PY_DIR = "cifar-10-batches-bin", "cifar-10-batches-py"
BIN_ARCHIVE, PY_ARCHIVE = "cifar-10-binary.tar.gz", "cifar-10-python.tar.gz"


class DatasetError(ValueError):
    """A dataset file is present but wrong: truncated, oversized, corrupt or unsafe."""


class DatasetNotFoundError(FileNotFoundError):
    """CIFAR-10 is in none of the places looked, and could not be downloaded."""
