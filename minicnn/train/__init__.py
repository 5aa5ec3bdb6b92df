"""Training: the loop, evaluation, metrics, plots and the progress bar.

    trainer.py      Trainer: epochs, validation, early stopping, checkpoints, exact resume
    evaluate.py     batched predictions with test-time augmentation, loss and accuracy
    metrics.py      accuracy, top-k, per-class precision/recall/F1, confusion matrix
    plots.py        loss/accuracy curves, confusion matrix, a grid of predictions
    traces.py       per-layer activation and gradient statistics recorded during training
    trace_plots.py  their pictures: gradient norms, update ratios, histograms
    pictures.py     inside a trained model: filters, feature maps, saliency, Grad-CAM,
                    worst mistakes, per-class precision/recall/F1
    progress.py     the progress bar

The picture functions load matplotlib when first used, not when minicnn.train is imported.
"""
from .evaluate import evaluate, mirror, predict_logits
from .trainer import CheckpointWriteError, Trainer, TrainingDiverged, save_json
from .traces import TraceRecorder, load_traces

_TRACE_PLOTS = ("plot_gradient_norms", "plot_update_ratios", "plot_histograms")


def __getattr__(name):
    if name in _TRACE_PLOTS:
        from . import trace_plots
        return getattr(trace_plots, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
