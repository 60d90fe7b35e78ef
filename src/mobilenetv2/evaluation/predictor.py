"""``load_predictor``: the predictor (``Classifier``, ``Segmenter``, ...) for the task recorded in a model file."""

from __future__ import annotations

import importlib
import os

from mobilenetv2.errors import UserError
from mobilenetv2.evaluation.classifier import Classifier, load_parts

# Task -> its predictor, "module:Class", imported on first use.
PREDICTORS = {"classification": "mobilenetv2.evaluation.classifier:Classifier",
              "segmentation": "mobilenetv2.evaluation.segmenter:Segmenter",
              "detection": "mobilenetv2.evaluation.detector:Detector"}


def load_predictor(path: str | os.PathLike[str], device=None, threads: int | None = None, spin: bool = True) -> Classifier:
    """The predictor of a checkpoint, ``.onnx`` or ``.pte`` file for the task recorded in it."""
    model, class_names, preprocessing, task = load_parts(path, threads, spin)
    if task not in PREDICTORS:
        raise UserError(f"{path}: no predictor for task {task!r} in this version (tasks: {', '.join(PREDICTORS)})")
    module, name = PREDICTORS[task].split(":")
    return getattr(importlib.import_module(module), name)(model, class_names, preprocessing, device=device)
