"""Data-parallel training over MPI: K processes ("ranks") train one model together.

The pattern of Horovod and ChainerMN, on mpi4py (the MPI that clusters already run):

    start:  every rank takes rank 0's weights, buffers and optimizer state   (Bcast)
    step:   the loader draws the global batch of B images, the same on every rank
            rank k keeps rows [k B/K, (k+1) B/K) and computes the gradient g_k of the
            mean loss over its B/K rows
            g = (1/K) sum_k g_k        one Allreduce over ONE buffer holding every gradient
            every rank applies the same update to the same weights: they stay identical

Why the average is the gradient one process would compute on the whole batch:

    L = (1/B) sum_i l_i = (1/K) sum_k [ (K/B) sum_{i in shard k} l_i ] = (1/K) sum_k L_k

so dL/dw = (1/K) sum_k dL_k/dw. It holds for every layer whose output for an image
depends on that image alone. BatchNorm does not: in training it normalises with the
statistics of the batch. Two choices:

* per-rank BatchNorm (the default, as in PyTorch DDP and Horovod): each rank uses the
  statistics of its own B/K rows. Training then matches one process with batch
  statistics over B/K images - a different (usually as good) model.
* ``SyncBatchNorm2D`` (``sync_batchnorm(model, ranks)``): every per-channel sum behind
  the mean, the variance and the backward means is added up across ranks before use
  (two small Allreduces per layer and step on the fast backend: the forward sums, the
  backward sums), so K ranks compute exactly the batch
  statistics of one process, to float rounding: sums are added in another order.

One Allreduce per step ("tensor fusion"): the gradients are copied into one contiguous
float32 buffer, with the batch's loss and accuracy appended, averaged with a single
``Allreduce``, and copied back. One message of 7.9 MB for airbench94 instead of ~30
small ones, each of which would pay the network's latency. Per-rank BatchNorm's running
statistics travel in the same message and are averaged, so every rank holds the same model.

Threads: K ranks on a host of P cores get P // K threads each (numba and BLAS), so
ranks x threads never exceeds the cores.

Errors: a rank that raises makes the whole job stop (``abort_on_error``: it prints the
rank's traceback, then ``MPI_Abort``) instead of leaving the others waiting forever in
the next Allreduce. Checks that every rank makes (``agree``) end with one message on
rank 0 naming the ranks that failed, and a non-zero exit on all.

Install: ``pip install -e ".[distributed]"`` brings mpi4py and MPICH as wheels; on a
cluster with its own MPI, ``pip install mpi4py --no-binary mpi4py`` builds against it
(docs/distributed.md).
"""
import os
import sys
import time
import traceback
import zlib

import numpy as np

from .nn.batchnorm import BatchNorm1D, BatchNorm2D

# Variables that MPI launchers set in every process they start: (variable, what it holds)
LAUNCHER_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS",
                      "SLURM_NTASKS")

# Seconds a failing rank waits after printing its traceback, before MPI_Abort kills the job
# (time for the launcher to forward the text; see Ranks.abort_on_error).
ABORT_GRACE_SECONDS = 1.0


class DistributedError(RuntimeError):
    """A problem of the distributed job itself: its setup, or ranks that disagree."""


def launched_world_size():
    """The number of processes the MPI launcher started, from its environment
    (no MPI import), or 1 when this process was not started by mpiexec/srun."""
    for name in LAUNCHER_VARIABLES[:3]:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


def launched_rank():
    """This process's rank as the MPI launcher set it (0 when not launched by one)."""
    for name in ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"):
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


