"""Training-time traces (minicnn/train/traces.py): values against a hand computation,
no effect on the weights, files that round-trip, exact resume, refused bad files."""
import json
import math
import shutil

import numpy as np
import pytest
from scipy.special import erf

from minicnn.data import BatchLoader, CropFlip
from minicnn.nn import GELU, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential
from minicnn.nn.loss import softmax_cross_entropy
from minicnn.optim import SGD
from minicnn.train import Trainer, TraceRecorder, load_traces
from minicnn.train.traces import (HISTOGRAMS_FILE, TRACES_FILE, MissingTraceFile, TraceFileError,
                                  array_stats, histogram)
from minicnn.zoo import airbench, airbench_lookahead, airbench_optimizer, airbench_schedule

QUIET = dict(log=lambda s: None)


def fake_data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 32, 32, 3)).astype(np.float32), rng.integers(0, 10, n)


def airbench_trainer(x, y, run_dir=None, trace_every=None, epochs=2, batch=32, **trace_options):
    """A tiny airbench94 (GELU, BatchNorm, lookahead) trained as the example trains it."""
    model = airbench((4, 8, 8), rng=0, whiten_images=x[:200])
    loader = BatchLoader(x, y, batch, seed=0, augment=CropFlip(len(x), pad=2, seed=0),
                         drop_last=True)
    total = epochs * len(loader)
    lookahead, decay = airbench_lookahead(model, total)
    return Trainer(model, airbench_optimizer(model, batch), loader, airbench_schedule(total), total,
                   label_smoothing=0.2, lookahead=lookahead, lookahead_decay=decay,
                   run_dir=run_dir, progress=False, trace_every=trace_every, **trace_options)


