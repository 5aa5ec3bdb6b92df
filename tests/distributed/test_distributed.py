"""Data-parallel training over MPI (minicnn/distributed.py).

The MPI tests start ``mpiexec -n K`` in a subprocess, bounded by a timeout, and skip with
the reason when mpi4py or mpiexec is missing (``pip install -e ".[distributed]"``).
The pieces that need no MPI (sharding arithmetic, the launcher checks) run everywhere.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minicnn import distributed
from minicnn.data import BatchLoader

HERE = Path(__file__).parent
TIMEOUT = 600          # seconds per mpiexec: a cold numba cache compiles on both ranks


def mpiexec():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


needs_mpi = pytest.mark.skipif(mpiexec() is None, reason="MPI is not installed (mpi4py and "
                               "mpiexec): pip install -e \".[distributed]\"")


def clean_env():
    """The environment without an outer MPI launch's variables."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("PMI_", "PMIX_", "OMPI_", "HYDRA_", "MPI_LOCALNRANKS"))}


def launch(n, *args, check=True):
    cmd = [mpiexec(), "-n", str(n), sys.executable, str(HERE / "mpi_worker.py"), *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=clean_env())
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def trained_weights(n, tmp_path, *options):
    out = tmp_path / f"n{n}{''.join(options)}"
    out.mkdir()
    launch(n, "train", out, *options)
    steps = json.loads((out / "steps_checked.json").read_text())
    with np.load(out / "weights.npz") as f:
        return {k: f[k] for k in f.files}, steps


# ---- with MPI -------------------------------------------------------------------------------
@needs_mpi
@pytest.mark.parametrize("options", [("--sync-bn",), ("--no-bn",), ("--sync-bn", "--muon")])
def test_two_ranks_end_with_the_weights_of_one(tmp_path, options):
    """Same global batch on 1 and 2 ranks: same weights to float tolerance. Not bit for
    bit: the 2-rank gradient sums the two halves' sums, one rank sums all rows at once
    (and SyncBatchNorm adds its sums across ranks), so the rounding differs."""
    one, steps_one = trained_weights(1, tmp_path, *options)
    two, steps_two = trained_weights(2, tmp_path, *options)
    assert steps_one == steps_two == 8                  # 64 images / 16 per batch x 2 epochs
    assert one.keys() == two.keys()
    for name in one:          # atol: a conv bias before BatchNorm has ~zero gradient
        np.testing.assert_allclose(two[name], one[name], rtol=1e-4, atol=1e-6, err_msg=name)


@needs_mpi
def test_per_rank_batchnorm_is_not_the_one_process_model(tmp_path):
    """The default BatchNorm normalises each rank's half alone: a different model, as
    documented (the control that shows the tolerance above can fail)."""
    one, _ = trained_weights(1, tmp_path)
    two, _ = trained_weights(2, tmp_path)
    worst = max(np.abs(one[k] - two[k]).max() / (np.abs(one[k]).max() + 1e-6) for k in one
                if not k.endswith(".b"))
    assert worst > 1e-3


@needs_mpi
def test_a_failing_rank_stops_the_whole_job_with_its_error(tmp_path):
    proc = launch(2, "raise", tmp_path, check=False)
    assert proc.returncode != 0
    assert "injected failure on rank 1" in proc.stderr, (
        f"exit {proc.returncode}; stdout: {proc.stdout!r}; stderr: {proc.stderr!r}")
    assert "[rank 1 of 2]" in proc.stderr
    assert not (tmp_path / "weights.npz").exists()


@needs_mpi
def test_shards_are_disjoint_cover_each_epoch_and_follow_the_seed(tmp_path):
    def shards(seed):
        out = tmp_path / f"seed{seed}-{len(list(tmp_path.iterdir()))}"
        out.mkdir()
        launch(2, "shards", out, seed)
        return json.loads((out / "shards.json").read_text())     # [rank][epoch] -> images

    first, again, other = shards(5), shards(5), shards(6)
    for epoch in range(2):
        rank0, rank1 = first[0][epoch], first[1][epoch]
        assert len(rank0) == len(rank1) == 20
        assert not set(rank0) & set(rank1)
        assert sorted(rank0 + rank1) == list(range(40))
    assert first == again
    assert first != other
    assert first[0][0] != first[0][1]                     # a new order every epoch
    # rank 0 takes the first half of each global batch of the one-process loader
    x = np.arange(40, dtype=np.float32).reshape(40, 1, 1, 1)
    whole = [xb.ravel().astype(int).tolist() for xb, _ in BatchLoader(x, np.zeros(40, int), 8,
                                                                        seed=5)]
    assert first[0][0] == [v for batch in whole for v in batch[:4]]


@needs_mpi
def test_ranks_with_other_library_versions_are_refused_naming_the_library(tmp_path):
    proc = launch(2, "versions", tmp_path, check=False)
    assert proc.returncode == 3
    text = (tmp_path / "error.txt").read_text()
    assert "numpy" in text and "rank 1 0.0" in text and f"rank 0 {np.__version__}" in text
    assert "python" not in text                            # only what differs is named


# ---- without MPI ------------------------------------------------------------------------------
class FakeRanks:
    def __init__(self, rank, size):
        self.rank, self.size = rank, size


def test_sharded_loader_refuses_a_batch_that_does_not_split():
    loader = BatchLoader(np.zeros((30, 1, 1, 1), np.float32), np.zeros(30, int), 9)
    with pytest.raises(distributed.DistributedError, match="batch of 9 images cannot be split "
                                                           "evenly over 2 ranks"):
        distributed.ShardedLoader(loader, 0, 2)


def test_a_short_last_batch_is_split_without_losing_images():
    x = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1)
    seen = []
    for rank in range(2):
        loader = BatchLoader(x, np.zeros(10, int), 4, seed=0)    # batches of 4, 4, 2
        seen += [int(v) for xb, _ in distributed.ShardedLoader(loader, rank, 2)
                 for v in xb.ravel()]
    assert sorted(seen) == list(range(10))


def test_the_launcher_environment_is_read_without_mpi(monkeypatch):
    for name in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "PMI_RANK",
                 "OMPI_COMM_WORLD_RANK", "PMIX_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.launched_world_size() == 1 and distributed.launched_rank() == 0
    monkeypatch.setenv("PMI_SIZE", "4")
    monkeypatch.setenv("PMI_RANK", "3")
    assert distributed.launched_world_size() == 4 and distributed.launched_rank() == 3


def test_missing_mpi4py_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)           # import mpi4py -> ImportError
    with pytest.raises(distributed.DistributedError, match=r'pip install -e "\.\[distributed\]"'):
        distributed.Ranks()
