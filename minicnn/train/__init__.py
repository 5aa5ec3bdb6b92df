"""Training: the loop, evaluation, metrics, plots and the progress bar.

    trainer.py    Trainer: epochs, validation, early stopping, checkpoints, exact resume
    evaluate.py   batched predictions with test-time augmentation, loss and accuracy
    metrics.py    accuracy, top-k, per-class precision/recall/F1, confusion matrix
    plots.py      loss/accuracy curves, confusion matrix, a grid of predictions
    progress.py   the progress bar
"""
from .evaluate import evaluate, mirror, predict_logits
from .trainer import Trainer, TrainingDiverged, save_json
