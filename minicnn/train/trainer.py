"""The training loop: epochs of mini-batches, validation, early stopping, checkpoints.

One step:  lr = base_lr * schedule(step)
           logits = model(x, training=True);  loss, dlogits = loss_fn(logits, y)
           model.backward(dlogits);  optimizer.step();  lookahead.update()
One epoch: all steps of the loader, then evaluation on the validation split,
           a line of history, and an atomic checkpoint in ``run_dir``.

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
from ..checkpoint import flatten, load_checkpoint, save_checkpoint, unflatten
from .evaluate import evaluate
from ..nn.loss import softmax_cross_entropy
from .progress import ProgressBar
from .traces import TraceRecorder


class TrainingDiverged(FloatingPointError):
    pass


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
    """

    def __init__(self, model, optimizer, loader, schedule=None, total_steps=None, val=None,
                 label_smoothing=0.0, lookahead=None, lookahead_decay=None, patience=None,
                 epoch_hooks=(), run_dir=None, config=None, progress=True, eval_batch=500,
                 trace_every=None, trace_histogram_steps=None):
        tune_process()       # the process-wide settings training wants (fast/process.py)
        self.model, self.optimizer, self.loader = model, optimizer, loader
        self.schedule = schedule or (lambda step: 1.0)
        self.total_steps = total_steps
        self.val, self.label_smoothing = val, label_smoothing
        self.lookahead, self.lookahead_decay = lookahead, lookahead_decay
        self.patience, self.epoch_hooks = patience, list(epoch_hooks)
        self.run_dir = Path(run_dir) if run_dir else None
        self.config, self.progress, self.eval_batch = config or {}, progress, eval_batch
        self.step, self.epoch, self.train_seconds = 0, 0, 0.0
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
        for hook in self.epoch_hooks:
            hook(self, self.epoch)
        n_seen, start = 0, time.perf_counter()
        bar = ProgressBar(len(self.loader.y), desc=f"epoch {self.epoch + 1}/{epochs}",
                          disable=not self.progress)
        for xb, yb in self.loader:
            self.optimizer.set_lr_factor(self.schedule(self.step))
            with self.tracer.record(self.step) if self.tracer is not None else nullcontext():
                logits = self.model.forward(xb, training=True)
                loss, dlogits = softmax_cross_entropy(logits, yb, self.label_smoothing)
                if not np.isfinite(loss):
                    bar.close()
                    where = f" ({self.run_dir / 'checkpoint.npz'} holds the last good epoch)" if self.run_dir else ""
                    raise TrainingDiverged(
                        f"non-finite training loss {loss} at epoch {self.epoch + 1}, step {self.step}, "
                        f"learning rates {self.optimizer.lrs}{where}; try a lower --lr")
                self.model.backward(dlogits)
                self.optimizer.step()
            self.step += 1
            if self.lookahead is not None:
                if self.lookahead_decay is not None:
                    self.lookahead.decay = float(self.lookahead_decay(self.step))
                self.lookahead.update()
            acc = float((logits.argmax(axis=1) == yb).mean())
            n_seen += len(yb)
            bar.update(len(yb), loss=loss, acc=acc)
        bar.close()
        seconds = time.perf_counter() - start
        return bar.loss, bar.acc, seconds, n_seen / max(seconds, 1e-9)

    def finish_lookahead(self):
        """End of training: take the slow weights (airbench's final decay=1 update)."""
        if self.lookahead is not None:
            self.lookahead.copy_to()                 # fast <- slow

    # -- the run ------------------------------------------------------------------------
    def fit(self, epochs, log=print):
        while self.epoch < epochs:
            loss, acc, seconds, rate = self.train_epoch(epochs)
            self.train_seconds += seconds
            self.epoch += 1
            h = self.history
            h["epoch"].append(self.epoch)
            h["train_loss"].append(loss)
            h["train_acc"].append(acc)
            h["lr"].append(self.optimizer.lrs[0])
            h["seconds"].append(seconds)
            h["images_per_second"].append(rate)
            line = f"epoch {self.epoch}/{epochs}: train loss {loss:.4f} acc {acc:.4f}"
            if self.val is not None and len(self.val[1]):
                r = evaluate(self.model, *self.val, batch_size=self.eval_batch)
                h["val_loss"].append(r["loss"])
                h["val_acc"].append(r["accuracy"])
                line += f" | val loss {r['loss']:.4f} acc {r['accuracy']:.4f}"
                self.track_best(r["accuracy"])
            log(line + f" | {seconds:.0f}s, {rate:.0f} img/s")
            if self.run_dir:
                self.save()
            if self.patience is not None and self.bad_epochs >= self.patience:
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
        traces recorded after the checkpoint's step are dropped)."""
        path = Path(path or self.run_dir / "checkpoint.npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.tracer is not None:
            self.tracer.save(path.parent)
        nested = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}
        if self.lookahead is not None:
            nested["lookahead"] = self.lookahead.state_dict()
        if self.best_state is not None:
            nested["best"] = self.best_state
        meta = {"epoch": self.epoch, "step": self.step, "train_seconds": self.train_seconds,
                "loader": self.loader.state_dict(), "history": self.history,
                "best_acc": self.best_acc, "bad_epochs": self.bad_epochs, "config": self.config}
        save_checkpoint(path, flatten(nested), meta)
        return path

    def load(self, path):
        arrays, meta = load_checkpoint(path)
        nested = unflatten(arrays)
        for key in ("model", "optimizer"):
            if key not in nested:
                raise ValueError(f"{path}: not a training checkpoint (no '{key}' arrays)")
        self.model.load_state_dict(nested["model"])
        self.optimizer.load_state_dict(nested["optimizer"])
        if self.lookahead is not None:
            self.lookahead.load_state_dict(nested["lookahead"])
        self.best_state = nested.get("best")
        self.loader.load_state_dict(meta["loader"])
        self.epoch, self.step = meta["epoch"], meta["step"]
        self.train_seconds, self.history = meta["train_seconds"], meta["history"]
        self.best_acc, self.bad_epochs = meta["best_acc"], meta["bad_epochs"]
        if self.tracer is not None:
            self.tracer.restore(Path(path).parent, before_step=self.step)
        return meta


def save_json(obj, path):
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    tmp.replace(path)
