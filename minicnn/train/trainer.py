"""The training loop: epochs of mini-batches, validation, early stopping, checkpoints.

One step:  lr = base_lr * schedule(step)
           logits = model(x, training=True);  loss, dlogits = loss_fn(logits, y)
           model.backward(dlogits);  optimizer.step();  lookahead.update()
One epoch: all steps of the loader, then evaluation on the validation split,
           a line of history, and an atomic checkpoint in ``run_dir`` (and one every
           ``checkpoint_every`` steps: the loader's position is part of it).
Divergence: a non-finite or exploded loss, a non-finite gradient (checked before the
           update), an exploded weight or a non-finite validation loss (checked before
           every save) raise TrainingDiverged naming the epoch, step, layer and learning
           rates; the last checkpoint written is never a diverged one.

On several processes (``ranks``, minicnn/distributed.py): each rank trains on its
share of every batch, the gradients are averaged with one Allreduce before the
optimizer step, and only rank 0 shows progress, evaluates and writes checkpoints.

The checkpoint holds everything a resumed run needs to continue exactly as an
uninterrupted one would: model weights and buffers, optimizer state, lookahead
weights, the loader's RNG state, the step (schedule position), the history and
the best weights so far. With ``trace_every=K`` a TraceRecorder (traces.py) also
records per-layer activation and gradient statistics every K steps; they are saved
beside the checkpoint (traces.json, trace_histograms.npz) and continue on resume.
"""
import json
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from ..fast.process import tune_process
from ..checkpoint import flatten, load_checkpoint, require_keys, save_checkpoint, unflatten
from .evaluate import evaluate
from ..nn.loss import softmax_cross_entropy
from .progress import ProgressBar
from ..distributed import GradientAverager, ShardedLoader, per_rank_buffers
from .traces import TraceRecorder


class TrainingDiverged(FloatingPointError):
    """The loss, a gradient or a weight went non-finite or exploded (Trainer.check_step,
    check_weights). The last checkpoint written is the last sound one."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, folder unwritable, ...); the file
    written before it, if any, is whole."""


# what a checkpoint's meta must hold to resume
META_KEYS = ("epoch", "step", "train_seconds", "loader", "history", "best_acc", "bad_epochs")
MAX_LOSS = 1e3        # cross-entropy of a uniform guess over C classes is ln C (2.3 for 10)
MAX_WEIGHT = 1e8      # no weight of a trained net comes near: one this large has escaped


