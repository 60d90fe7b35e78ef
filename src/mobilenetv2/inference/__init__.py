"""Inference: predictors for every task on any backend (``Classifier``, ``Segmenter``, ``Detector``, siblings under
``Predictor``); ``load_predictor`` opens a checkpoint or an exported file and picks the predictor of its task."""

from __future__ import annotations

from mobilenetv2.inference.classifier import Classifier
from mobilenetv2.inference.images import ImageInput
from mobilenetv2.inference.predictor import Predictor, load_predictor, predictor_class
from mobilenetv2.tasks.classification import Prediction

__all__ = ["Classifier", "Detector", "ImageInput", "Prediction", "Predictor", "Segmenter", "load_predictor",
           "predictor_class"]


def __getattr__(name: str):
    if name in ("Segmenter", "Detector"):
        return predictor_class({"Segmenter": "segmentation", "Detector": "detection"}[name])
    raise AttributeError(name)
