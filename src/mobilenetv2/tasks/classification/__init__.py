"""Image classification: the first task behind the seam (labels, cross-entropy, top-k accuracy, confusion matrix).
``Prediction`` loads without torch; ``ClassificationTask`` (training, evaluation) on first use."""

from mobilenetv2.tasks.classification.prediction import Prediction

__all__ = ["ClassificationTask", "Prediction"]


def __getattr__(name: str):
    if name == "ClassificationTask":
        from mobilenetv2.tasks.classification.task import ClassificationTask

        return ClassificationTask
    raise AttributeError(name)
