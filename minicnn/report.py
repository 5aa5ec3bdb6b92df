"""A report of a trained run as one HTML page: ``minicnn-report RUN_DIR``.

    minicnn-report runs/default-seed0                  # writes runs/default-seed0/report.html
    python -m minicnn.report runs/default-seed0 --data-dir ~/data/cifar10

RUN_DIR is a run directory written by examples/train_cifar10.py. The page is one
self-contained file: the pictures are inline PNGs (``data:image/png;base64,...``), the
style sheet is inline, nothing is fetched from anywhere, so it opens offline and can be
mailed as it is. Sections (``SECTIONS``): the run's configuration; accuracy and time;
the metrics with the confusion matrix and per-class bars; the model table (shapes,
parameters, FLOPs, the code each pass runs); training curves; gradient flow and
update ratios (runs trained with traces); the first layer's filters; the feature maps
of one test image through every layer; saliency and Grad-CAM for a few test images;
the most confident mistakes on the test set.

The pictures of the model need the CIFAR-10 test images: read (never downloaded) from
--data-dir, else the run's data_dir, else $MINICNN_DATA or ~/.cache/minicnn, and
standardised with the run's channel mean and std, as at training. Without them those
sections say why, and the rest of the page is still written.

What the run directory must hold: config.json (or a checkpoint.npz, whose metadata
holds the config). A run stopped before the end (checkpoint.npz but no model.npz or
metrics.json) gets what can be computed: the weights and curves of its last epoch,
metrics measured now on the test set; the page and the command's output list what is
missing. Nothing in RUN_DIR but report.html is ever written; report.html is replaced
atomically (written beside it, then renamed over it).

Exit status: 0 when report.html was written (complete or not), 1 when RUN_DIR cannot be
used (missing, not a run of examples/train_cifar10.py, an unreadable config).
"""
import argparse
import base64
import html
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from .checkpoint import CheckpointError, load_checkpoint, read_npz, unflatten
from .data import load_cifar10, standardize
from .data.files import DatasetError, DatasetNotFoundError
from .nn.loss import softmax
from .train import pictures
from .train.evaluate import predict_logits
from .train.metrics import classification_report
from .train.plots import plot_confusion_matrix, plot_history
from .zoo import MODELS

REPORT_NAME = "report.html"
WRITER = "examples/train_cifar10.py"
SECTIONS = {                      # id -> heading, in page order
    "config": "Run configuration",
    "results": "Accuracy and time",
    "metrics": "Metrics",
    "model": "Model",
    "curves": "Training curves",
    "traces": "Gradient flow and update ratios",
    "filters": "First-layer filters",
    "feature-maps": "Feature maps",
    "saliency": "Saliency and Grad-CAM",
    "mistakes": "Worst misclassifications",
}
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck"]


class RunDirError(Exception):
    """RUN_DIR cannot be reported on; the message says what is missing or wrong."""


