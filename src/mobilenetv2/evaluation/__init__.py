"""Evaluation: the ``Classifier`` prediction API and ``evaluate`` (a model on a dataset, through its task)."""

from mobilenetv2.evaluation.classifier import Classifier
from mobilenetv2.tasks.classification import Prediction

__all__ = ["Classifier", "Prediction", "evaluate"]


def __getattr__(name: str):
    if name == "evaluate":
        from mobilenetv2.evaluation.evaluate import evaluate

        return evaluate
    raise AttributeError(name)
