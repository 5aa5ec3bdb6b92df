"""A small training run that kills itself (SIGKILL) at a chosen point, for
test_fault_injection.py. Resumes from RUN_DIR/checkpoint.npz when one is there.

    python fault_worker.py RUN_DIR POINT

POINT: "none" (train to the end, then write RUN_DIR/final.npz), or where to die:
    step:N           inside the optimizer update of global step N (before it is applied)
    epoch_end:E      after epoch E's last step, before its checkpoint is written
    epoch_start:E    after epoch E-1's checkpoint, before epoch E's first step
    write:K:STAGE    inside this process's K-th checkpoint write, at STAGE (see
                     minicnn.checkpoint.WRITE_STAGES)
Before dying it writes RUN_DIR/killed.json: the point and the global step it died at.
"""
import json
import os
import signal
import sys
from pathlib import Path

import numpy as np

import minicnn.checkpoint as checkpoint
from minicnn.data import BatchLoader, CropFlip
from minicnn.train import Trainer
from minicnn.zoo import airbench, airbench_lookahead, airbench_optimizer, airbench_schedule

EPOCHS, BATCH, IMAGES, CHECKPOINT_EVERY = 4, 32, 96, 2       # 3 steps an epoch, 12 in all


def make_trainer(run_dir):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((IMAGES, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, IMAGES)
    model = airbench((4, 8, 8), rng=0, whiten_images=x[:64])
    loader = BatchLoader(x, y, BATCH, seed=0, augment=CropFlip(IMAGES, pad=2, seed=0),
                         drop_last=True)
    total = EPOCHS * len(loader)
    lookahead, decay = airbench_lookahead(model, total)
    return Trainer(model, airbench_optimizer(model, BATCH), loader, airbench_schedule(total),
                   total, label_smoothing=0.2, lookahead=lookahead, lookahead_decay=decay,
                   run_dir=run_dir, progress=False, checkpoint_every=CHECKPOINT_EVERY)


def die(run_dir, point, step):
    (run_dir / "killed.json").write_text(json.dumps({"point": point, "step": step}))
    os.kill(os.getpid(), signal.SIGKILL)


def main():
    run_dir, point = Path(sys.argv[1]), sys.argv[2]
    trainer = make_trainer(run_dir)
    if (run_dir / "checkpoint.npz").exists():
        trainer.load(run_dir / "checkpoint.npz")
    kind, _, where = point.partition(":")
    if kind == "step":
        update = trainer.optimizer.step

        def step_or_die():
            if trainer.step == int(where):
                die(run_dir, point, trainer.step)
            update()
        trainer.optimizer.step = step_or_die
    elif kind in ("epoch_end", "epoch_start"):
        epoch = int(where)
        save = trainer.save

        def save_or_die(path=None):
            if kind == "epoch_end" and trainer.loader.batch == 0 and trainer.epoch == epoch:
                die(run_dir, point, trainer.step)            # epoch E done, not yet saved
            return save(path)
        trainer.save = save_or_die
        trainer.epoch_hooks.append(
            lambda t, e: die(run_dir, point, t.step) if kind == "epoch_start" and e == epoch
            else None)
    elif kind == "write":
        count, stage = where.split(":")
        writes = []

        def hook(at_stage, path):
            if at_stage == "opened":
                writes.append(path)
            if len(writes) == int(count) and at_stage == stage:
                die(run_dir, point, trainer.step)
        checkpoint.WRITE_HOOKS.append(hook)
    trainer.fit(EPOCHS, log=lambda line: None)
    np.savez(run_dir / "final.npz", **trainer.model.state_dict())


if __name__ == "__main__":
    main()
