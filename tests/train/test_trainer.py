"""The training loop: learning on real data, exact resume, divergence, the example script."""
import json

import numpy as np
import pytest

from minicnn.checkpoint import load_checkpoint
from minicnn.data import BatchLoader, CropFlip, channel_stats, load_cifar10, standardize
from minicnn.train import Trainer, TrainingDiverged, evaluate, predict_logits
from minicnn.zoo import (airbench, airbench_lookahead, airbench_optimizer, airbench_schedule,
                         freeze_whiten_bias)

from conftest import real_data_dir

DATA = real_data_dir()
needs_data = pytest.mark.skipif(DATA is None, reason="CIFAR-10 not found in ../shared/data or $MINICNN_DATA")


def make_trainer(x, y, run_dir=None, seed=0, epochs=2, batch=32, widths=(4, 8, 8), lr_scale=1.0,
                 val=None):
    model = airbench(widths, rng=seed, whiten_images=x[:200])
    loader = BatchLoader(x, y, batch, seed=seed, augment=CropFlip(len(x), pad=2, seed=seed),
                         drop_last=True)
    total = epochs * len(loader)
    opt = airbench_optimizer(model, batch, lr_scale=lr_scale)
    la, decay = airbench_lookahead(model, total)
    return Trainer(model, opt, loader, airbench_schedule(total), total, val=val,
                   label_smoothing=0.2, lookahead=la, lookahead_decay=decay,
                   epoch_hooks=[freeze_whiten_bias(1)], run_dir=run_dir, progress=False)


def fake_data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 32, 32, 3)).astype(np.float32), rng.integers(0, 10, n)


def test_resume_gives_the_same_result_as_an_uninterrupted_run(tmp_path):
    x, y = fake_data()
    straight = make_trainer(x, y, tmp_path / "a")
    straight.fit(2, log=lambda s: None)

    first = make_trainer(x, y, tmp_path / "b")
    first.fit(1, log=lambda s: None)                       # "crash" after epoch 1
    resumed = make_trainer(x, y, tmp_path / "b", seed=0)
    meta = resumed.load(tmp_path / "b" / "checkpoint.npz")
    assert meta["epoch"] == 1 and resumed.step == len(resumed.loader)
    resumed.fit(2, log=lambda s: None)

    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert straight.history["train_loss"] == resumed.history["train_loss"]
    # and the whitening bias really was frozen after epoch 1 (hook) but trained before
    assert resumed.optimizer.param_groups[1]["lr_scale"] == 0.0


def test_checkpoint_round_trip_holds_everything(tmp_path):
    x, y = fake_data(64)
    t = make_trainer(x, y, tmp_path)
    t.fit(1, log=lambda s: None)
    arrays, meta = load_checkpoint(tmp_path / "checkpoint.npz")
    assert {"epoch", "step", "loader", "history", "train_seconds"} <= set(meta)
    assert any(k.startswith("model/") for k in arrays)
    assert any(k.startswith("optimizer/") and "momentum" in k for k in arrays)
    assert any(k.startswith("lookahead/") for k in arrays)
    t2 = make_trainer(x, y, tmp_path, seed=1)             # different init...
    t2.load(tmp_path / "checkpoint.npz")                   # ...replaced by the checkpoint
    state = t2.model.state_dict()
    assert state.keys() == t.model.state_dict().keys()
    for k, v in state.items():
        np.testing.assert_array_equal(v, arrays["model/" + k], err_msg=k)
    assert t2.epoch == 1 and t2.history == t.history


def test_divergence_is_reported_and_last_checkpoint_survives(tmp_path):
    x, y = fake_data(64)
    t = make_trainer(x, y, tmp_path, epochs=3)
    t.fit(1, log=lambda s: None)
    before = (tmp_path / "checkpoint.npz").read_bytes()
    for name, p, _ in t.model.named_parameters():
        if name.endswith("W"):
            p[...] = np.nan                                # poison the weights
    with pytest.raises(TrainingDiverged, match="training diverged at epoch 2, step 2: training loss nan"):
        t.fit(3, log=lambda s: None)
    assert (tmp_path / "checkpoint.npz").read_bytes() == before


@needs_data
def test_learns_real_cifar10_clearly_better_than_chance():
    data = load_cifar10(DATA, download=False)
    x, y = data["x_train"][:2560], data["y_train"][:2560]
    mean, std = channel_stats(x)
    x = standardize(x, mean, std)
    x_test = standardize(data["x_test"][:1000], mean, std)
    t = make_trainer(x, y, epochs=4, batch=64, widths=(16, 32, 32))
    t.fit(4, log=lambda s: None)
    acc = evaluate(t.model, x_test, data["y_test"][:1000])["accuracy"]
    assert acc > 0.30, f"test accuracy {acc:.3f} after 4 short epochs (chance is 0.10)"
    tta = (predict_logits(t.model, x_test, tta=2).argmax(1) == data["y_test"][:1000]).mean()
    assert tta > 0.30


@needs_data
def test_example_script_end_to_end(tmp_path, monkeypatch):
    import importlib.util, sys
    from conftest import ROOT
    spec = importlib.util.spec_from_file_location("train_cifar10", ROOT / "examples" / "train_cifar10.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "run"
    args = ["--data-dir", str(DATA), "--limit-train", "1200", "--val-size", "200", "--epochs", "1",
            "--widths", "4", "8", "8", "--batch-size", "100", "--tta", "0", "--out", str(out),
            "--no-progress"]
    metrics = script.main(args)
    saved = json.loads((out / "metrics.json").read_text())
    for key in ("test_accuracy", "test_accuracy_exact_subset", "val_accuracy", "precision_macro",
                "recall_macro", "f1_macro", "confusion_matrix", "train_seconds", "epochs"):
        assert key in saved, key
    assert saved["epochs"] == 1 and np.array(saved["confusion_matrix"]).sum() == 10000
    assert saved["test_accuracy"] == metrics["test_accuracy"]
    for name in ("history.png", "confusion_matrix.png", "predictions.png", "checkpoint.npz",
                 "config.json", "history.json", "model.npz"):
        assert (out / name).stat().st_size > 0, name
    with pytest.raises(SystemExit, match="already holds a run"):
        script.main(args)                                  # never overwrites a run silently
    metrics2 = script.main(["--resume", str(out), "--no-progress"])   # nothing left to train
    assert metrics2["epochs"] == 1


@needs_data
def test_example_script_switches_off_each_trick(tmp_path):
    import importlib.util
    from conftest import ROOT
    spec = importlib.util.spec_from_file_location("train_cifar10", ROOT / "examples" / "train_cifar10.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "ablate"
    script.main(["--data-dir", str(DATA), "--limit-train", "600", "--val-size", "100",
                 "--epochs", "1", "--widths", "4", "8", "8", "--batch-size", "100", "--tta", "0",
                 "--no-whiten", "--no-dirac", "--no-lookahead", "--flip", "random",
                 "--label-smoothing", "0", "--translate", "0", "--bn-lr-scale", "1",
                 "--out", str(out), "--no-progress"])
    config = json.loads((out / "config.json").read_text())
    assert (config["whiten"], config["dirac"], config["lookahead"]) == (False, False, False)
    assert (config["flip"], config["label_smoothing"], config["translate"]) == ("random", 0, 0)
    assert config["bn_lr_scale"] == 1
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 1
