"""Train and evaluate a CIFAR-10 classifier with minicnn.

    python examples/train_cifar10.py                       # the default preset
    python examples/train_cifar10.py --preset fast94       # airbench94_muon recipe (README: time)
    python examples/train_cifar10.py --resume runs/NAME    # continue an interrupted run
    python examples/train_cifar10.py --trace-every 50      # also record what backprop does inside
    mpiexec -n 2 python examples/train_cifar10.py --preset fast94 --distributed
                                                           # data-parallel over MPI (docs/distributed.md)

Data: --data-dir, else $MINICNN_DATA, else ~/.cache/minicnn (downloaded if absent).
Writes into --out RUN_DIR: config.json, checkpoint.npz (every --checkpoint-every steps,
default 50, and at each epoch's end, atomically), model.npz (the final weights),
history.json, metrics.json, history.png, confusion_matrix.png, predictions.png; with
--trace-every also traces.json, trace_histograms.npz (minicnn/train/traces.py),
gradient_norms.png, update_ratios.png and {activation,gradient}_histograms_step<S>.png.
Reads top to bottom: config, data, model, optimizer, training loop, evaluation.
"""
import time

START = time.perf_counter()        # wall time covers everything, imports included

import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

import minicnn
from minicnn import distributed
from minicnn.data import (BatchLoader, CropFlip, DatasetError, channel_stats, load_cifar10, standardize,
                          train_val_split)
from minicnn.train import predict_logits
from minicnn.train.metrics import classification_report, format_report
from minicnn.optim import Adam, SGD, param_groups_no_decay
from minicnn.optim.schedules import warmup_cosine
from minicnn.train.plots import plot_confusion_matrix, plot_history, plot_predictions
from minicnn.train.trace_plots import plot_gradient_norms, plot_histograms, plot_update_ratios
from minicnn.train.traces import DEFAULT_TRACE_EVERY, TRACES_FILE, load_traces
from minicnn.zoo import (airbench, airbench_lookahead, airbench_lr, airbench_optimizer,
                         airbench_schedule, freeze_whiten_bias, simple)
from minicnn.train import CheckpointWriteError, Trainer, TrainingDiverged, save_json

# -- config -----------------------------------------------------------------------------------
# "default": a narrow airbench net with the airbench recipe, 8 epochs, 5k images held out.
# "fast90":  the default net on all 50k images for 10 epochs (aims at 90%).
# "fast94":  airbench94_muon: the airbench94 net (widths 64/256/256, all 50k images) with
#            Muon for the conv filters and SGD for the rest (batch 2000, 8 epochs, no
#            lookahead; lr is Muon's, see zoo/recipe.py). The faster of the two 94% recipes.
# "fast94_sgd": airbench94 itself (same net, SGD + lookahead, batch 1024, 10 epochs).
# "simple":  the plain VGG-style net with Adam, for comparison.
# README.md has each preset's measured accuracy and time.
# The airbench tricks (whiten, dirac, bn_lr_scale, lookahead, label_smoothing, flip, tta)
# can each be switched off from the command line, for ablations.
RECIPE = dict(whiten=True, dirac=True, bn_lr_scale=64.0)
PRESETS = {
    "default": dict(model="airbench", widths=[32, 64, 128], epochs=8, batch_size=512,
                    optimizer="sgd", lr=None, label_smoothing=0.2, translate=2,
                    flip="alternating", tta=2, lookahead=True, val_size=5000, **RECIPE),
    "fast90": dict(model="airbench", widths=[32, 64, 128], epochs=10, batch_size=512,
                   optimizer="sgd", lr=None, label_smoothing=0.2, translate=2,
                   flip="alternating", tta=2, lookahead=True, val_size=0, **RECIPE),
    "fast94": dict(model="airbench", widths=[64, 256, 256], epochs=8, batch_size=2000,
                   optimizer="muon", lr=0.24, label_smoothing=0.2, translate=2,
                   flip="alternating", tta=2, lookahead=False, val_size=0, **RECIPE),
    "fast94_sgd": dict(model="airbench", widths=[64, 256, 256], epochs=10, batch_size=1024,
                       optimizer="sgd", lr=None, label_smoothing=0.2, translate=2,
                       flip="alternating", tta=2, lookahead=True, val_size=0, **RECIPE),
    "simple": dict(model="simple", widths=None, epochs=10, batch_size=128, optimizer="adam",
                   lr=1e-3, label_smoothing=0.0, translate=4, flip="random", tta=1,
                   lookahead=False, val_size=5000, **RECIPE),
}


