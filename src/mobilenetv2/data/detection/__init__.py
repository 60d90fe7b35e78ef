"""Detection data: images with boxes (xyxy pixels, labels 1..K, 0 = background), one module per job.

``sources`` (every annotation layout and the built-in digits, read into datasets, and the default evaluation split),
``tiles`` (the windows that cut large images, also used at inference), ``targets`` (a sample's and a batch's boxes),
``transforms`` (augmentation for training, squashing for evaluation) and ``loaders`` (the training and evaluation
loaders). The names below are the package's entry points.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> the module it comes from, imported on first use (tiles, at inference, need no torch)
_SOURCES = {
    **dict.fromkeys(["build_detection_data", "build_detection_eval_loader", "squash_preprocessing"], "loaders"),
    **dict.fromkeys(["BACKGROUND", "DIGIT_CANVAS", "DetectionImages", "DetectionRecord", "DetectionSource",
                     "detection_default_split", "parse_voc_xml", "resolve_detection_source"], "sources"),
    **dict.fromkeys(["BoxTargets", "collate_detection", "make_target"], "targets"),
    **dict.fromkeys(["MIN_VISIBLE", "boxes_in_crop", "tile_windows"], "tiles"),
    **dict.fromkeys(["DetectionEval", "DetectionTrain"], "transforms"),
}

__all__ = [
    "BACKGROUND", "DIGIT_CANVAS", "MIN_VISIBLE", "BoxTargets", "DetectionEval", "DetectionImages", "DetectionRecord",
    "DetectionSource", "DetectionTrain", "boxes_in_crop", "build_detection_data", "build_detection_eval_loader",
    "collate_detection", "detection_default_split", "make_target", "parse_voc_xml", "resolve_detection_source",
    "squash_preprocessing", "tile_windows",
]


def __getattr__(name: str) -> Any:
    if name in _SOURCES:
        return getattr(importlib.import_module(f"mobilenetv2.data.detection.{_SOURCES[name]}"), name)
    raise AttributeError(f"module 'mobilenetv2.data.detection' has no attribute {name!r}")
