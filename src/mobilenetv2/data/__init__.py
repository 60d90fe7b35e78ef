"""Data: datasets, preprocessing presets and loaders. The names below load on first use (PEP 562), so that
``mobilenetv2.data.images`` and ``mobilenetv2.data.preprocessing`` import without torch."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mobilenetv2.data.loaders import DIGITS_DEFAULTS, Data, DataConfig, build_data, build_eval_loader
    from mobilenetv2.data.preprocessing import eval_transform
    from mobilenetv2.data.transforms import AUGMENT_PRESETS, train_transform
    from mobilenetv2.spec import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

# name -> the module it comes from
_SOURCES = {**dict.fromkeys(["DIGITS_DEFAULTS", "Data", "DataConfig", "build_data", "build_eval_loader"], "loaders"),
            "eval_transform": "preprocessing", **dict.fromkeys(["AUGMENT_PRESETS", "train_transform"], "transforms")}
_SPEC = ("IMAGENET_MEAN", "IMAGENET_STD", "Preprocessing")

__all__ = [
    "AUGMENT_PRESETS", "DIGITS_DEFAULTS", "IMAGENET_MEAN", "IMAGENET_STD", "Data", "DataConfig", "Preprocessing",
    "build_data", "build_eval_loader", "eval_transform", "train_transform",
]


def __getattr__(name: str) -> Any:
    if name in _SPEC:
        return getattr(importlib.import_module("mobilenetv2.spec"), name)
    if name in _SOURCES:
        return getattr(importlib.import_module(f"mobilenetv2.data.{_SOURCES[name]}"), name)
    raise AttributeError(f"module 'mobilenetv2.data' has no attribute {name!r}")