def whole_number(low, high=None):
    """An argparse type: an int in [low, high], else one clear line naming what it got."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            limits = f"at least {low}" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"expected a whole number {limits}, got {text!r}")
        return value
    return parse


def real_number(low, high=None, low_open=True, high_open=True):
    """An argparse type: a finite float in the interval (low, high) (ends open by default)."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        ok = math.isfinite(value) and (value > low if low_open else value >= low)
        if high is not None:
            ok = ok and (value < high if high_open else value <= high)
        if not ok:
            left, right = "(" if low_open else "[", ")" if high_open else "]"
            span = f"{left}{low}, {'inf' if high is None else high}{right}"
            raise argparse.ArgumentTypeError(f"expected a finite number in {span}, got {text!r}")
        return value
    return parse


positive_int = whole_number(1)
DEFAULT_CHECKPOINT_EVERY = 50      # steps (fast94 has 25 an epoch, fast94_sgd 48, default 88)


class FlagError(Exception):
    """A flag with a value it cannot take: one line, exit status 2."""


class FlagParser(argparse.ArgumentParser):
    """argparse, or with raise_errors=True a FlagError instead of printing and exiting
    (under MPI, rank 0 then reports the problems of every rank)."""
    raise_errors = False

    def error(self, message):
        if self.raise_errors:
            raise FlagError(f"{self.prog}: error: {message}")
        super().error(message)


def parse_args(argv=None, raise_errors=False):
    p = FlagParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.raise_errors = raise_errors
    p.add_argument("--preset", choices=sorted(PRESETS), help="default: 'default'")
    p.add_argument("--model", choices=["airbench", "simple"])
    p.add_argument("--widths", type=whole_number(1), nargs=3, help="airbench block widths, e.g. 64 256 256")
    p.add_argument("--epochs", type=whole_number(1))
    p.add_argument("--batch-size", type=whole_number(1))
    p.add_argument("--lr", type=real_number(0), help="learning rate on the mean loss (default: the preset's)")
    p.add_argument("--optimizer", choices=["sgd", "adam", "muon"])
    p.add_argument("--val-size", type=whole_number(0))
    p.add_argument("--tta", type=int, choices=[0, 1, 2], help="test-time augmentation level")
    p.add_argument("--label-smoothing", type=real_number(0, 1, low_open=False))
    p.add_argument("--flip", choices=["alternating", "random", "none"])
    p.add_argument("--translate", type=whole_number(0, 16), help="random translation in pixels (reflect padding)")
    p.add_argument("--no-whiten", dest="whiten", action="store_false", default=None,
                   help="airbench: a trainable first conv instead of frozen patch whitening")
    p.add_argument("--no-dirac", dest="dirac", action="store_false", default=None,
                   help="airbench: no identity init of the 3x3 convs")
    p.add_argument("--no-lookahead", dest="lookahead", action="store_false", default=None)
    p.add_argument("--bn-lr-scale", type=real_number(0), help="airbench: lr multiplier of BatchNorm shifts (64)")
    p.add_argument("--seed", type=whole_number(0), help="default: 0")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default=None, help="run directory (default runs/<preset>-seed<seed>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run saved in RUN_DIR")
    p.add_argument("--limit-train", type=whole_number(1), default=None, help="use only the first N training images (smoke tests)")
    p.add_argument("--patience", type=whole_number(1), default=None, help="early stopping patience in epochs")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument("--trace-every", type=positive_int, nargs="?", const=DEFAULT_TRACE_EVERY,
                   metavar="K", help="record per-layer activation and gradient traces every K "
                   f"steps (K alone: {DEFAULT_TRACE_EVERY}; default: off)")
    p.add_argument("--checkpoint-every", type=positive_int, metavar="N", help="also save a "
                   f"checkpoint every N steps inside an epoch (default {DEFAULT_CHECKPOINT_EVERY}; "
                   "epoch ends always save)")
    p.add_argument("--distributed", action="store_true", help="data-parallel training over "
                   "MPI: launch with mpiexec -n K (docs/distributed.md)")
    p.add_argument("--sync-bn", action="store_true", default=None, help="with --distributed: "
                   "BatchNorm statistics over the global batch (default: each rank's own share)")
    args = p.parse_args(argv)
    check_paths(p, args)
    return args


