"""Pictures of the traces (minicnn/train/trace_plots.py), and the example's --trace-every."""
import importlib.util
import json

import numpy as np
import pytest
from matplotlib.image import imread

import minicnn.train
from minicnn.data import BatchLoader
from minicnn.nn import Conv2D, Dense, Flatten, GELU, MaxPool2D, ReLU, Sequential
from minicnn.optim import SGD
from minicnn.train import Trainer, load_traces
from minicnn.train import trace_plots
from minicnn.train.trace_plots import plot_gradient_norms, plot_histograms, plot_update_ratios

from conftest import ROOT, real_data_dir

DATA = real_data_dir()
needs_data = pytest.mark.skipif(DATA is None, reason="CIFAR-10 not found in ../shared/data or $MINICNN_DATA")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run of a small CNN (ReLU and GELU) traced every 2 steps, histograms at 0 and 5."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 16, 16, 3)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    model = Sequential([Conv2D(3, 8, 3, rng=0), ReLU(), MaxPool2D(2), Conv2D(8, 8, 3, rng=1),
                        GELU(), MaxPool2D(2), Flatten(), Dense(4 * 4 * 8, 10, rng=2)])
    opt = SGD(model.named_parameters(), lr=0.05, momentum=0.9)
    loader = BatchLoader(x, y, 16, seed=0, drop_last=True)
    out = tmp_path_factory.mktemp("traced_run")
    Trainer(model, opt, loader, total_steps=8, run_dir=out, progress=False, trace_every=2,
            trace_histogram_steps=(0, 5)).fit(2, log=lambda s: None)
    return out


def assert_picture(path):
    """A PNG that decodes and shows something: many colours, not one flat fill."""
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 200, image.shape
    rgb = image[:, :, :3].reshape(-1, 3)
    assert rgb.std(axis=0).max() > 0.05
    assert len(np.unique((rgb * 255).astype(np.uint8), axis=0)) > 20


def test_gradient_norms_picture(run_dir, tmp_path):
    traces = load_traces(run_dir)
    assert plot_gradient_norms(traces, tmp_path / "g.png") == tmp_path / "g.png"
    assert_picture(tmp_path / "g.png")
    plot_gradient_norms(run_dir, tmp_path / "from_dir.png")        # a run directory works too
    assert_picture(tmp_path / "from_dir.png")


def test_update_ratios_picture(run_dir, tmp_path):
    plot_update_ratios(load_traces(run_dir), tmp_path / "u.png")
    assert_picture(tmp_path / "u.png")


@pytest.mark.parametrize("kind", ["activation", "gradient"])
@pytest.mark.parametrize("step", [None, 0])
def test_histogram_pictures(run_dir, tmp_path, kind, step):
    plot_histograms(run_dir, tmp_path / "h.png", kind=kind, step=step)
    assert_picture(tmp_path / "h.png")


def test_histograms_from_traces_or_their_histograms(run_dir, tmp_path):
    traces = load_traces(run_dir)
    plot_histograms(traces, tmp_path / "a.png", layers=[0, 3, 7])
    plot_histograms(traces["histograms"], tmp_path / "b.png", kind="gradient")
    for name in ("a.png", "b.png"):
        assert_picture(tmp_path / name)


def test_histograms_refuse_a_step_without_histograms_naming_the_steps(run_dir, tmp_path):
    with pytest.raises(ValueError, match=r"no histograms at step 2; they were taken at steps \[0, 5\]"):
        plot_histograms(run_dir, tmp_path / "h.png", step=2)
    with pytest.raises(ValueError, match="kind must be 'activation' or 'gradient', got 'weights'"):
        plot_histograms(run_dir, tmp_path / "h.png", kind="weights")
    with pytest.raises(ValueError, match=r"layers must be indices in 0\.\.7, got \[8\]"):
        plot_histograms(run_dir, tmp_path / "h.png", layers=[8])
    assert not (tmp_path / "h.png").exists()


def test_pictures_are_exported_from_minicnn_train():
    assert minicnn.train.plot_gradient_norms is trace_plots.plot_gradient_norms
    assert minicnn.train.plot_update_ratios is trace_plots.plot_update_ratios
    assert minicnn.train.plot_histograms is trace_plots.plot_histograms
    assert minicnn.train.load_traces is load_traces
    with pytest.raises(AttributeError, match="no attribute 'plot_nothing'"):
        minicnn.train.plot_nothing


def load_example():
    spec = importlib.util.spec_from_file_location("train_cifar10", ROOT / "examples" / "train_cifar10.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


@pytest.mark.parametrize("value", ["0", "-5", "2.5", "ten"])
def test_example_refuses_a_bad_trace_interval(value, capsys):
    with pytest.raises(SystemExit):
        load_example().parse_args(["--trace-every", value])
    assert f"--trace-every: expected a whole number at least 1, got '{value}'" in capsys.readouterr().err


def test_example_trace_interval_defaults():
    script = load_example()
    assert script.parse_args([]).trace_every is None
    assert script.parse_args(["--trace-every", "7"]).trace_every == 7
    from minicnn.train.traces import DEFAULT_TRACE_EVERY
    assert script.parse_args(["--trace-every"]).trace_every == DEFAULT_TRACE_EVERY


@needs_data
def test_example_traces_end_to_end(tmp_path):
    script = load_example()
    out = tmp_path / "run"
    script.main(["--data-dir", str(DATA), "--limit-train", "600", "--val-size", "100",
                 "--epochs", "1", "--widths", "4", "8", "8", "--batch-size", "100", "--tta", "0",
                 "--out", str(out), "--no-progress", "--trace-every", "2"])
    assert json.loads((out / "config.json").read_text())["trace_every"] == 2
    traces = load_traces(out)
    assert list(traces["steps"]) == [0, 2, 4]                  # 500 images / 100 = 5 steps
    assert list(traces["histograms"]["steps"]) == [0, 4]       # the first and the last
    for name in ("gradient_norms.png", "update_ratios.png", "activation_histograms_step0.png",
                 "gradient_histograms_step0.png", "activation_histograms_step4.png",
                 "gradient_histograms_step4.png"):
        assert_picture(out / name)
