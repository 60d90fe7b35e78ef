"""Evaluation: ``evaluate`` a model (any checkpoint or exported file) on a dataset with its task's full report."""

from __future__ import annotations

__all__ = ["evaluate", "evaluate_predictions"]


def __getattr__(name: str):
    if name == "evaluate":
        from mobilenetv2.evaluation.evaluator import evaluate

        return evaluate
    if name == "evaluate_predictions":
        from mobilenetv2.tasks.classification.report import evaluate_predictions

        return evaluate_predictions
    raise AttributeError(name)