# -- reading the run directory -------------------------------------------------------------
def read_run(run_dir):
    """Everything the report uses from RUN_DIR, and a list of what is missing.

    Returns a dict: config, history (or None), metrics (or None), state (the model's
    arrays {"i.key": array}, or None), weights_from ("model.npz", "checkpoint.npz
    (epoch E)" or None), checkpoint_meta (or None) and missing: a list of
    "file: consequence" strings. Raises RunDirError when RUN_DIR is unusable.
    """
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise RunDirError(f"{run_dir}: no such directory (expected a run directory written "
                          f"by {WRITER})")
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: not a directory (expected a run directory written "
                          f"by {WRITER})")
    missing = []
    checkpoint_arrays, checkpoint_meta = None, None
    checkpoint_path = run_dir / "checkpoint.npz"
    if checkpoint_path.exists():
        try:
            checkpoint_arrays, checkpoint_meta = load_checkpoint(checkpoint_path)
        except CheckpointError as e:
            missing.append(f"checkpoint.npz: unreadable ({e})")

    config_path = run_dir / "config.json"
    if config_path.exists():
        try:
            config = json.loads(config_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise RunDirError(f"{config_path}: not valid JSON (truncated or from another "
                              f"program?): {e}") from None
    elif checkpoint_meta is not None and isinstance(checkpoint_meta.get("config"), dict):
        config = checkpoint_meta["config"]
        missing.append("config.json: the configuration was read from checkpoint.npz instead")
    else:
        found = sorted(p.name for p in run_dir.iterdir())
        raise RunDirError(f"{run_dir}: no config.json (nor a checkpoint.npz holding the "
                          f"config), so not a run directory written by {WRITER}; it holds "
                          f"{found if found else 'nothing'}")
    if not isinstance(config, dict) or config.get("model") not in MODELS:
        got = config.get("model") if isinstance(config, dict) else type(config).__name__
        raise RunDirError(f"{config_path}: expected the config of a run of {WRITER}, whose "
                          f"'model' is one of {sorted(MODELS)}; got model={got!r}")
    if config["model"] == "airbench" and len(config.get("widths") or ()) != 3:
        raise RunDirError(f"{config_path}: an airbench run needs 'widths' (three ints), "
                          f"got {config.get('widths')!r}")

    state, weights_from = None, None
    if (run_dir / "model.npz").exists():
        try:
            state = read_npz(run_dir / "model.npz")         # bounded, no pickle
            weights_from = "model.npz"
        except (OSError, ValueError, EOFError) as e:
            missing.append(f"model.npz: unreadable ({e})")
    if state is None and checkpoint_arrays is not None:
        state = unflatten(checkpoint_arrays).get("model")
        if state is not None:
            weights_from = f"checkpoint.npz (epoch {checkpoint_meta.get('epoch', '?')})"
            missing.append(f"model.npz: the run did not finish; the weights are those of "
                           f"{weights_from}")
    if state is None:
        missing.append("model.npz and checkpoint.npz: no weights, so no pictures of the "
                       "model (the run stopped before its first epoch ended)")

    history = _read_json(run_dir / "history.json", missing)
    if history is None and (checkpoint_meta or {}).get("history"):
        history = checkpoint_meta["history"]
        missing[-1] = "history.json: the curves were read from checkpoint.npz instead"
    metrics = _read_json(run_dir / "metrics.json", missing)
    if metrics is None:
        missing[-1] += (" (the run was not evaluated: the metrics shown are measured now on "
                        "the test set, without test-time augmentation)")
    return dict(config=config, history=history, metrics=metrics, state=state,
                weights_from=weights_from, checkpoint_meta=checkpoint_meta, missing=missing)


def _read_json(path, missing):
    """The parsed file, or None with a line appended to ``missing``."""
    if not path.exists():
        missing.append(f"{path.name}: not found")
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        missing.append(f"{path.name}: not valid JSON, maybe half-written ({e})")
        return None


def architecture(config):
    """The run's network, as examples/train_cifar10.py builds it, with fresh weights."""
    if config["model"] == "airbench":
        return MODELS["airbench"](tuple(config["widths"]))
    return MODELS[config["model"]]()


def build_model(config, state):
    """The run's network with ``state`` loaded. A state of another architecture raises
    ValueError naming the arrays that differ."""
    model = architecture(config)
    model.load_state_dict(state)
    return model


def load_test_set(config, data_dir=None):
    """(images uint8 (N, 32, 32, 3), x float32 standardised, labels (N,)) of the CIFAR-10
    test set. Never downloads. Raises LookupError saying why when it cannot."""
    for key in ("mean", "std"):
        if len(config.get(key) or ()) != 3:
            raise LookupError(f"config.json has no channel {key} (three floats), so the "
                              f"test images cannot be standardised as at training")
    where = data_dir if data_dir is not None else config.get("data_dir")
    try:
        data = load_cifar10(where, download=False)
    except (DatasetNotFoundError, DatasetError) as e:
        raise LookupError(f"{e}\n(pass --data-dir PATH to minicnn-report)") from None
    images, labels = data["x_test"], data["y_test"]
    return images, standardize(images, config["mean"], config["std"]), labels


# -- HTML pieces -----------------------------------------------------------------------------
STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 1.5em auto; padding: 0 1em;
       color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.9em; }