TRAIN_IMAGES = 50_000
OPTIMIZERS = ("sgd", "adam", "muon")


def check_paths(parser, args):
    """Flags that name places, and flags that only make sense together, checked before
    any data is read: parser.error prints one line and exits with status 2."""
    if args.data_dir is not None and not Path(args.data_dir).exists():
        parser.error(f"--data-dir {args.data_dir}: no such file or folder (expected a "
                     f"CIFAR-10 batches folder, or a folder holding cifar-10-batches-bin/ or "
                     f"the official archive)")
    if args.out is not None:
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            parser.error(f"--out {args.out}: is a file; expected a run folder (new or existing)")
        parent = next((q for q in [out, *out.parents] if q.exists()), Path("."))
        if not os.access(parent, os.W_OK):
            parser.error(f"--out {args.out}: {parent} is not writable")
    if args.resume is None:
        preset = PRESETS[args.preset or "default"]
        images = args.limit_train or TRAIN_IMAGES
        val = preset["val_size"] if args.val_size is None else args.val_size
        batch = preset["batch_size"] if args.batch_size is None else args.batch_size
        if val >= images:
            source = "" if args.val_size is not None else f" (preset {args.preset or 'default'})"
            parser.error(f"--val-size {val}{source}: must leave training images; only {images} "
                         f"are used (--val-size 0 holds none out)")
        if batch > images - val:
            parser.error(f"--batch-size {batch}: larger than the {images - val} training images "
                         f"(after --limit-train and --val-size)")


# On --resume, these may change (extend a run, lower the learning rate after a divergence,
# checkpoint more often, evaluate differently, find the data elsewhere); every other setting
# is the run's own: giving it a different value is refused, not ignored.
CHANGE_ON_RESUME = ("epochs", "lr", "checkpoint_every", "patience", "tta", "data_dir")
FIXED_ON_RESUME = ("preset", "model", "widths", "batch_size", "optimizer", "val_size",
                   "label_smoothing", "flip", "translate", "whiten", "dirac", "lookahead",
                   "bn_lr_scale", "seed", "limit_train", "trace_every", "sync_bn")


def flag(key):
    return "--" + key.replace("_", "-")


def check_saved_config(config, path):
    """Every setting a resumed run reads, checked with the same rules as its flag: a config
    edited by hand or damaged ends here with one line, not in a traceback mid-run."""
    def fail(key, why):
        sys.exit(f"--resume: {path}: {key!r} {why}, got {config.get(key)!r}")
    rules = {"epochs": whole_number(1), "batch_size": whole_number(1), "seed": whole_number(0),
             "val_size": whole_number(0), "translate": whole_number(0, 16),
             "lr": real_number(0), "bn_lr_scale": real_number(0),
             "label_smoothing": real_number(0, 1, low_open=False)}
    for key, parse in rules.items():
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail(key, "must be a number")
        try:
            parse(str(value))
        except argparse.ArgumentTypeError as e:
            fail(key, str(e).split(", got")[0])
        if parse.__qualname__.startswith("whole_number") and value != int(value):
            fail(key, "must be a whole number")
    for key, allowed in (("model", ("airbench", "simple")), ("flip", ("alternating", "random",
                                                                        "none")),
                         ("tta", (0, 1, 2)), ("optimizer", OPTIMIZERS)):
        if config.get(key) not in allowed:
            fail(key, f"must be one of {list(allowed)}")
    widths = config.get("widths")
    if config["model"] == "airbench" and not (
            isinstance(widths, list) and len(widths) == 3
            and all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths)):
        fail("widths", "must be three whole numbers >= 1")
    for key in ("limit_train", "patience", "trace_every", "checkpoint_every"):
        value = config.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            fail(key, "must be null or a whole number >= 1")
    for key in ("whiten", "dirac", "lookahead"):
        if not isinstance(config.get(key), bool):
            fail(key, "must be true or false")


