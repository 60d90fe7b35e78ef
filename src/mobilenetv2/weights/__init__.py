"""Weights: our checkpoint format, torchvision/timm state dicts, and pretrained weights. ``CheckpointMeta`` loads
without torch (exported files carry it); the rest on first use (PEP 562)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mobilenetv2.weights.meta import CheckpointMeta

if TYPE_CHECKING:
    from mobilenetv2.weights.checkpoint import (
        Checkpoint,
        load_checkpoint,
        load_model,
        read_metadata,
        resolve_checkpoint_path,
        save_checkpoint,
    )
    from mobilenetv2.weights.foreign import detect_format, load_state_dict_strict, to_our_keys

_SOURCES = {**dict.fromkeys(["Checkpoint", "load_checkpoint", "load_model", "read_metadata", "resolve_checkpoint_path",
                             "save_checkpoint"], "checkpoint"),
            **dict.fromkeys(["detect_format", "load_state_dict_strict", "to_our_keys"], "foreign")}

__all__ = [
    "Checkpoint", "CheckpointMeta", "detect_format", "load_checkpoint", "load_model", "load_state_dict_strict", "read_metadata",
    "resolve_checkpoint_path", "save_checkpoint", "to_our_keys",
]


def __getattr__(name: str) -> Any:
    if name in _SOURCES:
        return getattr(importlib.import_module(f"mobilenetv2.weights.{_SOURCES[name]}"), name)
    raise AttributeError(f"module 'mobilenetv2.weights' has no attribute {name!r}")
