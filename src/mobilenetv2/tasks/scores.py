"""Scores from logits in numpy (softmax, sigmoid), for post-processing that runs without torch."""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Probabilities along ``axis`` (float32), shifted by the maximum so that large logits do not overflow."""
    x = np.asarray(logits, dtype=np.float32)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """The logistic function (float32), through tanh so that no value overflows."""
    x = np.asarray(logits, dtype=np.float32)
    return np.float32(0.5) * (np.float32(1) + np.tanh(np.float32(0.5) * x))
