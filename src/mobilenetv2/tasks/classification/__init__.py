"""Image classification: the first task behind the seam (labels, cross-entropy, top-k accuracy, confusion matrix)."""

from mobilenetv2.tasks.classification.task import ClassificationTask, Prediction

__all__ = ["ClassificationTask", "Prediction"]
