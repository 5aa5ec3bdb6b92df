"""Tests for minicnn.train.metrics and minicnn.train.progress on hand-made examples."""

import io
import json

import numpy as np
import pytest

from minicnn.train.metrics import accuracy, classification_report, format_report, topk
from minicnn.train.progress import ProgressBar

NAMES = ["airplane", "automobile", "bird"]
# supports 3, 2, 5; confusion matrix rows (true) [[2,1,0],[0,1,1],[2,0,3]]
Y_TRUE = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 2])
Y_PRED = np.array([0, 0, 1, 1, 2, 2, 2, 2, 0, 0])


def test_report_known_values():
    r = classification_report(Y_TRUE, Y_PRED, NAMES)
    assert r["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [2, 0, 3]]
    assert r["accuracy"] == pytest.approx(0.6)
    assert r["precision"] == pytest.approx([2 / 4, 1 / 2, 3 / 4])
    assert r["recall"] == pytest.approx([2 / 3, 1 / 2, 3 / 5])
    assert r["f1"] == pytest.approx([4 / 7, 1 / 2, 2 / 3])
    assert r["support"] == [3, 2, 5]
    assert r["precision_macro"] == pytest.approx((0.5 + 0.5 + 0.75) / 3)
    assert r["recall_macro"] == pytest.approx((2 / 3 + 0.5 + 0.6) / 3)
    assert r["f1_macro"] == pytest.approx((4 / 7 + 0.5 + 2 / 3) / 3)


def test_report_is_plain_json():
    r = classification_report(Y_TRUE.astype(np.int32), Y_PRED.astype(np.uint8), NAMES)
    back = json.loads(json.dumps(r))
    assert back == r
    assert type(r["accuracy"]) is float and type(r["support"][0]) is int
    assert type(r["confusion_matrix"][0][0]) is int


def test_report_absent_class_gets_zero_not_nan():
    r = classification_report(Y_TRUE, Y_PRED, NAMES + ["cat"])
    assert r["precision"][3] == 0.0 and r["recall"][3] == 0.0 and r["support"][3] == 0
    assert len(r["confusion_matrix"]) == 4 and r["confusion_matrix"][3] == [0, 0, 0, 0]
    assert r["f1_macro"] == pytest.approx((4 / 7 + 0.5 + 2 / 3) / 4)


@pytest.mark.parametrize("y_true, y_pred, err, msg", [
    ([0, 1, 2], [0, 1], ValueError, "same length"),
    ([], [], ValueError, "non-empty"),
    ([[0, 1]], [[0, 1]], ValueError, "1-D"),
    ([0.0, 1.0], [0, 1], TypeError, "integer"),
    ([0, 3], [0, 1], ValueError, r"\[0, 2\].*got range \[0, 3\]"),
    ([0, 1], [-1, 1], ValueError, "got range"),
])
def test_report_bad_inputs_raise(y_true, y_pred, err, msg):
    with pytest.raises(err, match=msg):
        classification_report(np.array(y_true), np.array(y_pred), NAMES)


def test_format_report_has_names_and_numbers():
    r = classification_report(Y_TRUE, Y_PRED, NAMES)
    text = format_report(r, NAMES)
    for name in NAMES:
        assert name in text
    for number in ("0.5000", "0.7500", "0.6667", "0.5714", "0.6000", "0.5833"):
        assert number in text
    assert "autom" in text  # abbreviated header of the confusion matrix
    cm_rows = text.split("confusion matrix")[1].splitlines()[2:]
    assert [row.split()[1:] for row in cm_rows] == [["2", "1", "0"], ["0", "1", "1"],
                                                   ["2", "0", "3"]]
    with pytest.raises(ValueError, match="3 classes"):
        format_report(r, NAMES[:2])


def test_accuracy():
    assert accuracy(Y_TRUE, Y_PRED) == pytest.approx(0.6)
    assert accuracy([1, 2], [1, 2]) == 1.0
    with pytest.raises(ValueError, match="same length"):
        accuracy([1, 2], [1])


def test_topk_known_matrix():
    probs = np.array([[0.1, 0.6, 0.3],
                      [0.5, 0.2, 0.3],
                      [0.2, 0.4, 0.4]], dtype=np.float32)
    idx, p = topk(probs, 2)
    assert idx.tolist() == [[1, 2], [0, 2], [1, 2]]  # tie -> lower index first
    np.testing.assert_allclose(p, [[0.6, 0.3], [0.5, 0.3], [0.4, 0.4]])
    assert p.dtype == np.float32
    assert topk(probs, 1)[0].tolist() == [[1], [0], [1]]
    with pytest.raises(ValueError, match=r"\[1, 3\], got 4"):
        topk(probs, 4)
    with pytest.raises(ValueError, match="2-D"):
        topk(probs[0], 1)


def test_progress_running_means_when_disabled():
    bar = ProgressBar(64, desc="epoch 1/1", disable=True)
    bar.update(32, loss=2.0, acc=0.25)
    bar.update(16, loss=1.0, acc=1.0)
    assert bar.n == 48
    assert bar.loss == pytest.approx((32 * 2.0 + 16 * 1.0) / 48)
    assert bar.acc == pytest.approx((32 * 0.25 + 16 * 1.0) / 48)
    assert bar.rate > 0
    bar.close()
    with pytest.raises(ValueError, match="got -1"):
        bar.update(-1)


def test_progress_writes_postfix_to_non_tty():
    out = io.StringIO()
    with ProgressBar(10, desc="epoch 2/5", file=out) as bar:
        bar.update(4, loss=1.5, acc=0.5)
        bar.update(6)  # a batch without metrics leaves the means unchanged
    assert bar.loss == pytest.approx(1.5) and bar.acc == pytest.approx(0.5)
    text = out.getvalue()
    assert "epoch 2/5" in text and "10/10" in text and "img" in text
    assert "loss=1.5000" in text and "acc=0.500" in text and "img/s=" in text