def resume_config(args):
    """The config of the run in --resume, with the flags that may change applied."""
    path = Path(args.resume) / "config.json"
    if not path.exists():
        sys.exit(f"--resume {args.resume}: no config.json there (expected a run directory "
                 f"written by this script)")
    try:
        saved = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        sys.exit(f"--resume {args.resume}: {path} is not valid JSON ({e}); it is written by "
                 f"this script and must not be edited by hand")
    if not isinstance(saved, dict) or "epochs" not in saved or "batch_size" not in saved:
        sys.exit(f"--resume {args.resume}: {path} is not a run's config (expected a JSON "
                 f"object with at least 'epochs' and 'batch_size')")
    config = {**RECIPE, "checkpoint_every": None, **saved}     # runs saved before these keys
    check_saved_config(config, path)
    if args.out is not None and Path(args.out).resolve() != Path(args.resume).resolve():
        raise FlagError(f"--out {args.out}: a resumed run stays in its folder ({args.resume})")
    if args.overwrite:
        raise FlagError("--overwrite: cannot be used with --resume (it continues the run)")
    for key in FIXED_ON_RESUME:
        given = getattr(args, key)
        if given is not None and given != config.get(key):
            raise FlagError(f"{flag(key)} {given}: cannot change when resuming (the run in "
                            f"{args.resume} uses {config.get(key)}); changeable on --resume: "
                            + ", ".join(flag(k) for k in CHANGE_ON_RESUME))
    changed = {k: getattr(args, k) for k in CHANGE_ON_RESUME
               if getattr(args, k) is not None and getattr(args, k) != config.get(k)}
    if changed:
        config.update(changed)
        config.setdefault("changed_on_resume", []).append(changed)
    config["progress"] = not args.no_progress
    return config, Path(args.resume)