td, th { border: 1px solid #ddd; padding: 0.2em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.8em; }
img { max-width: 100%; height: auto; display: block; margin: 0.6em 0; }
.note { background: #fff6e0; border-left: 4px solid #e0a000; padding: 0.4em 0.8em; }
.missing { background: #fdecea; border-left: 4px solid #c0392b; padding: 0.4em 0.8em; }
nav a { margin-right: 0.8em; }
"""


def _e(value):
    return html.escape(str(value))


def note(text):
    """A one-paragraph note in a section: why something is not shown."""
    return f'<p class="note">{_e(text)}</p>'


def table(rows, head=None, numeric=()):
    """An HTML table of rows (lists of values); columns in ``numeric`` align right."""
    out = ["<table>"]
    if head:
        out.append("<tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(
            f'<td class="num">{_e(v)}</td>' if j in numeric else f"<td>{_e(v)}</td>"
            for j, v in enumerate(row)) + "</tr>")
    return "\n".join(out + ["</table>"])


class Figures:
    """Draws pictures into a private temporary folder (never RUN_DIR) and returns each
    as an ``<img>`` whose source is the PNG itself, base64-encoded in a data URI."""

    def __init__(self, folder):
        self.folder, self.count = Path(folder), 0

    def img(self, plot, *args, alt, **kwargs):
        """Run ``plot(*args, path, **kwargs)`` (a function that writes a PNG to path)."""
        self.count += 1
        path = self.folder / f"figure{self.count}.png"
        plot(*args, path, **kwargs)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        path.unlink()
        return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _percent(v):
    return "-" if v is None else f"{100 * v:.2f}%"


def _seconds(v):
    return "-" if v is None else f"{v:.1f} s"


# -- sections ----------------------------------------------------------------------------------
def section_config(run):
    rows = [(k, v if isinstance(v, str) else json.dumps(v))
            for k, v in run["config"].items() if k not in ("mean", "std", "class_names")]
    for k in ("mean", "std"):
        if k in run["config"]:
            rows.append((k, ", ".join(f"{v:.4f}" for v in run["config"][k])))
    rows.append(("weights", run["weights_from"] or "none"))
    return table(rows, head=("setting", "value"))


def section_results(run, evaluation):
    m, h = run["metrics"], run["history"] or {}
    rows = []
    if m is not None:
        rows += [("test accuracy (10,000 images)", _percent(m.get("test_accuracy"))),
                 ("test accuracy (exact subset 0-999)", _percent(m.get("test_accuracy_exact_subset"))),
                 ("validation accuracy", _percent(m.get("val_accuracy"))),
                 ("test-time augmentation level", m.get("tta", "-")),
                 ("epochs", m.get("epochs", "-")),
                 ("training time", _seconds(m.get("train_seconds"))),
                 ("total wall time (imports, data, training, evaluation)",
                  _seconds(m.get("total_seconds")))]
    elif evaluation is not None:
        rows += [("test accuracy, measured now (no test-time augmentation)",
                  _percent(evaluation["report"]["accuracy"]))]
        meta = run["checkpoint_meta"] or {}
        rows += [("epochs completed", meta.get("epoch", "-")),
                 ("training time", _seconds(meta.get("train_seconds")))]
    rate = h.get("images_per_second") or []
    if rate:
        rows.append(("training speed (mean over epochs)", f"{np.mean(rate):,.0f} images/s"))
    if not rows:
        return note("No metrics.json, and the test set could not be read: no accuracy to show.")
    return table(rows, head=("", "value"))


def section_metrics(run, evaluation, figures, class_names):
    m = run["metrics"]
    if m is not None and "per_class" in m and "confusion_matrix" in m:
        per_class, cm = m["per_class"], m["confusion_matrix"]
        macro = [m.get("precision_macro"), m.get("recall_macro"), m.get("f1_macro")]
        source = "from metrics.json (written at the end of training)"
    elif evaluation is not None:
        r = evaluation["report"]
        per_class, cm = r, r["confusion_matrix"]
        macro = [r["precision_macro"], r["recall_macro"], r["f1_macro"]]
        source = "measured now on the test set, without test-time augmentation"
    else:
        return note("No metrics.json and no test images: the per-class metrics cannot be shown.")
    rows = [(name, f"{per_class['precision'][k]:.4f}", f"{per_class['recall'][k]:.4f}",
             f"{per_class['f1'][k]:.4f}", per_class["support"][k])
            for k, name in enumerate(class_names)]
    rows.append(("macro average",) + tuple(f"{v:.4f}" if v is not None else "-" for v in macro)
                + (sum(per_class["support"]),))
    parts = [f"<p>Per-class scores, {_e(source)}. Precision: of the images predicted as the "
             f"class, the share that are; recall: of the images of the class, the share "
             f"found; F1: their harmonic mean.</p>",
             table(rows, head=("class", "precision", "recall", "F1", "support"),
                   numeric=(1, 2, 3, 4)),
             figures.img(pictures.plot_class_metrics, per_class, class_names,
                         alt="per-class precision, recall and F1"),
             figures.img(plot_confusion_matrix, np.array(cm), class_names,
                         alt="confusion matrix")]
    return "\n".join(parts)


def section_model(model, config):
    batch = int(config.get("batch_size") or 128)
    return (f"<p>One row per layer: output shape for one image, parameters, forward "
            f"MFLOPs per image (a multiply-add counts 2), and which code computes the "
            f"forward pass, dx and dW for a training batch of {batch}.</p>"
            f"<pre>{_e(model.summary(paths=True, batch_size=batch))}</pre>")


def section_curves(run, figures):
    h = run["history"]
    if not h or not h.get("train_loss"):
        return note("No training history (history.json, or the checkpoint's copy): no curves.")
    return figures.img(plot_history, h, alt="loss and accuracy per epoch")


def section_traces(run_dir, model, figures):
    """Gradient norms and update:data ratios per layer over the steps, and histograms at
    the first and last histogram step, from RUN_DIR/traces.json (and
    trace_histograms.npz) when the run recorded them (minicnn/train/traces.py)."""
    from .train import trace_plots, traces
    if not (run_dir / traces.TRACES_FILE).exists():
        return note(f"This run has no {traces.TRACES_FILE} (it was trained without traces: "
                    f"--trace-every K), so there is no gradient flow or update ratio to show.")
    try:
        recorded = traces.load_traces(run_dir, model=model)
    except (ValueError, OSError) as e:
        return note(f"{traces.TRACES_FILE} cannot be used: {e}")
    every = recorded.get("every")
    parts = [f"<p>Recorded every {_e(every)} training steps. Gradient norm ||dL/dW|| per "
             f"layer over the steps, and against depth: a profile that falls towards the "
             f"input shows vanishing gradients, one that rises exploding ones.</p>",
             figures.img(trace_plots.plot_gradient_norms, recorded,
                         alt="gradient norm per layer over steps"),
             "<p>Update:data ratio log10(std(update) / std(W)) per layer: how far one "
             "optimizer step moves the weights, relative to their spread. Around -3 "
             "(the dashed line) is a healthy rate.</p>",
             figures.img(trace_plots.plot_update_ratios, recorded,
                         alt="update to data ratio per layer over steps")]
    steps = [int(s) for s in recorded["histograms"]["steps"]]
    if len(recorded["histograms"]["activation"].get("counts", ())) == 0:
        steps = []
    if not steps:
        parts.append(note(f"No activation or gradient histograms were recorded "
                          f"({traces.HISTOGRAMS_FILE} is missing or holds no step)."))
    for step in sorted({steps[0], steps[-1]}) if steps else ():
        parts.append(f"<p>Histograms at step {step}: each layer's outputs, and the gradient "
                     f"arriving at them.</p>")
        for kind in ("activation", "gradient"):
            parts.append(figures.img(trace_plots.plot_histograms, recorded, kind=kind,
                                     step=step, alt=f"{kind} histograms at step {step}"))
    return "\n".join(parts)


def section_filters(model, figures):
    i, conv = pictures.first_conv(model)
    return (f"<p>The filters of the first convolution (layer {i}): what each output channel "
            f"looks for in a {conv.KH}x{conv.KW} patch of the input. Each filter is scaled "
            f"to its own range.</p>"
            + figures.img(pictures.plot_filters, model, alt="first-layer filters"))


def section_feature_maps(model, test, figures, class_names):
    images, x, labels = test
    return (f"<p>One test image (a {_e(class_names[labels[0]])}) through every layer: the "
            f"first channels of each layer's output; the last rows are the flattened "
            f"features and the logits.</p>"
            + figures.img(pictures.plot_feature_maps, model, images[0], x[0],
                          class_names=class_names, alt="feature maps of one image"))


def section_saliency(model, test, evaluation, figures, class_names, n_images):
    images, x, labels = test
    idx = np.arange(min(n_images, len(labels)))
    probs = evaluation["probs"][idx]
    pred = probs.argmax(axis=1)
    titles = [f"true {class_names[labels[k]]}, pred {class_names[p]} {probs[j, p]:.0%}"
              for j, (k, p) in enumerate(zip(idx, pred))]
    maps = pictures.saliency(model, x[idx], pred)
    cams, layer = pictures.grad_cam(model, x[idx], pred)
    return (f"<p>Saliency: |d score / d input| for the predicted class, the pixels whose "
            f"change would move that class's logit most.</p>"
            + figures.img(pictures.plot_saliency, images[idx], maps, titles, alt="saliency maps")
            + f"<p>Grad-CAM for the predicted class, from the feature maps of layer {layer} "
              f"({_e(model.layers[layer].name)}): the channels weighted by their mean "
              f"gradient, summed, kept where positive, and upsampled to the image.</p>"
            + figures.img(pictures.plot_grad_cam, images[idx], cams, titles, alt="Grad-CAM"))


def section_mistakes(test, evaluation, figures, class_names, n_mistakes):
    images, x, labels = test
    probs = evaluation["probs"]
    worst = pictures.worst_misclassified(labels, probs, n_mistakes)
    if len(worst) == 0:
        return note("The model classifies every test image correctly: no mistakes to show.")
    return (f"<p>The {len(worst)} test images misclassified with the highest confidence "
            f"(single view, no test-time augmentation), with the top-3 classes.</p>"
            + figures.img(pictures.plot_misclassified, images[worst], labels[worst],
                          probs[worst], class_names, alt="worst misclassifications"))


# -- the page ----------------------------------------------------------------------------------
def build_report(run_dir, data_dir=None, n_images=4, n_mistakes=12, log=print):
    """The HTML text of the report, and the list of what is missing from it.

    Raises RunDirError when RUN_DIR is unusable. Writes nothing in RUN_DIR.
    Evaluates the whole test set once (one forward pass per image, no augmentation)
    for the probabilities behind the mistakes and, when metrics.json is missing, the
    metrics. Peak memory: the standardised test set (10,000 x 32 x 32 x 3 float32,
    123 MB) plus the model's activations for one batch of 500.
    """
    run_dir = Path(run_dir)
    run = read_run(run_dir)
    config, missing = run["config"], list(run["missing"])
    class_names = config.get("class_names") or CIFAR10_CLASSES

    model, model_problem = None, None
    if run["state"] is not None:
        try:
            model = build_model(config, run["state"])
        except ValueError as e:
            model_problem = f"the weights ({run['weights_from']}) do not fit the model of config.json: {e}"
            missing.append(model_problem)
    if model is None and model_problem is None:
        model_problem = "no weights were saved (model.npz or checkpoint.npz)"

    test, evaluation, data_problem = None, None, None
    if model is not None:
        try:
            test = load_test_set(config, data_dir)
        except LookupError as e:
            data_problem = f"the CIFAR-10 test images cannot be read: {e}"
            missing.append(data_problem)
        if test is not None:
            log(f"evaluating the {len(test[2])} test images")
            probs = softmax(predict_logits(model, test[1], tta=0))
            evaluation = {"probs": probs, "report": classification_report(
                test[2], probs.argmax(axis=1), class_names)}

    problems = []

    def guarded(key, make):
        """One section's HTML; an error while drawing it becomes a note, not a crash."""
        try:
            return make()
        except Exception as e:            # a report shows what it can
            problems.append(f"{SECTIONS[key]}: {type(e).__name__}: {e}")
            log(traceback.format_exc())
            return note(f"This section could not be drawn: {type(e).__name__}: {e}")

    def needs_model(make):
        return make if model is not None else (lambda: note(f"Not shown: {model_problem}."))

    def needs_images(make):
        if model is None:
            return lambda: note(f"Not shown: {model_problem}.")
        return make if test is not None else (lambda: note(f"Not shown: {data_problem}"))

    with tempfile.TemporaryDirectory(prefix="minicnn-report-") as folder:
        figures = Figures(folder)
        makers = {
            "config": lambda: section_config(run),
            "results": lambda: section_results(run, evaluation),
            "metrics": lambda: section_metrics(run, evaluation, figures, class_names),
            "model": lambda: section_model(model if model is not None
                                           else architecture(config), config),
            "curves": lambda: section_curves(run, figures),
            "traces": needs_model(lambda: section_traces(run_dir, model, figures)),
            "filters": needs_model(lambda: section_filters(model, figures)),
            "feature-maps": needs_images(lambda: section_feature_maps(model, test, figures,
                                                                      class_names)),
            "saliency": needs_images(lambda: section_saliency(model, test, evaluation, figures,
                                                              class_names, n_images)),
            "mistakes": needs_images(lambda: section_mistakes(test, evaluation, figures,
                                                              class_names, n_mistakes)),
        }
        bodies = {}
        for key in SECTIONS:
            log(f"section: {SECTIONS[key]}")
            bodies[key] = guarded(key, makers[key])
    return page(run_dir, config, bodies, missing + problems), missing + problems


def page(run_dir, config, bodies, missing):
    title = f"minicnn report: {run_dir.resolve().name}"
    nav = " ".join(f'<a href="#{key}">{_e(heading)}</a>' for key, heading in SECTIONS.items())
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{_e(title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
             f"<h1>{_e(title)}</h1>",
             f"<p>Run directory <code>{_e(run_dir.resolve())}</code>: model "
             f"<code>{_e(config['model'])}</code>, preset <code>{_e(config.get('preset', '-'))}"
             f"</code>, seed {_e(config.get('seed', '-'))}.</p>",
             f"<nav>{nav}</nav>"]
    if missing:
        parts.append('<div class="missing"><p><b>This report is incomplete.</b> Missing or '
                     'unusable:</p><ul>' + "".join(f"<li>{_e(m)}</li>" for m in missing)
                     + "</ul></div>")
    for key, heading in SECTIONS.items():
        parts += [f'<section id="{key}">', f"<h2>{_e(heading)}</h2>", bodies[key], "</section>"]
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


def write_atomic(path, text):
    """Write text to a temporary file beside ``path``, fsync, rename over ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_report(run_dir, data_dir=None, n_images=4, n_mistakes=12, log=print):
    """Build the report and write RUN_DIR/report.html. Returns (path, missing)."""
    text, missing = build_report(run_dir, data_dir, n_images, n_mistakes, log)
    return write_atomic(Path(run_dir) / REPORT_NAME, text), missing


def main(argv=None):
    p = argparse.ArgumentParser(prog="minicnn-report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help=f"a run directory written by {WRITER}")
    p.add_argument("--data-dir", default=None,
                   help="where CIFAR-10 is (default: the run's data_dir, $MINICNN_DATA, the cache)")
    p.add_argument("--images", type=int, default=4,
                   help="test images shown with saliency and Grad-CAM (default 4)")
    p.add_argument("--mistakes", type=int, default=12,
                   help="misclassified test images shown (default 12)")
    p.add_argument("--quiet", action="store_true", help="print only the result")
    args = p.parse_args(argv)
    for name in ("images", "mistakes"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    from .fast.process import tune_process
    tune_process()
    start = time.perf_counter()
    log = (lambda *a, **k: None) if args.quiet else (lambda text: print(text, file=sys.stderr))
    try:
        path, missing = write_report(args.run_dir, args.data_dir, args.images, args.mistakes, log)
    except RunDirError as e:
        sys.exit(f"minicnn-report: {e}")
    except PermissionError as e:
        sys.exit(f"minicnn-report: cannot write {Path(args.run_dir) / REPORT_NAME}: {e}")
    size = path.stat().st_size
    print(f"wrote {path} ({size / 1e6:.2f} MB in {time.perf_counter() - start:.1f} s)")
    if missing:
        print("the report is incomplete; missing or unusable:\n"
              + "\n".join(f"  - {m}" for m in missing), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