def fused_trainer(x, y, trace_every=None):
    """Conv2D + ReLU, which Sequential runs as one fused step unless a forward hook is set."""
    model = Sequential([Conv2D(3, 4, 3, rng=0), ReLU(), MaxPool2D(4), Flatten(),
                        Dense(8 * 8 * 4, 10, rng=1)])
    assert (0, 1) in model.steps                            # the fused pair exists
    opt = SGD(model.named_parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    loader = BatchLoader(x, y, 32, seed=0, drop_last=True)
    return Trainer(model, opt, loader, progress=False, trace_every=trace_every)


# -- values ------------------------------------------------------------------------------------
def gelu(h):
    return 0.5 * h * (1 + erf(h / math.sqrt(2)))


def gelu_slope(h):
    return 0.5 * (1 + erf(h / math.sqrt(2))) + h * np.exp(-0.5 * h * h) / math.sqrt(2 * math.pi)


def test_recorded_values_match_a_hand_computation():
    rng = np.random.default_rng(3)
    model = Sequential([Dense(4, 6, rng=0), GELU(), Dense(6, 5, rng=1), ReLU(), Dense(5, 3, rng=2)])
    x = (3 * rng.standard_normal((16, 4))).astype(np.float32)   # wide enough for x < -2
    y = rng.integers(0, 3, 16)
    W = {name: p.astype(np.float64) for name, p, _ in model.named_parameters()}
    lr = 0.1
    opt = SGD(model.named_parameters(), lr=lr)
    recorder = TraceRecorder(model, every=1, histogram_steps=(0,), bins=8)
    with recorder.record(0):
        logits = model.forward(x, training=True)
        _, dlogits = softmax_cross_entropy(logits, y)
        model.backward(dlogits)
        opt.step()
    assert model.forward_hooks == [] and model.backward_hooks == []

    # the same step by hand, in float64: y = x W + b, softmax-CE, the chain rule
    h1 = x @ W["0.W"] + W["0.b"]
    a1 = gelu(h1)
    h2 = a1 @ W["2.W"] + W["2.b"]
    a2 = np.maximum(h2, 0)
    z = a2 @ W["4.W"] + W["4.b"]
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dz = (p - np.eye(3)[y]) / len(y)
    da2 = dz @ W["4.W"].T
    dh2 = da2 * (h2 > 0)
    da1 = dh2 @ W["2.W"].T
    dh1 = da1 * gelu_slope(h1)
    outputs, output_grads = [h1, a1, h2, a2, z], [dh1, da1, dh2, da2, dz]
    saturated = [np.mean(h1 == 0), np.mean(h1 < -2), np.mean(h2 == 0), np.mean(a2 == 0),
                 np.mean(z == 0)]
    assert 0 < saturated[1] < 1 and 0 < saturated[3] < 1   # both rules are exercised
    grads = {"0.W": x.T @ dh1, "0.b": dh1.sum(0), "2.W": a1.T @ dh2, "2.b": dh2.sum(0),
             "4.W": a2.T @ dz, "4.b": dz.sum(0)}

    t = recorder.traces()
    assert list(t["steps"]) == [0]
    for i, layer in enumerate(t["layers"]):
        np.testing.assert_allclose(layer["mean"][0], outputs[i].mean(), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(layer["std"][0], outputs[i].std(), rtol=1e-4)
        np.testing.assert_allclose(layer["grad_mean"][0], output_grads[i].mean(), rtol=1e-4, atol=1e-8)
        np.testing.assert_allclose(layer["grad_std"][0], output_grads[i].std(), rtol=1e-4)
        assert layer["saturated"][0] == pytest.approx(saturated[i]), i
    assert [layer["rule"] for layer in t["layers"][:4]] == ["y == 0", "x < -2", "y == 0", "y == 0"]
    assert [layer["kind"] for layer in t["layers"]] == ["other", "activation", "other",
                                                        "activation", "other"]
    for param in t["params"]:
        g, w = grads[param["name"]], W[param["name"]]
        np.testing.assert_allclose(param["grad_norm"][0], np.linalg.norm(g), rtol=1e-4)
        np.testing.assert_allclose(param["grad_std"][0], g.std(), rtol=1e-4)
        if param["name"].endswith(".b"):                    # biases start at 0: std(b) = 0
            assert np.isnan(param["update_ratio"][0])
        else:                                               # plain SGD: update = -lr * g
            np.testing.assert_allclose(param["update_ratio"][0],
                                       np.log10(lr * g.std() / w.std()), atol=1e-4)

    hist = t["histograms"]["activation"]
    edges = hist["edges"][0, 1]
    np.testing.assert_allclose(edges[[0, -1]], a1.mean() + np.array([-4, 4]) * a1.std(), rtol=1e-4)
    counts, _ = np.histogram(a1, bins=edges)
    np.testing.assert_array_equal(hist["counts"][0, 1], counts)
    assert hist["counts"][0, 1].sum() + hist["below"][0, 1] + hist["above"][0, 1] == a1.size
    np.testing.assert_array_equal(t["histograms"]["gradient"]["counts"][0, 4],
                                  np.histogram(dz, bins=t["histograms"]["gradient"]["edges"][0, 4])[0])


def test_statistics_stay_exact_on_large_offset_arrays_of_many_chunks():
    a = (1000 + 0.01 * np.random.default_rng(0).standard_normal(300_000)).astype(np.float32)
    mean, std, frac = array_stats(a, lambda c: c > 1000)
    ref = a.astype(np.float64)
    assert mean == pytest.approx(ref.mean(), rel=1e-9)
    assert std == pytest.approx(ref.std(), rel=1e-3)       # |mean| / std = 1e5
    assert frac == pytest.approx(np.mean(ref > 1000))
    edges, counts, below, above = histogram(a, mean, std, bins=10)
    assert counts.sum() + below + above == a.size and below > 0 and above > 0


def test_untraced_steps_attach_nothing_and_record_nothing():
    model = Sequential([Dense(4, 3, rng=0), ReLU()])
    recorder = TraceRecorder(model, every=3, histogram_steps=(4,))
    assert [s for s in range(10) if recorder.is_trace_step(s)] == [0, 3, 4, 6, 9]
    with recorder.record(1):
        assert model.forward_hooks == [] and model.backward_hooks == []
    with pytest.raises(FloatingPointError):                 # a diverged step: no record, no hooks
        with recorder.record(3):
            assert len(model.forward_hooks) == 1
            model.forward(np.ones((2, 4), np.float32), training=True)
            raise FloatingPointError("loss is nan")
    assert model.forward_hooks == [] and model.backward_hooks == [] and recorder.steps == []


@pytest.mark.parametrize("every", [0, -2, 1.5, True, "10"])
def test_a_bad_interval_is_refused_quoting_it(every):
    with pytest.raises(ValueError, match=f"every must be a positive int.*{every!r}"):
        TraceRecorder(Sequential([Dense(2, 2, rng=0)]), every=every)


# -- numerics ----------------------------------------------------------------------------------------
def test_tracing_never_changes_the_weights_airbench(tmp_path):
    x, y = fake_data()
    plain = airbench_trainer(x, y)
    plain.fit(2, **QUIET)
    traced = airbench_trainer(x, y, tmp_path, trace_every=1)
    traced.fit(2, **QUIET)
    assert len(traced.tracer.steps) == traced.step           # every step was traced
    a, b = plain.model.state_dict(), traced.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert plain.history["train_loss"] == traced.history["train_loss"]


def test_tracing_never_changes_the_weights_of_fused_layers():
    x, y = fake_data(64)
    plain, traced = fused_trainer(x, y), fused_trainer(x, y, trace_every=1)
    plain.fit(2, **QUIET)
    traced.fit(2, **QUIET)
    assert traced.tracer.steps == [0, 1, 2, 3]
    a, b = plain.model.state_dict(), traced.model.state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    relu = traced.tracer.traces()["layers"][1]
    assert relu["rule"] == "y == 0" and np.all((relu["saturated"] > 0) & (relu["saturated"] < 1))


# -- files -----------------------------------------------------------------------------------------------
def assert_same_traces(a, b):
    assert a["architecture"] == b["architecture"] and a["every"] == b["every"]
    np.testing.assert_array_equal(a["steps"], b["steps"])
    for group in ("layers", "params"):
        assert len(a[group]) == len(b[group])
        for ea, eb in zip(a[group], b[group]):
            assert ea.keys() == eb.keys()
            for key in ea:
                if isinstance(ea[key], np.ndarray):
                    np.testing.assert_array_equal(ea[key], eb[key], err_msg=f"{group} {key}")
                else:
                    assert ea[key] == eb[key]
    np.testing.assert_array_equal(a["histograms"]["steps"], b["histograms"]["steps"])
    for kind in ("activation", "gradient"):
        for key, value in a["histograms"][kind].items():
            np.testing.assert_array_equal(value, b["histograms"][kind][key], err_msg=f"{kind} {key}")


def test_files_round_trip(tmp_path):
    x, y = fake_data()
    t = airbench_trainer(x, y, tmp_path, trace_every=2)
    t.fit(2, **QUIET)
    assert t.tracer.steps == [0, 2, 4, 5]                   # every 2, and the last step (5)
    loaded = load_traces(tmp_path, t.model)
    assert_same_traces(loaded, t.tracer.traces())
    doc = json.loads((tmp_path / TRACES_FILE).read_text())
    assert (doc["format"], doc["version"], doc["every"]) == ("minicnn-traces", 1, 2)
    assert doc["architecture"] == [repr(layer) for layer in t.model]
    assert doc["histograms"]["steps"] == [0, 5]
    with np.load(tmp_path / HISTOGRAMS_FILE, allow_pickle=False) as f:
        assert list(f["steps"]) == [0, 5]
        assert f["activation_counts"].shape == (2, len(t.model), doc["histograms"]["bins"])
    layers = {e["index"]: e for e in loaded["layers"]}
    assert np.all(np.isfinite(layers[1]["std"])) and layers[1]["rule"] == "x < -2"
    shift = next(p for p in loaded["params"] if p["name"] == "4.beta")   # starts at 0
    assert np.isnan(shift["update_ratio"][0]) and np.isfinite(shift["update_ratio"][1])


def test_resume_continues_the_traces_exactly(tmp_path):
    x, y = fake_data()
    straight = airbench_trainer(x, y, tmp_path / "a", trace_every=2)
    straight.fit(2, **QUIET)

    run = tmp_path / "b"
    first = airbench_trainer(x, y, run, trace_every=2)
    first.fit(1, **QUIET)
    shutil.copy(run / "checkpoint.npz", tmp_path / "epoch1.npz")
    first.fit(2, **QUIET)                                  # traces now reach past epoch 1...
    shutil.copy(tmp_path / "epoch1.npz", run / "checkpoint.npz")   # ...the checkpoint does not
    assert load_traces(run)["steps"][-1] >= first.loader.__len__()

    resumed = airbench_trainer(x, y, run, trace_every=2)
    resumed.load(run / "checkpoint.npz")
    assert resumed.tracer.steps == [0, 2]                  # the steps before the checkpoint's (3)
    assert [h["step"] for h in resumed.tracer.histograms] == [0]
    resumed.fit(2, **QUIET)
    assert_same_traces(load_traces(run, resumed.model), load_traces(tmp_path / "a"))


def test_resume_with_another_interval_is_refused(tmp_path):
    x, y = fake_data()
    airbench_trainer(x, y, tmp_path, trace_every=2).fit(1, **QUIET)
    other = airbench_trainer(x, y, tmp_path, trace_every=3)
    with pytest.raises(TraceFileError, match="traced every 2 steps, but this run traces every 3"):
        other.load(tmp_path / "checkpoint.npz")


def test_a_trace_file_of_another_architecture_is_refused_naming_both(tmp_path):
    model = Sequential([Dense(4, 3, rng=0), ReLU(), Dense(3, 2, rng=0)])
    TraceRecorder(model, every=1).save(tmp_path)
    other = Sequential([Dense(4, 3, rng=0), GELU(), Dense(3, 2, rng=0)])
    with pytest.raises(TraceFileError) as err:
        load_traces(tmp_path, other)
    message = str(err.value)
    assert str(tmp_path / TRACES_FILE) in message
    assert "layer 1 is ReLU() there, GELU(exact) here" in message
    assert "traces: [Dense(4->3, bias=True), ReLU(), Dense(3->2, bias=True)]" in message
    assert "model:  [Dense(4->3, bias=True), GELU(exact), Dense(3->2, bias=True)]" in message
    longer = Sequential([Dense(4, 3, rng=0), ReLU(), Dense(3, 2, rng=0), ReLU()])
    with pytest.raises(TraceFileError, match="3 layers vs 4; layer 3 is absent there, ReLU\\(\\) here"):
        load_traces(tmp_path, longer)
    load_traces(tmp_path, model)                           # the right model is accepted


@pytest.fixture
def saved_run(tmp_path):
    model = Sequential([Dense(4, 3, rng=0), ReLU(), Dense(3, 2, rng=0)])
    recorder = TraceRecorder(model, every=1, histogram_steps=(0, 1))
    opt = SGD(model.named_parameters(), lr=0.1)
    x, y = np.ones((4, 4), np.float32), np.array([0, 1, 0, 1])
    for step in range(3):
        with recorder.record(step):
            model.backward(softmax_cross_entropy(model.forward(x, training=True), y)[1])
            opt.step()
    recorder.save(tmp_path)
    return tmp_path


def test_missing_trace_file_is_reported_as_such(tmp_path):
    with pytest.raises(MissingTraceFile, match="no traces file.*without tracing") as err:
        load_traces(tmp_path)
    assert isinstance(err.value, FileNotFoundError) and isinstance(err.value, ValueError)
    assert str(tmp_path / TRACES_FILE) in str(err.value)


def test_half_written_json_is_refused_naming_the_file(saved_run):
    path = saved_run / TRACES_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(TraceFileError, match=r"traces\.json: not valid JSON \(half-written"):
        load_traces(saved_run)


def test_half_written_histograms_are_refused_naming_the_file(saved_run):
    path = saved_run / HISTOGRAMS_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(TraceFileError, match=r"trace_histograms\.npz: not a readable \.npz"):
        load_traces(saved_run)


def test_missing_histograms_are_refused_naming_the_steps(saved_run):
    (saved_run / HISTOGRAMS_FILE).unlink()
    with pytest.raises(TraceFileError, match=r"trace_histograms\.npz: missing.*steps \[0, 1\]"):
        load_traces(saved_run)


def test_histograms_lacking_a_listed_step_are_refused(saved_run):
    path = saved_run / HISTOGRAMS_FILE
    with np.load(path) as f:
        arrays = {k: f[k][:1] for k in f.files}             # keep step 0 only
    np.savez(path, **arrays)
    with pytest.raises(TraceFileError, match=r"lacks the histograms of steps \[1\]"):
        load_traces(saved_run)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(format="something-else"), "not a minicnn traces file"),
    (lambda d: d.update(version=99), "format version 99"),
    (lambda d: d.pop("steps"), "'steps' should be a list"),
    (lambda d: d["layers"][1]["std"].pop(), "layer 1 'std' should hold 3 values"),
    (lambda d: d["params"][0].pop("update_ratio"), "param 0 'update_ratio' should hold 3"),
    (lambda d: d["layers"].pop(), "2 layer entries for an architecture of 3 layers"),
])
def test_inconsistent_json_is_refused_saying_what_is_wrong(saved_run, change, message):
    path = saved_run / TRACES_FILE
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(TraceFileError, match=message) as err:
        load_traces(saved_run)
    assert str(path) in str(err.value)


def test_resume_accepts_histograms_missing_only_past_the_checkpoint(saved_run):
    """A crash between the .npz and the .json write of a resumed run's save."""
    path = saved_run / HISTOGRAMS_FILE
    with np.load(path) as f:
        arrays = {k: f[k][:1] for k in f.files}             # step 1's histograms are gone
    np.savez(path, **arrays)
    model = Sequential([Dense(4, 3, rng=0), ReLU(), Dense(3, 2, rng=0)])
    recorder = TraceRecorder(model, every=1, histogram_steps=(0, 1))
    recorder.restore(saved_run, before_step=1)             # the checkpoint is at step 1
    assert recorder.steps == [0] and [h["step"] for h in recorder.histograms] == [0]
    with pytest.raises(TraceFileError, match=r"lacks the histograms of steps \[1\]"):
        recorder.restore(saved_run, before_step=2)         # step 1 is needed there
