"""Metrics agree with scikit-learn's on the same predictions, and on hand-made edge cases."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from mobilenetv2.errors import UserError
from mobilenetv2.tasks.classification.metrics import calibration
from mobilenetv2.tasks.classification.report import REPORT_FILES, evaluate_predictions, staged_dir

NAMES = [f"class{i}" for i in range(7)]


def random_case(seed: int, n: int = 300, c: int = 7):
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, c - 1, n)  # the last class never occurs as a target
    logits = rng.normal(size=(n, c))
    logits[np.arange(n), targets] += rng.uniform(0, 2.5, n)
    return targets, logits


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_sklearn(seed):
    targets, logits = random_case(seed)
    labels = np.arange(len(NAMES))
    preds = logits.argmax(1)
    report = evaluate_predictions(targets, logits, NAMES)

    assert np.array_equal(report.confusion, skm.confusion_matrix(targets, preds, labels=labels))
    assert report.top1 == skm.accuracy_score(targets, preds)
    assert report.top5 == skm.top_k_accuracy_score(targets, logits, k=5, labels=labels)
    p, r, f, s = skm.precision_recall_fscore_support(targets, preds, labels=labels, zero_division=0)
    np.testing.assert_allclose([c.precision for c in report.per_class], p, rtol=0, atol=1e-15)
    np.testing.assert_allclose([c.recall for c in report.per_class], r, rtol=0, atol=1e-15)
    np.testing.assert_allclose([c.f1 for c in report.per_class], f, rtol=0, atol=1e-15)
    assert [c.support for c in report.per_class] == s.tolist()
    for average in ("macro", "weighted"):
        expected = skm.precision_recall_fscore_support(targets, preds, labels=labels, average=average, zero_division=0)
        got = getattr(report, average)
        np.testing.assert_allclose([got["precision"], got["recall"], got["f1"]], expected[:3], rtol=0, atol=1e-15)
    probs = torch.softmax(torch.from_numpy(logits), 1).numpy()
    assert report.loss == pytest.approx(skm.log_loss(targets, probs, labels=labels), rel=1e-9)


def test_probabilities_and_tensors_give_the_same_report():
    targets, logits = random_case(3)
    from_logits = evaluate_predictions(targets, logits, NAMES)
    probs = torch.softmax(torch.from_numpy(logits).float(), 1)
    from_probs = evaluate_predictions(torch.from_numpy(targets), probs, NAMES)
    assert from_probs.top1 == from_logits.top1
    assert from_probs.ece == pytest.approx(from_logits.ece, abs=1e-6)


def test_perfect_predictions():
    targets = np.array([0, 1, 2, 2, 1, 0])
    report = evaluate_predictions(targets, np.eye(3)[targets] * 10, ["a", "b", "c"])
    assert report.top1 == 1.0 and report.macro == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert report.most_confused == []
    assert np.array_equal(report.confusion, np.diag([2, 2, 2]))


def test_all_wrong_and_class_never_predicted():
    targets = np.array([0, 0, 1, 1, 2, 2])
    preds = np.array([1, 1, 0, 0, 0, 1])  # class 2 is never predicted; no prediction is right
    report = evaluate_predictions(targets, np.eye(3)[preds], ["a", "b", "c"])
    assert report.top1 == 0.0
    assert [c.precision for c in report.per_class] == [0.0, 0.0, 0.0]  # zero_division -> 0, as sklearn
    assert [c.f1 for c in report.per_class] == [0.0, 0.0, 0.0]
    assert report.most_confused[0] == {"true": "a", "predicted": "b", "count": 2, "fraction_of_true": 1.0}
    assert report.ece == pytest.approx(1.0)  # fully confident and always wrong


def test_ece_by_hand():
    # Two bins used: confidence 0.9 (2 right of 2) and 0.6 (1 right of 2): |1 - .9| * .5 + |.5 - .6| * .5 = 0.1
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    ece, bins = calibration(np.array([0, 0, 0, 0]), probs)
    assert ece == pytest.approx(0.1)
    assert sum(b["count"] for b in bins) == 4 and len(bins) == 15


def test_bad_shapes_are_one_clear_error():
    with pytest.raises(UserError, match="3 outputs but there are 2 class names"):
        evaluate_predictions(np.array([0]), np.zeros((1, 3)), ["a", "b"])
    with pytest.raises(UserError, match="no samples"):
        evaluate_predictions(np.zeros(0, dtype=int), np.zeros((0, 2)), ["a", "b"])


def test_report_files_written_together(tmp_path):
    targets, logits = random_case(4)
    report = evaluate_predictions(targets, logits, NAMES)
    report.write(tmp_path / "eval")
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == sorted(REPORT_FILES)
    data = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert data["top1"] == report.top1 and len(data["per_class"]) == len(NAMES)
    csv_rows = (tmp_path / "eval" / "confusion_matrix.csv").read_text().splitlines()
    assert len(csv_rows) == len(NAMES) + 1 and csv_rows[1].split(",")[1:] == [str(v) for v in report.confusion[0]]
    assert "| **macro avg**" in (tmp_path / "eval" / "report.md").read_text()


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), staged_dir(tmp_path / "out") as tmp:
        (tmp / "report.json").write_text("{}")
        raise RuntimeError("plotting failed")
    assert list(tmp_path.iterdir()) == []
