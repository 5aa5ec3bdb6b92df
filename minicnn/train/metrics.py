"""Classification metrics for evaluating a trained classifier.

The numbers come from scikit-learn; this module only validates the inputs,
turns the results into plain Python types (so a report can be written with
`json.dump`) and formats them as a text table.

    report = classification_report(y_true, y_pred, class_names)
    print(format_report(report, class_names))
"""

import numpy as np
from sklearn import metrics as skm


def _check_labels(y_true, y_pred, n_classes=None):
    """Validate two label vectors and return them as int64 arrays.

    Both must be non-empty, 1-D, of equal length and integer valued; with
    `n_classes`, every label must lie in [0, n_classes).
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.ndim != 1:
            raise ValueError(f"metrics: {name} must be 1-D (N,), got shape {y.shape}")
        if y.size == 0:
            raise ValueError(f"metrics: {name} must be non-empty, got 0 labels")
        if not np.issubdtype(y.dtype, np.integer):
            raise TypeError(f"metrics: {name} must hold integer labels, got dtype {y.dtype}")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"metrics: y_true and y_pred must have the same length, "
                         f"got {len(y_true)} and {len(y_pred)}")
    if n_classes is not None:
        for name, y in (("y_true", y_true), ("y_pred", y_pred)):
            lo, hi = int(y.min()), int(y.max())
            if lo < 0 or hi >= n_classes:
                raise ValueError(f"metrics: {name} labels must be in [0, {n_classes - 1}] "
                                 f"for {n_classes} classes, got range [{lo}, {hi}]")
    return y_true.astype(np.int64), y_pred.astype(np.int64)


def accuracy(y_true, y_pred):
    """Fraction of labels predicted correctly: mean(y_true == y_pred), a float."""
    y_true, y_pred = _check_labels(y_true, y_pred)
    return float(skm.accuracy_score(y_true, y_pred))


def classification_report(y_true, y_pred, class_names):
    """Per-class and averaged metrics as a JSON-serialisable dict.

    y_true, y_pred: (N,) integer labels in [0, K), K = len(class_names).
    Returns a dict with
      accuracy                                  float
      class_names                               list of K str
      precision, recall, f1, support            lists of K (floats; support ints)
      precision_macro, recall_macro, f1_macro   unweighted means over the K classes
      confusion_matrix                          K x K list of ints, rows = true class,
                                                columns = predicted class
    A class never predicted (or never present) gets precision (or recall) 0.
    """
    K = len(class_names)
    if K == 0:
        raise ValueError("classification_report: class_names must be non-empty, got 0 names")
    y_true, y_pred = _check_labels(y_true, y_pred, n_classes=K)
    labels = list(range(K))
    p, r, f, s = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0)
    cm = skm.confusion_matrix(y_true, y_pred, labels=labels)
    return {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "class_names": [str(c) for c in class_names],
        "precision": [float(v) for v in p],
        "recall": [float(v) for v in r],
        "f1": [float(v) for v in f],
        "support": [int(v) for v in s],
        "precision_macro": float(np.mean(p)),
        "recall_macro": float(np.mean(r)),
        "f1_macro": float(np.mean(f)),
        "confusion_matrix": cm.astype(int).tolist(),
    }


def _abbrev(name, width):
    """Cut a class name to at most `width` characters ("automobile" -> "autom")."""
    return name if len(name) <= width else name[:width]


def format_report(report, class_names):
    """Render a report from `classification_report` as a readable text table.

    First a table of precision, recall, F1 and support per class, the macro
    averages and the accuracy; then the confusion matrix (rows = true class,
    columns = predicted class) with class names cut to 5 characters.
    """
    K = len(class_names)
    if len(report["precision"]) != K:
        raise ValueError(f"format_report: report has {len(report['precision'])} classes, "
                         f"class_names has {K}")
    names = [str(c) for c in class_names]
    w = max(12, max(len(n) for n in names))
    total = sum(report["support"])
    lines = [f"{'class':<{w}} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}"]
    for i, name in enumerate(names):
        lines.append(f"{name:<{w}} {report['precision'][i]:>9.4f} {report['recall'][i]:>9.4f} "
                     f"{report['f1'][i]:>9.4f} {report['support'][i]:>8d}")
    lines.append("-" * len(lines[0]))
    lines.append(f"{'macro avg':<{w}} {report['precision_macro']:>9.4f} "
                 f"{report['recall_macro']:>9.4f} {report['f1_macro']:>9.4f} {total:>8d}")
    lines.append(f"{'accuracy':<{w}} {'':>9} {'':>9} {report['accuracy']:>9.4f} {total:>8d}")

    cm = report["confusion_matrix"]
    short = [_abbrev(n, 5) for n in names]
    cw = max(6, len(str(max(max(row) for row in cm))) + 1)
    lines += ["", "confusion matrix (rows = true, columns = predicted)",
              f"{'':<6}" + "".join(f"{s:>{cw}}" for s in short)]
    for s, row in zip(short, cm):
        lines.append(f"{s:<6}" + "".join(f"{v:>{cw}d}" for v in row))
    return "\n".join(lines)


def topk(probs, k):
    """The k most likely classes of each row, most likely first.

    probs: (N, K) class probabilities (or scores).
    Returns (idx, p): idx (N, k) int64 class indices, p (N, k) their values.
    Ties are broken by the lower class index.
    """
    probs = np.asarray(probs)
    if probs.ndim != 2:
        raise ValueError(f"topk: probs must be 2-D (N, K), got shape {probs.shape}")
    K = probs.shape[1]
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= K:
        raise ValueError(f"topk: k must be an integer in [1, {K}], got {k!r}")
    keys = probs if np.issubdtype(probs.dtype, np.floating) else probs.astype(np.float64)
    idx = np.argsort(-keys, axis=1, kind="stable")[:, :k].astype(np.int64)  # (N, k)
    return idx, np.take_along_axis(probs, idx, axis=1)
