"""Evaluation: metrics and reports, the ``Classifier`` prediction API, and model comparison."""

from mobilenetv2.evaluation.classifier import Classifier, Prediction
from mobilenetv2.evaluation.report import EvalReport, evaluate_predictions

__all__ = ["Classifier", "EvalReport", "Prediction", "evaluate", "evaluate_predictions"]


def __getattr__(name: str):
    if name == "evaluate":
        from mobilenetv2.evaluation.evaluate import evaluate

        return evaluate
    raise AttributeError(name)