def import_mpi():
    """mpi4py's MPI module, or a DistributedError saying how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise DistributedError(
            f"distributed training needs mpi4py and an MPI library ({e}); install them with "
            f"pip install -e \".[distributed]\" (mpi4py + MPICH wheels), or see "
            f"docs/distributed.md for a cluster's own MPI") from None
    return MPI


# ---------------------------------------------------------------- the job's processes
class Ranks:
    """The job's processes: ``rank`` (0..size-1), ``size`` (K), and the collectives
    training needs. ``comm``: an mpi4py communicator (default COMM_WORLD)."""

    def __init__(self, comm=None):
        MPI = import_mpi()
        self.MPI = MPI
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        host = self.comm.Split_type(MPI.COMM_TYPE_SHARED)     # the ranks on this host
        self.ranks_on_host = host.Get_size()
        host.Free()

    @property
    def is_main(self):
        """Rank 0: the one that prints, evaluates and writes files."""
        return self.rank == 0

    def threads_per_rank(self, cores=None):
        """Cores of this host // ranks on it (at least 1)."""
        cores = cores or len(os.sched_getaffinity(0))
        return max(1, cores // self.ranks_on_host)

    def limit_threads(self, threads=None):
        """Numba's and BLAS's threads for this rank: ``threads_per_rank()`` unless given.
        Returns the number set."""
        import numba
        from threadpoolctl import threadpool_limits
        from .fast.process import tune_process
        tune_process()                     # its settings must come before numba's threads
        threads = threads or self.threads_per_rank()
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        threadpool_limits(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)        # for any child process
        return threads

    # -- errors ----------------------------------------------------------------------------
    def abort_on_error(self):
        """From now on an uncaught exception on any rank prints that rank's traceback
        and aborts the whole job (exit code non-zero everywhere) instead of a hang.

        The launcher forwards each rank's stderr through a pipe, and ``MPI_Abort`` kills
        every process at once: without a pause, the traceback can still be in that pipe
        when the launcher exits, and the user sees a failed job with no reason. The hook
        waits ``ABORT_GRACE_SECONDS`` between the flush and the abort."""
        def hook(kind, value, tb):
            text = "".join(traceback.format_exception(kind, value, tb))
            sys.stderr.write(f"[rank {self.rank} of {self.size}] {text}")
            sys.stderr.flush()
            time.sleep(ABORT_GRACE_SECONDS)
            self.comm.Abort(1)
        sys.excepthook = hook

    def agree(self, problem, status=1):
        """Every rank calls this with its own problem (a message, or None when fine) and
        the exit status it would mean. If any rank has one, every rank raises
        DistributedError with all of them ("rank 1: ...") and ``.status``, the largest
        status among them (the same on every rank, so the job exits with it); the
        caller on rank 0 prints it, the others exit quietly."""
        problems = self.comm.allgather((problem, status))
        by_problem = {}
        for rank, (text, _) in enumerate(problems):
            if text:
                by_problem.setdefault(text, []).append(str(rank))
        if by_problem:
            error = DistributedError("; ".join(
                f"{'every rank' if len(r) == self.size > 1 else 'rank ' + ', '.join(r)}: {text}"
                for text, r in by_problem.items()))
            error.status = max(code for text, code in problems if text)
            raise error

    def check_same_versions(self, versions=None):
        """Refuse ranks that run different Python, NumPy, numba, mpi4py or minicnn
        versions (their numbers could differ, or their code disagree on the messages).
        ``versions``: this rank's {name: version}; by default ``library_versions()``."""
        mine = versions if versions is not None else library_versions()
        every = self.comm.allgather(mine)
        differing = sorted({k for v in every for k in v if v.get(k) != every[0].get(k)})
        if differing:
            detail = "; ".join(f"{name}: " + ", ".join(f"rank {r} {v.get(name)}"
                                                       for r, v in enumerate(every))
                               for name in differing)
            raise DistributedError(f"the ranks run different library versions ({detail}); "
                                   f"install the same versions on every host")

    # -- moving arrays -----------------------------------------------------------------------
    def broadcast(self, obj):
        """A small picklable object from rank 0 to every rank (messages between the job's
        own processes; files are never unpickled)."""
        return self.comm.bcast(obj, root=0)

    def sum_in_place(self, buffer):
        """buffer <- the sum over ranks of every rank's buffer (Allreduce)."""
        self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)
        return buffer

    def check_in_sync(self, arrays, what="weights"):
        """Raise DistributedError unless every rank holds bit-identical arrays (CRC-32)."""
        crc = 0
        for a in arrays:
            crc = zlib.crc32(np.ascontiguousarray(a).view(np.uint8), crc)
        crcs = self.comm.allgather(crc)
        if len(set(crcs)) > 1:
            raise DistributedError(f"the ranks' {what} differ (CRC-32 per rank: "
                                   + ", ".join(f"{c:08x}" for c in crcs) + ")")


def library_versions():
    """{name: version} of what decides the numbers and the protocol of a run."""
    import numba
    from . import __version__
    versions = {"python": sys.version.split()[0], "numpy": np.__version__,
                "numba": numba.__version__, "minicnn": __version__}
    try:
        import mpi4py
        versions["mpi4py"] = mpi4py.__version__
    except ImportError:
        pass
    return versions


