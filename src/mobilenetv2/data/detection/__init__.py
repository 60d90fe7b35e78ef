"""Detection data: images with boxes (xyxy pixels, labels 1..K, 0 = background), one module per job.

``sources`` (every annotation layout and the built-in digits, read into datasets, and the default evaluation split),
``tiles`` (the windows that cut large images, also used at inference), ``targets`` (a sample's and a batch's boxes),
``transforms`` (augmentation for training, squashing for evaluation) and ``loaders`` (the training and evaluation
loaders). The names below are the package's entry points.
"""

from mobilenetv2.data.detection.loaders import build_detection_data, build_detection_eval_loader, squash_preprocessing
from mobilenetv2.data.detection.sources import (
    BACKGROUND,
    DIGIT_CANVAS,
    DetectionImages,
    DetectionRecord,
    DetectionSource,
    detection_default_split,
    parse_voc_xml,
    resolve_detection_source,
)
from mobilenetv2.data.detection.targets import BoxTargets, collate_detection, make_target
from mobilenetv2.data.detection.tiles import MIN_VISIBLE, boxes_in_crop, tile_windows
from mobilenetv2.data.detection.transforms import DetectionEval, DetectionTrain

__all__ = [
    "BACKGROUND", "DIGIT_CANVAS", "MIN_VISIBLE", "BoxTargets", "DetectionEval", "DetectionImages", "DetectionRecord",
    "DetectionSource", "DetectionTrain", "boxes_in_crop", "build_detection_data", "build_detection_eval_loader",
    "collate_detection", "detection_default_split", "make_target", "parse_voc_xml", "resolve_detection_source",
    "squash_preprocessing", "tile_windows",
]
