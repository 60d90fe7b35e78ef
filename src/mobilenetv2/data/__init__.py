"""Data: datasets, preprocessing presets and loaders."""

from mobilenetv2.data.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, eval_transform

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Preprocessing", "eval_transform"]
