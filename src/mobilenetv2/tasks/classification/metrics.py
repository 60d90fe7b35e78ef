"""Classification metrics computed from (targets, scores): the same definitions as scikit-learn's.

Per-class precision, recall and F1 use ``zero_division=0`` (a class never predicted has precision 0, as in
sklearn); F1 is ``2 tp / (2 tp + fp + fn)``. Expected calibration error uses 15 equal-width confidence bins.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import numpy as np

from mobilenetv2.errors import UserError

if TYPE_CHECKING:
    import torch

ECE_BINS = 15


def as_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    torch = sys.modules.get("torch")  # a tensor means torch is loaded; numpy inputs never load it
    if torch is not None and isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64 if x.is_floating_point() else torch.int64).numpy()
    return np.asarray(x)


def to_probabilities(scores: np.ndarray) -> np.ndarray:
    """Rows that are already probabilities (in [0, 1], summing to 1) are kept; anything else is softmaxed as logits."""
    scores = scores.astype(np.float64)
    if scores.min() >= 0 and scores.max() <= 1 and np.allclose(scores.sum(axis=1), 1.0, atol=1e-4):
        return scores
    shifted = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def check_inputs(targets: np.ndarray, scores: np.ndarray, num_classes: int) -> None:
    if scores.ndim != 2 or targets.ndim != 1 or len(targets) != len(scores):
        raise UserError(f"expected targets of shape [N] and scores of shape [N, C], got {targets.shape} and {scores.shape}")
    if scores.shape[1] != num_classes:
        raise UserError(f"the model has {scores.shape[1]} outputs but there are {num_classes} class names")
    if len(targets) == 0:
        raise UserError("no samples to evaluate")
    if targets.min() < 0 or targets.max() >= num_classes:
        raise UserError(f"target labels must be in [0, {num_classes - 1}], got {targets.min()}..{targets.max()}")


def confusion_matrix(targets: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """``cm[i, j]``: samples of true class i predicted as j."""
    return np.bincount(targets * num_classes + preds, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def topk_accuracy(targets: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Fraction of samples whose true class is among the ``k`` highest scores (1.0 when k >= classes, as sklearn)."""
    if k >= scores.shape[1]:
        return 1.0
    top = np.argsort(scores, axis=1, kind="mergesort")[:, ::-1][:, :k]  # same tie order as sklearn
    return float((top == targets[:, None]).any(axis=1).mean())


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros_like(num, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def per_class_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support of each class from a confusion matrix (zero_division=0)."""
    tp = np.diag(cm).astype(np.float64)
    predicted, support = cm.sum(axis=0).astype(np.float64), cm.sum(axis=1).astype(np.float64)
    return {
        "precision": _divide(tp, predicted),
        "recall": _divide(tp, support),
        "f1": _divide(2 * tp, support + predicted),
        "support": support.astype(np.int64),
    }


def averages(scores: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Macro (every class counts once) and weighted (by support) averages of precision, recall and F1."""
    support = scores["support"]
    weights = support / support.sum() if support.sum() else np.full(len(support), 1 / len(support))
    return {
        "macro": {m: float(np.mean(scores[m])) for m in ("precision", "recall", "f1")},
        "weighted": {m: float(np.sum(scores[m] * weights)) for m in ("precision", "recall", "f1")},
    }


def calibration(targets: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS) -> tuple[float, list[dict]]:
    """Expected calibration error over equal-width confidence bins, and each bin's (confidence, accuracy, count)."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == targets
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)  # bin i holds (e_i, e_i+1]
    ece, table = 0.0, []
    for b in range(bins):
        mask = index == b
        n = int(mask.sum())
        conf = float(confidence[mask].mean()) if n else None
        acc = float(correct[mask].mean()) if n else None
        if n:
            ece += abs(acc - conf) * n / len(targets)
        table.append({"lower": float(edges[b]), "upper": float(edges[b + 1]), "count": n, "confidence": conf, "accuracy": acc})
    return float(ece), table


def most_confused(cm: np.ndarray, class_names: list[str], limit: int = 10) -> list[dict]:
    """The largest off-diagonal cells: (true class, predicted class, count), largest first."""
    off = cm.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:limit]
    pairs = []
    for flat in order:
        i, j = divmod(int(flat), cm.shape[0])
        if off[i, j] == 0:
            break
        pairs.append({"true": class_names[i], "predicted": class_names[j], "count": int(off[i, j]),
                      "fraction_of_true": float(off[i, j] / cm[i].sum())})
    return pairs