# ---------------------------------------------------------------- gradients
class GradientAverager:
    """All gradients in one buffer, averaged over ranks with one Allreduce.

    named_parameters: (name, param, grad) triples (``model.named_parameters()``); the
    grads are the live arrays backward writes. buffers: arrays each rank computes from
    its own data and that must not drift apart - the running statistics of per-rank
    BatchNorm (``per_rank_buffers``) - averaged in the same message. (PyTorch DDP
    copies rank 0's instead; the average is the better estimate.) ``average(loss,
    accuracy)`` returns the rank-averaged (loss, accuracy) of the step, also carried
    in the message.
    """

    def __init__(self, ranks, named_parameters, buffers=()):
        self.ranks = ranks
        self.arrays = [g for _, _, g in named_parameters] + list(buffers)
        sizes = [a.size for a in self.arrays]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.buffer = np.empty(self.offsets[-1] + 2, np.float32)     # + loss, accuracy

    @property
    def nbytes(self):
        return self.buffer.nbytes

    def average(self, loss=0.0, accuracy=0.0):
        buf, K = self.buffer, self.ranks.size
        spans = list(zip(self.arrays, self.offsets[:-1], self.offsets[1:]))
        for a, start, stop in spans:
            buf[start:stop] = a.ravel()
        buf[-2:] = loss, accuracy
        self.ranks.sum_in_place(buf)
        buf *= np.float32(1.0 / K)
        for a, start, stop in spans:
            a[...] = buf[start:stop].reshape(a.shape)
        return float(buf[-2]), float(buf[-1])


def per_rank_buffers(model):
    """The buffers a rank computes from its own share of the batch: those of every layer
    but the synchronised ones (whose statistics are already the global batch's)."""
    return [a for layer in model.layers if not isinstance(layer, _SyncBatchNorm)
            for a in layer.buffers.values()]


# ---------------------------------------------------------------- data
class ShardedLoader:
    """One rank's share of a loader's global batches.

    The wrapped loader (data.BatchLoader, seeded alike on every rank) draws the same
    permutation and augmentation on every rank; rank k keeps rows [k b, (k+1) b) of each
    global batch, b = batch_size / K. So every image is seen once per epoch, by one rank,
    and the order is fixed by the seed and K. ``state_dict`` is the global loader's.
    """

    def __init__(self, loader, rank, size):
        if loader.batch_size % size:
            raise DistributedError(
                f"the batch of {loader.batch_size} images cannot be split evenly over {size} "
                f"ranks; choose a --batch-size divisible by {size}")
        self.loader, self.rank, self.size = loader, rank, size
        self.shard = loader.batch_size // size

    def __len__(self):
        return len(self.loader)

    def __getattr__(self, name):              # y, batch_size, epoch, batch, ...: the loader's
        return getattr(self.loader, name)

    def rows(self, n):
        """The slice of a global batch of n rows that this rank keeps (a short last batch
        is split as evenly as it goes)."""
        per_rank = -(-n // self.size)
        return slice(min(n, self.rank * per_rank), min(n, (self.rank + 1) * per_rank))

    def __iter__(self):
        for xb, yb in self.loader:
            keep = self.rows(len(yb))
            yield xb[keep], yb[keep]

    def state_dict(self):
        return self.loader.state_dict()

    def load_state_dict(self, state):
        self.loader.load_state_dict(state)


# ---------------------------------------------------------------- batch norm across ranks
class _SyncBatchNorm:
    """BatchNorm whose per-channel sums are totalled across ranks (see the module
    docstring). The maths is BatchNorm's (nn/batchnorm.py); only ``batch_total`` and
    ``moment_shift`` differ, so both backends run it."""

    ranks = None

    def batch_total(self, sums):
        return self.ranks.sum_in_place(np.array(sums, np.float64))

    def moment_shift(self, x2):
        # the same on every rank (the first row is not): the running mean
        return self.buffers["running_mean"].astype(np.float64)

    @classmethod
    def from_layer(cls, layer, ranks):
        new = cls.__new__(cls)
        new.__dict__.update(layer.__dict__)
        new.ranks = ranks
        return new


class SyncBatchNorm2D(_SyncBatchNorm, BatchNorm2D):
    """BatchNorm2D with statistics over the global batch of every rank."""


class SyncBatchNorm1D(_SyncBatchNorm, BatchNorm1D):
    """BatchNorm1D with statistics over the global batch of every rank."""


def sync_batchnorm(model, ranks):
    """Replace each BatchNorm2D/1D of a Sequential by its synchronised twin (same params,
    buffers, name; in place). Returns the number replaced."""
    n = 0
    for i, layer in enumerate(model.layers):
        twin = {BatchNorm2D: SyncBatchNorm2D, BatchNorm1D: SyncBatchNorm1D}.get(type(layer))
        if twin is not None:
            model.layers[i] = twin.from_layer(layer, ranks)
            n += 1
    return n            # the steps plan stays valid: BatchNorm never fuses
