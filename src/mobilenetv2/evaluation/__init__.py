"""Evaluation: predictors (``Classifier``, ``Segmenter``; ``load_predictor`` picks by the file's task) and ``evaluate``."""

from __future__ import annotations

from mobilenetv2.evaluation.classifier import Classifier
from mobilenetv2.evaluation.predictor import load_predictor
from mobilenetv2.tasks.classification import Prediction

__all__ = ["Classifier", "Prediction", "evaluate", "load_predictor"]

def __getattr__(name: str):
    if name == "evaluate":
        from mobilenetv2.evaluation.evaluate import evaluate

        return evaluate
    raise AttributeError(name)
