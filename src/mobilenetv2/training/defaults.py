"""Options whose default depends on the data: input size, augmentation and crop (digits: small and light)."""

from __future__ import annotations

from dataclasses import replace

from mobilenetv2.data import DIGITS_DEFAULTS
from mobilenetv2.training.config import TrainConfig

GENERAL_DEFAULTS = {"input_size": 224, "augment": "paper", "crop_pct": 0.875}


def resolve_defaults(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with every data-dependent option the user left unset (None) filled in."""
    defaults = {**GENERAL_DEFAULTS, **DIGITS_DEFAULTS} if cfg.data == "digits" else GENERAL_DEFAULTS
    return replace(cfg, **{k: defaults[k] for k in GENERAL_DEFAULTS if getattr(cfg, k) is None})
