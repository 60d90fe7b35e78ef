"""Weights: our checkpoint format, torchvision/timm state dicts, and pretrained weights."""

from mobilenetv2.weights.checkpoint import (
    Checkpoint,
    CheckpointMeta,
    load_checkpoint,
    load_model,
    read_metadata,
    resolve_checkpoint_path,
    save_checkpoint,
)
from mobilenetv2.weights.foreign import detect_format, load_state_dict_strict, to_our_keys

__all__ = [
    "Checkpoint", "CheckpointMeta", "detect_format", "load_checkpoint", "load_model", "load_state_dict_strict", "read_metadata",
    "resolve_checkpoint_path", "save_checkpoint", "to_our_keys",
]