class Trainer:
    """Args:
        model: a Sequential.
        optimizer: an minicnn.optim optimizer over the model's parameters.
        loader: a data.BatchLoader of training batches.
        schedule: callable step -> lr factor (None: constant 1).
        total_steps: steps in the whole run (for the lookahead schedule).
        val: (x_val, y_val) or None.
        label_smoothing: for the training loss.
        lookahead: optim.Lookahead or None; with ``lookahead_decay`` (step -> decay),
            its decay follows a schedule (airbench: 0.95**5 * (step/total)**3).
        patience: stop when validation accuracy has not improved for this many
            epochs (None: never); the best weights are restored at the end.
        epoch_hooks: callables hook(trainer, epoch) run at the start of each epoch.
        run_dir: where checkpoint.npz goes (None: no checkpoints).
        trace_every: record traces every K steps (traces.py); None or 0: no tracing.
        trace_histogram_steps: steps with activation and gradient histograms
            (None: the first and the last step of the run).
        checkpoint_every: also save every this many steps inside an epoch (None: at
            epoch ends only); a run resumed from any of them ends bit-identical.
        max_loss, max_weight: a training loss above max_loss, or a weight whose
            magnitude exceeds max_weight, stops training as diverged (as non-finite
            values do) before anything is saved.
        ranks: a distributed.Ranks for data-parallel training over MPI (None: this
            process alone). The loader is then the global one (same seed on every rank);
            the trainer keeps this rank's share of each batch.
    """

    def __init__(self, model, optimizer, loader, schedule=None, total_steps=None, val=None,
                 label_smoothing=0.0, lookahead=None, lookahead_decay=None, patience=None,
                 epoch_hooks=(), run_dir=None, config=None, progress=True, eval_batch=500,
                 trace_every=None, trace_histogram_steps=None, ranks=None,
                 checkpoint_every=None, max_loss=MAX_LOSS, max_weight=MAX_WEIGHT):
        tune_process()       # the process-wide settings training wants (fast/process.py)
        self.ranks, self.averager = ranks, None
        self.is_main = ranks is None or ranks.is_main
        if ranks is not None:
            loader = ShardedLoader(loader, ranks.rank, ranks.size)
            self.averager = GradientAverager(ranks, list(model.named_parameters()),
                                             per_rank_buffers(model))
            if not self.is_main:                 # rank 0 alone shows, traces and writes
                progress, run_dir, trace_every = False, None, None
        self.model, self.optimizer, self.loader = model, optimizer, loader
        self.schedule = schedule or (lambda step: 1.0)
        self.total_steps = total_steps
        self.val, self.label_smoothing = val, label_smoothing
        self.lookahead, self.lookahead_decay = lookahead, lookahead_decay
        self.patience, self.epoch_hooks = patience, list(epoch_hooks)
        self.run_dir = Path(run_dir) if run_dir else None
        self.config, self.progress, self.eval_batch = config or {}, progress, eval_batch
        self.step, self.epoch, self.train_seconds = 0, 0, 0.0
        self.checkpoint_every, self.max_loss, self.max_weight = checkpoint_every, max_loss, max_weight
        self.epoch_sums = dict(images=0, loss=0.0, accuracy=0.0, seconds=0.0)
        self.saved_step, self.wall_before, self.started = None, 0.0, time.perf_counter()
        self.history = {k: [] for k in ("epoch", "train_loss", "train_acc", "val_loss",
                                        "val_acc", "lr", "seconds", "images_per_second")}
        self.best_acc, self.best_state, self.bad_epochs = -1.0, None, 0
        self.tracer = None
        if trace_every:
            if trace_histogram_steps is None:
                trace_histogram_steps = (0, total_steps - 1) if total_steps else (0,)
            self.tracer = TraceRecorder(model, trace_every, trace_histogram_steps)

    # -- one epoch -----------------------------------------------------------------
    def train_epoch(self, epochs):
        """Train the rest of the current epoch (all of it, or what follows the step a
        checkpoint was saved at). Returns (mean loss, mean accuracy, seconds, images/s)
        over the whole epoch."""
        for hook in self.epoch_hooks:            # functions of the epoch: safe to run again
            hook(self, self.epoch)
        if self.loader.batch == 0:                               # a fresh epoch
            self.epoch_sums = dict(images=0, loss=0.0, accuracy=0.0, seconds=0.0)
        sums, ranks = self.epoch_sums, 1 if self.ranks is None else self.ranks.size
        bar = ProgressBar(self.loader.images_per_epoch, desc=f"epoch {self.epoch + 1}/{epochs}",
                          disable=not self.progress, initial=sums["images"])
        steps_in_epoch = len(self.loader)
        for xb, yb in self.loader:
            started = time.perf_counter()
            self.optimizer.set_lr_factor(self.schedule(self.step))
            with self.tracer.record(self.step) if self.tracer is not None else nullcontext():
                logits = self.model.forward(xb, training=True)
                loss, dlogits = softmax_cross_entropy(logits, yb, self.label_smoothing)
                acc = float((logits.argmax(axis=1) == yb).mean())
                self.model.backward(dlogits)
                if self.averager is not None:          # one Allreduce: gradients, loss, acc
                    loss, acc = self.averager.average(loss, acc)
                self.check_step(loss, bar)
                self.optimizer.step()
            self.step += 1
            if self.lookahead is not None:
                if self.lookahead_decay is not None:
                    self.lookahead.decay = float(self.lookahead_decay(self.step))
                self.lookahead.update()
            seconds = time.perf_counter() - started
            images = len(yb) * ranks
            sums["images"] += images
            sums["loss"] += float(loss) * images
            sums["accuracy"] += acc * images
            sums["seconds"] += seconds
            self.train_seconds += seconds
            bar.update(images, loss=loss, acc=acc)
            if (self.run_dir and self.checkpoint_every and self.step % self.checkpoint_every == 0
                    and self.loader.batch != 0):              # epoch ends save in fit()
                self.save()
        bar.close()
        n = max(sums["images"], 1)
        return (sums["loss"] / n, sums["accuracy"] / n, sums["seconds"],
                sums["images"] / max(sums["seconds"], 1e-9))

    # -- divergence ------------------------------------------------------------------------
    def check_step(self, loss, bar=None):
        """Stop (TrainingDiverged) on a non-finite or exploded loss, or a non-finite
        gradient, before the optimizer applies it."""
        problem = None
        if not np.isfinite(loss) or loss > self.max_loss:
            problem = f"training loss {loss:.4g}" + ("" if not np.isfinite(loss) else
                                                    f" (above {self.max_loss:g})")
        else:
            for name, _, grad in self.model.named_parameters():
                if not np.isfinite(grad.sum(dtype=np.float64)):
                    problem = f"non-finite gradient of {name} ({self.layer_of(name)})"
                    break
        if problem:
            if bar is not None:
                bar.close()
            raise self.diverged(problem)

    def check_weights(self, val_loss=None):
        """Before anything is saved: every weight finite and below MAX_WEIGHT, the
        validation loss (if any) finite. Raises TrainingDiverged."""
        if val_loss is not None and not np.isfinite(val_loss):
            raise self.diverged(f"validation loss {val_loss}")
        for name, array in self.model.named_arrays():
            largest = float(np.abs(array).max(initial=0.0))
            if not np.isfinite(largest) or largest > self.max_weight:
                raise self.diverged(f"{name} ({self.layer_of(name)}) holds "
                                    f"{'non-finite values' if not np.isfinite(largest) else f'|w| = {largest:.3g} > {self.max_weight:g}'}")

    def layer_of(self, name):
        index = int(name.split(".")[0])
        return f"layer {index}, {self.model.layers[index]!r}"

    def diverged(self, problem):
        where = ""
        if self.run_dir and (self.run_dir / "checkpoint.npz").exists():
            where = (f" The last good checkpoint, {self.run_dir / 'checkpoint.npz'} (step "
                     f"{self.saved_step}), is untouched: resume it with a lower learning rate.")
        return TrainingDiverged(
            f"training diverged at epoch {self.epoch + 1}, step {self.step}: {problem}; "
            f"learning rates {[float(f'{lr:.4g}') for lr in self.optimizer.lrs]}.{where}")

    def finish_lookahead(self):
        """End of training: take the slow weights (airbench's final decay=1 update)."""
        if self.lookahead is not None:
            self.lookahead.copy_to()                 # fast <- slow

    # -- the run ------------------------------------------------------------------------
    def fit(self, epochs, log=print):
        while self.epoch < epochs:
            loss, acc, seconds, rate = self.train_epoch(epochs)
            self.epoch += 1
            h = self.history
            h["epoch"].append(self.epoch)
            h["train_loss"].append(loss)
            h["train_acc"].append(acc)
            h["lr"].append(self.optimizer.lrs[0])
            h["seconds"].append(seconds)
            h["images_per_second"].append(rate)
            line = f"epoch {self.epoch}/{epochs}: train loss {loss:.4f} acc {acc:.4f}"
            if self.ranks is not None:
                self.ranks.check_in_sync([a for _, a in self.model.named_arrays()])
            if self.is_main and self.val is not None and len(self.val[1]):
                r = evaluate(self.model, *self.val, batch_size=self.eval_batch)
                self.check_weights(r["loss"])
                h["val_loss"].append(r["loss"])
                h["val_acc"].append(r["accuracy"])
                line += f" | val loss {r['loss']:.4f} acc {r['accuracy']:.4f}"
                self.track_best(r["accuracy"])
            if self.is_main:
                log(line + f" | {seconds:.0f}s, {rate:.0f} img/s")
            if self.run_dir:
                self.save()
            stop = self.patience is not None and self.bad_epochs >= self.patience
            if self.ranks is not None:
                stop = self.ranks.broadcast(stop)            # rank 0 evaluated: it decides
            if stop:
                if self.is_main:
                    log(f"early stopping: no val accuracy gain for {self.patience} epochs")
                break
        self.finish_lookahead()
        if self.best_state is not None and self.patience is not None:
            self.model.load_state_dict(self.best_state)
        return self.history

    def track_best(self, acc):
        if acc > self.best_acc:
            self.best_acc, self.bad_epochs = acc, 0
            if self.patience is not None:
                self.best_state = self.model.state_dict()
        else:
            self.bad_epochs += 1

    # -- checkpoints ----------------------------------------------------------------------
    def save(self, path=None):
        """The checkpoint at ``path``, and the traces beside it (written first: on resume,
        traces recorded after the checkpoint's step are dropped). Only a sound state is
        saved (``check_weights``): the previous checkpoint stays the last good one."""
        path = Path(path or self.run_dir / "checkpoint.npz")
        self.check_weights()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if self.tracer is not None:
                self.tracer.save(path.parent)
            save_checkpoint(path, *self.state())
        except OSError as e:
            kept = (f"the previous checkpoint (step {self.saved_step}) is untouched"
                    if self.saved_step is not None and path.exists() else "no checkpoint was kept")
            raise CheckpointWriteError(
                f"could not write the checkpoint {path} at step {self.step}: "
                f"{e.strerror or e}; {kept}. Free space or fix the folder's permissions, "
                f"then resume.") from e
        self.saved_step = self.step
        return path

    def state(self):
        """(arrays, meta): everything a checkpoint holds, as flat named arrays and JSON."""
        nested = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}
        if self.lookahead is not None:
            nested["lookahead"] = self.lookahead.state_dict()
        if self.best_state is not None:
            nested["best"] = self.best_state
        meta = {"epoch": self.epoch, "step": self.step, "train_seconds": self.train_seconds,
                "wall_seconds": self.wall_seconds, "epoch_sums": self.epoch_sums,
                "loader": self.loader.state_dict(), "history": self.history,
                "best_acc": self.best_acc, "bad_epochs": self.bad_epochs, "config": self.config}
        return flatten(nested), meta

    def load(self, path):
        arrays, meta = load_checkpoint(path)
        self.restore(arrays, meta, path)
        if self.tracer is not None:
            self.tracer.restore(Path(path).parent, before_step=self.step)
        return meta

    def restore(self, arrays, meta, path="the checkpoint"):
        """Take the ``state()`` of a trainer (from a file or from rank 0). Everything is
        checked before anything changes: a missing part is named, with what was found."""
        nested = unflatten(arrays)
        needed = ["model", "optimizer"] + (["lookahead"] if self.lookahead is not None else [])
        require_keys(nested, needed, path, "arrays")
        require_keys(meta, META_KEYS, path, "meta entries")
        self.model.load_state_dict(nested["model"])
        self.optimizer.load_state_dict(nested["optimizer"])
        if self.lookahead is not None:
            self.lookahead.load_state_dict(nested["lookahead"])
        self.best_state = nested.get("best")
        self.loader.load_state_dict(meta["loader"])
        self.epoch, self.step = meta["epoch"], meta["step"]
        self.train_seconds, self.history = meta["train_seconds"], meta["history"]
        self.best_acc, self.bad_epochs = meta["best_acc"], meta["bad_epochs"]
        self.wall_before = meta.get("wall_seconds", self.train_seconds)   # older checkpoints
        self.epoch_sums = meta.get("epoch_sums") or dict(images=0, loss=0.0, accuracy=0.0,
                                                         seconds=0.0)
        self.saved_step = self.step

    @property
    def wall_seconds(self):
        """Wall time of the run so far, over every process that trained it: the saved
        total plus this process's time since ``started`` (its construction, or set it)."""
        return self.wall_before + time.perf_counter() - self.started

    def share_state(self):
        """Distributed: every rank takes rank 0's state (weights, buffers, optimizer,
        lookahead, loader position, step): after a fresh start and after a resume."""
        if self.ranks is None:
            return
        arrays, meta = self.ranks.broadcast(self.state() if self.is_main else None)
        problem = None
        if not self.is_main:
            try:
                self.restore(arrays, meta, "rank 0's state")
            except ValueError as e:
                problem = f"cannot take rank 0's state: {e}"
        self.ranks.agree(problem)


def save_json(obj, path):
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    tmp.replace(path)
