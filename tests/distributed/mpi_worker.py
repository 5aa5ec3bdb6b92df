"""Run under mpiexec by test_distributed.py: one scenario per call.

    mpiexec -n K python mpi_worker.py SCENARIO OUT_DIR [options]

train     a small net trained with the Trainer on K ranks; every rank checks after every
          optimizer step that all ranks hold bit-identical weights; rank 0 writes
          OUT_DIR/weights.npz and OUT_DIR/steps_checked.json.  --sync-bn / --no-bn;
          --muon: Muon for the conv filters and SGD for the rest (the fast94 preset's split)
raise     like train, but rank 1 raises at its third step
shards    the images each rank sees, two epochs, written by rank 0 to OUT_DIR/shards.json
versions  rank 1 claims another NumPy version; rank 0 writes the error to OUT_DIR/error.txt
"""
import json
import sys
from pathlib import Path

import numpy as np

from minicnn import distributed
from minicnn.data import BatchLoader
from minicnn.nn import BatchNorm2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential
from minicnn.optim import SGD, Chain, Muon
from minicnn.train import Trainer

N_IMAGES, GLOBAL_BATCH, EPOCHS = 64, 16, 2


def small_net(bn):
    rng = np.random.default_rng(0)
    layers = [Conv2D(3, 8, 3, padding=1, rng=rng)]
    layers += [BatchNorm2D(8)] if bn else []
    layers += [ReLU(), MaxPool2D(2), Conv2D(8, 8, 3, padding=1, rng=rng)]
    layers += [BatchNorm2D(8)] if bn else []
    layers += [ReLU(), Flatten(), Dense(8 * 4 * 4, 10, rng=rng)]
    return Sequential(layers)


def data():
    rng = np.random.default_rng(1)
    return (rng.standard_normal((N_IMAGES, 8, 8, 3)).astype(np.float32),
            rng.integers(0, 10, N_IMAGES))


def make_optimizer(model, muon):
    params = list(model.named_parameters())
    if not muon:
        return SGD(params, lr=0.05, momentum=0.9)
    filters = [p for p in params if p[1].ndim == 4]
    rest = [p for p in params if p[1].ndim != 4]
    return Chain([SGD(rest, lr=0.05, momentum=0.9), Muon(filters, lr=0.05, momentum=0.6)])


def train(ranks, out, bn, sync_bn, fail_at=None, muon=False):
    model = small_net(bn)
    if sync_bn:
        distributed.sync_batchnorm(model, ranks)
    x, y = data()
    loader = BatchLoader(x, y, GLOBAL_BATCH, seed=3)
    optimizer = make_optimizer(model, muon)
    trainer = Trainer(model, optimizer, loader, progress=False, ranks=ranks)
    trainer.share_state()
    step, checked = optimizer.step, []

    def step_then_compare():
        if fail_at is not None and ranks.rank == 1 and len(checked) == fail_at:
            raise RuntimeError("injected failure on rank 1")
        step()
        ranks.check_in_sync([a for _, a in model.named_arrays()])   # raises if they differ
        checked.append(1)
    optimizer.step = step_then_compare
    trainer.fit(EPOCHS, log=lambda line: None)
    if ranks.is_main:
        np.savez(out / "weights.npz", **model.state_dict())
        (out / "steps_checked.json").write_text(json.dumps(len(checked)))


def shards(ranks, out, seed):
    x = np.arange(40, dtype=np.float32).reshape(40, 1, 1, 1)     # image i holds the value i
    loader = distributed.ShardedLoader(BatchLoader(x, np.zeros(40, int), 8, seed=seed),
                                       ranks.rank, ranks.size)
    seen = [[int(v) for xb, _ in loader for v in xb.ravel()] for _ in range(2)]
    every = ranks.comm.gather(seen, root=0)
    if ranks.is_main:
        (out / "shards.json").write_text(json.dumps(every))


def main():
    scenario, out = sys.argv[1], Path(sys.argv[2])
    ranks = distributed.Ranks()
    if scenario == "versions":
        mine = distributed.library_versions()
        if ranks.rank == 1:
            mine["numpy"] = "0.0"
        try:
            ranks.check_same_versions(mine)
        except distributed.DistributedError as e:
            if ranks.is_main:
                (out / "error.txt").write_text(str(e))
            sys.exit(3)
        return
    ranks.abort_on_error()
    ranks.limit_threads()
    if scenario in ("train", "raise"):
        train(ranks, out, bn="--no-bn" not in sys.argv, sync_bn="--sync-bn" in sys.argv,
              fail_at=2 if scenario == "raise" else None, muon="--muon" in sys.argv)
    elif scenario == "shards":
        shards(ranks, out, seed=int(sys.argv[3]))
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")


if __name__ == "__main__":
    main()
