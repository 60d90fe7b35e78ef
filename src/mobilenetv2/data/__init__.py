"""Data: datasets, preprocessing presets and loaders."""

from mobilenetv2.data.loaders import DIGITS_DEFAULTS, Data, DataConfig, build_data, build_eval_loader
from mobilenetv2.data.preprocessing import eval_transform
from mobilenetv2.data.transforms import AUGMENT_PRESETS, train_transform
from mobilenetv2.spec import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

__all__ = [
    "AUGMENT_PRESETS", "DIGITS_DEFAULTS", "IMAGENET_MEAN", "IMAGENET_STD", "Data", "DataConfig", "Preprocessing",
    "build_data", "build_eval_loader", "eval_transform", "train_transform",
]
