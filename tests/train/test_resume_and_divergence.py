"""Exact resume from any step (``checkpoint_every``) and divergence detection that never
overwrites the last good checkpoint. In-process; the SIGKILL tests are in
test_fault_injection.py."""
import numpy as np
import pytest

from minicnn.checkpoint import load_checkpoint
from minicnn.train import TrainingDiverged

from test_trainer import fake_data, make_trainer

QUIET = dict(log=lambda line: None)


class Interrupted(Exception):
    pass


def stop_after(trainer, steps):
    """Make the trainer's optimizer raise once it has taken ``steps`` steps."""
    step, taken = trainer.optimizer.step, []

    def counted():
        if len(taken) == steps:
            raise Interrupted
        step()
        taken.append(1)
    trainer.optimizer.step = counted


def assert_same_weights(a, b):
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)


@pytest.mark.parametrize("stop_at", [1, 4, 5, 7])       # 3 steps an epoch: mid and ends
def test_a_run_stopped_at_any_step_resumes_bit_identical(tmp_path, stop_at):
    x, y = fake_data(96)                                   # 96 / 32 = 3 steps an epoch
    straight = make_trainer(x, y, tmp_path / "a", epochs=3)
    straight.checkpoint_every = 2
    straight.fit(3, **QUIET)

    run = tmp_path / "b"
    first = make_trainer(x, y, run, epochs=3)
    first.checkpoint_every = 2
    stop_after(first, stop_at)
    with pytest.raises(Interrupted):
        first.fit(3, **QUIET)
    if stop_at < 2:                                        # no checkpoint yet: start again
        assert not (run / "checkpoint.npz").exists()
        resumed = make_trainer(x, y, run, epochs=3)
    else:
        _, meta = load_checkpoint(run / "checkpoint.npz")
        # saved every 2 steps and at epoch ends (3, 6): no more than that is lost
        assert stop_at - meta["step"] < 2 and meta["step"] <= stop_at
        resumed = make_trainer(x, y, run, epochs=3)   # same seed: the augmentation's flips
        for _, w, _ in resumed.model.named_parameters():  # other weights, replaced by the load
            w += 1.0
        resumed.load(run / "checkpoint.npz")
    resumed.checkpoint_every = 2
    resumed.fit(3, **QUIET)
    assert_same_weights(straight, resumed)
    assert resumed.history["train_loss"] == straight.history["train_loss"]
    assert resumed.history["train_acc"] == straight.history["train_acc"]


def test_a_checkpoint_missing_a_part_is_refused_naming_it(tmp_path):
    from minicnn.checkpoint import save_checkpoint
    x, y = fake_data(64)
    t = make_trainer(x, y, tmp_path)
    t.fit(1, **QUIET)
    arrays, meta = load_checkpoint(tmp_path / "checkpoint.npz")
    no_lookahead = {k: v for k, v in arrays.items() if not k.startswith("lookahead/")}
    save_checkpoint(tmp_path / "partial.npz", no_lookahead, {k: v for k, v in meta.items()
                                                              if k != "loader"})
    fresh = make_trainer(x, y, tmp_path / "other")
    with pytest.raises(ValueError, match=r"partial.npz: missing arrays \['lookahead'\]"):
        fresh.load(tmp_path / "partial.npz")
    save_checkpoint(tmp_path / "partial.npz", arrays, {k: v for k, v in meta.items()
                                                        if k != "loader"})
    with pytest.raises(ValueError, match=r"partial.npz: missing meta entries \['loader'\]"):
        fresh.load(tmp_path / "partial.npz")


def test_a_finite_but_exploded_loss_is_divergence(tmp_path):
    x, y = fake_data(64)
    t = make_trainer(x, y, tmp_path)
    t.max_loss = 1.0                       # the label-smoothed loss starts near 2.3
    with pytest.raises(TrainingDiverged, match=r"epoch 1, step 0: training loss 2\.\d+ "
                                               r"\(above 1\)"):
        t.fit(1, **QUIET)
    assert not (tmp_path / "checkpoint.npz").exists()


def test_a_non_finite_gradient_names_its_layer(tmp_path):
    x, y = fake_data(64)
    t = make_trainer(x, y, tmp_path)
    layer = next(i for i, l in enumerate(t.model.layers) if "W" in l.params and i > 0)
    backward = t.model.backward          # the model's: a fused step may not call the layer's

    def poisoned(dy, **kwargs):
        dx = backward(dy, **kwargs)
        t.model.layers[layer].grads["W"][0] = np.inf
        return dx
    t.model.backward = poisoned
    with pytest.raises(TrainingDiverged, match=rf"non-finite gradient of {layer}\.W \(layer "
                                               rf"{layer}, Conv2D"):
        t.fit(1, **QUIET)


def test_exploded_weights_are_never_saved_as_the_last_good_checkpoint(tmp_path):
    x, y = fake_data(64)
    t = make_trainer(x, y, tmp_path, epochs=3)
    t.fit(1, **QUIET)
    good = (tmp_path / "checkpoint.npz").read_bytes()
    name, weight, _ = next(item for item in t.model.named_parameters() if item[0].endswith("W"))
    weight[...] = 1e30                     # finite, absurd (BatchNorm may keep the loss sane)
    with pytest.raises(TrainingDiverged, match=r"last good checkpoint, .*checkpoint.npz "
                                               r"\(step 2\), is untouched"):
        t.fit(3, **QUIET)
    assert (tmp_path / "checkpoint.npz").read_bytes() == good


def test_a_nan_validation_loss_is_divergence(tmp_path, monkeypatch):
    import minicnn.train.trainer as trainer_module
    x, y = fake_data(64)
    t = make_trainer(x, y, tmp_path, val=(x[:16], y[:16]))
    monkeypatch.setattr(trainer_module, "evaluate",
                        lambda *a, **k: {"loss": float("nan"), "accuracy": 0.1})
    with pytest.raises(TrainingDiverged, match="validation loss nan"):
        t.fit(1, **QUIET)
    assert not (tmp_path / "checkpoint.npz").exists()


def test_a_huge_learning_rate_with_one_step_an_epoch_is_caught(tmp_path):
    x, y = fake_data(32)                                   # one step an epoch
    t = make_trainer(x, y, tmp_path, epochs=4, lr_scale=1e6)
    with pytest.raises(TrainingDiverged):
        t.fit(4, **QUIET)
    if (tmp_path / "checkpoint.npz").exists():             # whatever was saved is sound
        arrays, _ = load_checkpoint(tmp_path / "checkpoint.npz")
        for k, a in arrays.items():
            if k.startswith("model/"):
                assert np.all(np.isfinite(a)) and np.abs(a).max() <= t.max_weight, k
