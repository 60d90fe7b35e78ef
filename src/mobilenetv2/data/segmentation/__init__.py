"""Segmentation data: images with class-index masks (255 = ignore), one module per job.

``sources`` (every layout, torchvision's datasets and the built-in digit scenes, read into datasets, and the default
evaluation split), ``transforms`` (joint augmentation of image and mask for training, resizing for evaluation) and
``loaders`` (the training and evaluation loaders). The names below are the package's entry points.
"""

from mobilenetv2.data.segmentation.loaders import build_segmentation_data, build_segmentation_eval_loader
from mobilenetv2.data.segmentation.sources import (
    DIGIT_CLASSES,
    IGNORE,
    PASCAL_CLASSES,
    SegmentationImages,
    SegmentationSource,
    resolve_segmentation_source,
    segmentation_default_split,
    typical_side,
)
from mobilenetv2.data.segmentation.transforms import JointEval, JointTrain

__all__ = [
    "DIGIT_CLASSES", "IGNORE", "PASCAL_CLASSES", "JointEval", "JointTrain", "SegmentationImages", "SegmentationSource",
    "build_segmentation_data", "build_segmentation_eval_loader", "resolve_segmentation_source",
    "segmentation_default_split", "typical_side",
]