def make_config(args):
    """(config, out): the preset with the flags over it, or the run --resume continues.
    Reads no run folder but the resumed one (main refuses an occupied --out)."""
    if args.resume:
        return resume_config(args)
    preset = args.preset or "default"
    seed = 0 if args.seed is None else args.seed
    config = dict(PRESETS[preset], preset=preset, seed=seed,
                  data_dir=args.data_dir, limit_train=args.limit_train, patience=args.patience,
                  trace_every=args.trace_every, sync_bn=bool(args.sync_bn),
                  checkpoint_every=args.checkpoint_every or DEFAULT_CHECKPOINT_EVERY)
    for key in ("model", "widths", "epochs", "batch_size", "lr", "optimizer", "val_size", "tta",
                "label_smoothing", "flip", "translate", "whiten", "dirac", "lookahead",
                "bn_lr_scale"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    if config["lr"] is None:
        config["lr"] = airbench_lr(config["batch_size"])
    config["progress"] = not args.no_progress
    return config, Path(args.out or f"runs/{preset}-seed{seed}")


def refuse_to_overwrite(args, out):
    """Stop unless --out is free: a new run never replaces a run's checkpoint silently."""
    if not args.resume and (out / "checkpoint.npz").exists() and not args.overwrite:
        sys.exit(f"{out} already holds a run (checkpoint.npz). Continue it with --resume {out}, "
                 f"choose another --out, or pass --overwrite to replace it.")


def probe_writable(out):
    """Create --out and write (then remove) a small file in it: a read-only or full place
    fails here, not at the first checkpoint."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-probe"
        probe.write_bytes(b"\0" * 4096)
        probe.unlink()
    except OSError as e:
        raise FlagError(f"--out {out}: cannot write there ({e.strerror or e})") from None


def start_ranks(argv):
    """The job's Ranks under --distributed (None otherwise). Launched by mpiexec without
    --distributed, every process would train alone and write the same --out: refused."""
    launched = distributed.launched_world_size()
    if "--distributed" not in argv:
        if launched > 1:
            if distributed.launched_rank() == 0:
                print(f"error: started by an MPI launcher as one of {launched} processes, but "
                      f"without --distributed: each would train the whole model alone and "
                      f"write the same --out. Add --distributed, or run without mpiexec.",
                      file=sys.stderr)
            sys.exit(2)
        return None
    try:
        ranks = distributed.Ranks()
    except distributed.DistributedError as e:
        sys.exit(f"error: --distributed: {e}")
    ranks.abort_on_error()            # a rank that fails stops the job instead of a hang
    if not ranks.is_main:
        sys.stdout = open(os.devnull, "w")                      # rank 0 speaks for the job
    ranks.limit_threads()             # ranks x threads <= cores of each host
    return ranks


def on_every_rank(ranks, step):
    """Run step() here; under MPI, every rank runs it and if any rank fails, rank 0 prints
    every rank's problem and all exit (status 2 for a flag, 1 for anything else)."""
    result, problem, status = None, None, 1
    try:
        result = step()
    except FlagError as e:
        problem, status = str(e), 2
    except (distributed.DistributedError, DatasetError, OSError) as e:
        problem = str(e)
    except SystemExit as e:                    # make_config's own one-line refusals
        if ranks is None or not isinstance(e.code, str):
            raise
        problem = e.code
    if ranks is None:
        if problem:
            print(problem, file=sys.stderr)
            sys.exit(status)
        return result
    try:
        ranks.agree(problem, status)
    except distributed.DistributedError as e:
        if ranks.is_main:
            print(f"error: {e}", file=sys.stderr)
        sys.exit(e.status)
    return result


def setup(argv, ranks):
    args = parse_args(argv, raise_errors=True)
    config, out = make_config(args)
    refuse_to_overwrite(args, out)
    size, trained_on = 1 if ranks is None else ranks.size, config.get("world_size", 1)
    if args.resume and trained_on != size:
        how = (f"mpiexec -n {trained_on} python examples/train_cifar10.py --distributed"
               if trained_on > 1 else "python examples/train_cifar10.py (one process)")
        raise distributed.DistributedError(
            f"--resume {args.resume}: the run was trained on {trained_on} rank(s), this job "
            f"has {size}. Each rank's BatchNorm statistics and the order in which gradients "
            f"are summed depend on the number of ranks, so this would not continue the same "
            f"run; resume it with {how} --resume {args.resume}")
    if ranks is None:
        return args, config, out
    if config["batch_size"] % ranks.size:
        raise FlagError(
            f"--batch-size {config['batch_size']} cannot be split evenly over {ranks.size} "
            f"ranks: choose a multiple of {ranks.size}")
    config["world_size"] = ranks.size
    return args, config, out


def main(argv=None):
    minicnn.tune_process()         # before any kernel runs: see minicnn/fast/process.py
    argv = sys.argv[1:] if argv is None else list(argv)
    ranks = start_ranks(argv)
    if ranks is not None:
        on_every_rank(ranks, ranks.check_same_versions)
    args, config, out = on_every_rank(ranks, lambda: setup(argv, ranks))
    is_main = ranks is None or ranks.is_main
    on_every_rank(ranks, lambda: probe_writable(out) if is_main else None)   # before the data
    print("config:", json.dumps(config))

    # -- data ---------------------------------------------------------------------------------
    data = on_every_rank(ranks, lambda: load_cifar10(config["data_dir"]))
    x_train, y_train = data["x_train"], data["y_train"]
    if config["limit_train"]:
        x_train, y_train = x_train[:config["limit_train"]], y_train[:config["limit_train"]]
    x_tr, y_tr, x_val, y_val = train_val_split(x_train, y_train, config["val_size"], seed=config["seed"])
    mean, std = channel_stats(x_tr)                                     # training split only
    config.update(mean=mean.tolist(), std=std.tolist(), class_names=data["class_names"])
    x_tr, x_val = standardize(x_tr, mean, std), standardize(x_val, mean, std)   # (N, 32, 32, 3)
    x_test = standardize(data["x_test"], mean, std)
    print(f"data: {len(y_tr)} train, {len(y_val)} val, {len(data['y_test'])} test from {data.get('source', '')}")

    # -- model ----------------------------------------------------------------------------------
    rng = np.random.default_rng(config["seed"])
    if config["model"] == "airbench":
        whiten_sample = x_tr[rng.permutation(len(x_tr))[:5000]] if config["whiten"] else None
        model = airbench(tuple(config["widths"]), rng=rng, whiten_images=whiten_sample,
                         frozen_whiten=config["whiten"], dirac=config["dirac"])
    else:
        model = simple(rng=rng)
    if ranks is not None and config.get("sync_bn"):
        distributed.sync_batchnorm(model, ranks)         # statistics over the global batch
    print(model.summary())

    # -- optimizer, schedule, loader ------------------------------------------------------------
    augment = CropFlip(len(x_tr), pad=config["translate"], mode="reflect", flip=config["flip"],
                       seed=config["seed"])
    loader = BatchLoader(x_tr, y_tr, config["batch_size"], seed=config["seed"], augment=augment,
                         drop_last=len(y_tr) > config["batch_size"])
    total_steps = config["epochs"] * len(loader)
    hooks, lookahead, la_decay = [], None, None
    if config["model"] == "airbench" and config["optimizer"] == "muon":
        # airbench94_muon: Muon (lr = --lr) for the conv filters, SGD for the rest
        minicnn.zoo.airbench_muon_head_init(model)     # --resume then loads the saved head
        optimizer = minicnn.zoo.airbench_muon_optimizer(model, config["batch_size"],
                                                        filter_lr=config["lr"])
        schedule = minicnn.zoo.airbench_muon_schedule(total_steps)
        if config["whiten"]:
            hooks.append(freeze_whiten_bias(3))
    elif config["model"] == "airbench" and config["optimizer"] == "sgd":
        optimizer = airbench_optimizer(model, config["batch_size"],
                                       lr_scale=config["lr"] / airbench_lr(config["batch_size"]),
                                       bias_scaler=config["bn_lr_scale"])
        schedule = airbench_schedule(total_steps)
        if config["whiten"]:
            hooks.append(freeze_whiten_bias(3))
    elif config["optimizer"] == "muon":
        sys.exit("--optimizer muon: needs --model airbench (its recipe gives the conv filters "
                 "to Muon and the BatchNorm shifts and the head to SGD)")
    else:
        groups = param_groups_no_decay(model.named_parameters())
        optimizer = (Adam(groups, lr=config["lr"], weight_decay=5e-4) if config["optimizer"] == "adam"
                     else SGD(groups, lr=config["lr"], momentum=0.9, nesterov=True, weight_decay=5e-4))
        schedule = warmup_cosine(total_steps, max(1, total_steps // 20))
    if config["lookahead"]:
        lookahead, la_decay = airbench_lookahead(model, total_steps)

    if is_main:
        save_json(config, out / "config.json")
    trainer = Trainer(model, optimizer, loader, schedule, total_steps,
                      val=(x_val, y_val), label_smoothing=config["label_smoothing"],
                      lookahead=lookahead, lookahead_decay=la_decay, patience=config["patience"],
                      epoch_hooks=hooks, run_dir=out, config=config, progress=config["progress"],
                      trace_every=config.get("trace_every"), ranks=ranks,
                      checkpoint_every=config.get("checkpoint_every"))
    trainer.started = START        # its wall time counts this process from its first line
    if args.resume and is_main:
        meta = trainer.load(out / "checkpoint.npz")
        print(f"resumed {out} at epoch {meta['epoch']}, step {meta['step']}")
        if trainer.epoch >= config["epochs"]:
            print(f"nothing left to train: the run finished its {config['epochs']} epochs; "
                  f"evaluating its weights again (--epochs N trains it further)")
    trainer.share_state()          # distributed: every rank starts from rank 0's state

    # -- training -------------------------------------------------------------------------------
    try:
        history = trainer.fit(config["epochs"])
    except CheckpointWriteError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except TrainingDiverged as e:
        if is_main:
            lower = f"{config['lr'] / 10:.3g}"
            print(f"error: {e}" + (f" For example: python examples/train_cifar10.py --resume "
                                   f"{out} --lr {lower}" if (out / "checkpoint.npz").exists()
                                   else f" Start again with a lower --lr (e.g. {lower})."),
                  file=sys.stderr)
        sys.exit(1)
    if not is_main:
        return None                # rank 0 evaluates and writes
    save_json(history, out / "history.json")
    model.save(out / "model.npz")

    # -- evaluation -----------------------------------------------------------------------------
    names = config["class_names"]
    eval_batch = max(500, config["batch_size"])    # training held a batch this size in memory
    test_pred = predict_logits(model, x_test, tta=config["tta"], batch_size=eval_batch).argmax(axis=1)
    report = classification_report(data["y_test"], test_pred, names)
    exact = float((test_pred[:1000] == data["y_test"][:1000]).mean())
    val_acc = None
    if len(y_val):
        val_acc = float((predict_logits(model, x_val, tta=config["tta"], batch_size=eval_batch)
                         .argmax(1) == y_val).mean())
    total_seconds = trainer.wall_seconds           # over every process that trained the run
    metrics = {"test_accuracy": report["accuracy"], "test_accuracy_exact_subset": exact,
               "val_accuracy": val_acc, "precision_macro": report["precision_macro"],
               "recall_macro": report["recall_macro"], "f1_macro": report["f1_macro"],
               "confusion_matrix": report["confusion_matrix"], "per_class": {
                   k: report[k] for k in ("precision", "recall", "f1", "support")},
               "train_seconds": trainer.train_seconds, "total_seconds": total_seconds,
               "epochs": trainer.epoch, "tta": config["tta"], "preset": config["preset"],
               "world_size": config.get("world_size", 1),
               "seed": config["seed"], "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    save_json(metrics, out / "metrics.json")
    print(format_report(report, names))
    print(f"test accuracy {report['accuracy']:.4f} (all 10,000) | {exact:.4f} (exact subset 0-999)"
          + (f" | val {val_acc:.4f}" if val_acc is not None else ""))
    print(f"train {trainer.train_seconds:.0f}s, total wall time {total_seconds:.0f}s")

    # -- plots ----------------------------------------------------------------------------------
    plot_history(history, out / "history.png")
    plot_confusion_matrix(np.array(report["confusion_matrix"]), names, out / "confusion_matrix.png")
    plot_predictions(data["x_test"][:25], data["y_test"][:25], test_pred[:25], names,
                     out / "predictions.png")
    if (out / TRACES_FILE).exists():                          # what backprop did inside
        traces = load_traces(out, model)
        plot_gradient_norms(traces, out / "gradient_norms.png")
        plot_update_ratios(traces, out / "update_ratios.png")
        for step in traces["histograms"]["steps"]:
            for kind in ("activation", "gradient"):
                plot_histograms(traces, out / f"{kind}_histograms_step{step}.png", kind, step)
    print(f"wrote {out}/: metrics.json, history.json, checkpoint.npz, model.npz, *.png")
    return metrics


if __name__ == "__main__":
    main()
