"""Options whose default depends on the data: input size, augmentation and centre crop, chosen from a look at the
images (``mobilenetv2.data.describe``) when the user leaves them unset; the built-in digits have their own."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from mobilenetv2.data import DIGITS_DEFAULTS
from mobilenetv2.data.describe import DataSummary, describe_source
from mobilenetv2.spec import check_crop_pct, check_input_size
from mobilenetv2.tasks import get_task
from mobilenetv2.training.config import TrainConfig

# ImageNet's recipe; small images change all five (see data_defaults)
GENERAL_DEFAULTS: dict[str, Any] = {"input_size": 224, "augment": "paper", "crop_pct": 0.875, "batch_size": 64,
                                    "warmup_epochs": 1.0}
SMALL_SIDE = 64    # images up to this long side (digits, characters, icons, CIFAR) get the small-image defaults
SMALL_SCALE = 2    # small images are upsampled ~2x: 28 px characters train at 64 (see data_defaults)
FLAGS = {"input_size": "--input-size", "augment": "--augment", "crop_pct": "--crop-pct", "batch_size": "--batch-size",
         "warmup_epochs": "--warmup-epochs"}
# Small images mean small data sets and short runs: smaller batches give twice the steps per epoch, and a short
# warm-up leaves them to learning (28x28 characters at 64 px, 5 epochs: 96.7% at batch 64 / 1 warm-up epoch, 98.9%
# here). Only where the last maps are at least 2x2 (see small_image_run).
SMALL_IMAGE_RUN = {"batch_size": 32, "warmup_epochs": 0.3}
OUTPUT_STRIDE = 32  # the network halves its maps five times: an input of 32 px leaves 1x1 maps in the last stages


def data_defaults(summary: DataSummary | None, input_size: int | None = None) -> dict[str, Any]:
    """Input size, augmentation, crop, batch size and warm-up for data like ``summary`` (None: ImageNet's recipe),
    trained at ``input_size`` (None: the size chosen here).

    Small images (long side <= 64) train at about twice their size, rounded up to a multiple of 32 (28 -> 64: at 32
    the network's last stages see a 1x1 map), with the "light" augmentation (no flip: a flipped character is another
    symbol; no crop below 70%: the strokes reach the borders), no centre crop, and the batch size and warm-up of
    ``small_image_run`` for the input size actually used. Medium images keep their size
    (rounded up to a multiple of 32); photos of 224 px and more get the paper's recipe.
    """
    if summary is None:
        return dict(GENERAL_DEFAULTS)
    if summary.side <= SMALL_SIDE:
        size = 32 * math.ceil(SMALL_SCALE * summary.side / 32)
        return {"input_size": size, "augment": "light", "crop_pct": 1.0, **small_image_run(input_size or size)}
    return {**GENERAL_DEFAULTS, "input_size": min(224, 32 * math.ceil(summary.side / 32))}


def small_image_run(input_size: int) -> dict[str, Any]:
    """Batch size and warm-up for small images trained at ``input_size``: batches of 32 and a 0.3-epoch warm-up
    (``SMALL_IMAGE_RUN``) when the last maps are at least 2x2 (input > 32), ImageNet's batches of 64 and 1-epoch
    warm-up at 32 px, where the last stages see 1x1 maps and BatchNorm there has one value a channel per image
    (5,000 distorted 28x28 digits at --input-size 32, 10 epochs, seed 0: 51.3% val top-1 at batch 32 / 0.3 warm-up,
    93.1% at batch 64 / 1 epoch; in 3 epochs batch 64 alone gave 70.7%, the 1-epoch warm-up alone 58.2%)."""
    if math.ceil(input_size / OUTPUT_STRIDE) >= 2:
        return dict(SMALL_IMAGE_RUN)
    return {k: GENERAL_DEFAULTS[k] for k in SMALL_IMAGE_RUN}


def _unset(cfg: TrainConfig) -> list[str]:
    return [k for k in GENERAL_DEFAULTS if getattr(cfg, k) is None]


def _choose(cfg: TrainConfig) -> tuple[dict[str, Any], DataSummary | str | None]:
    chosen = get_task(cfg.task).training_defaults(cfg.data, cfg.data_root)
    if chosen is not None:  # the task's own rule (e.g. segmentation), with the reason as the summary
        return {**GENERAL_DEFAULTS, **chosen[0]}, chosen[1]
    if cfg.data == "digits":
        return {**GENERAL_DEFAULTS, **{k: v for k, v in DIGITS_DEFAULTS.items() if k in GENERAL_DEFAULTS}}, None
    summary = describe_source(cfg.data, cfg.data_root)
    return data_defaults(summary, cfg.input_size), summary


def resolve_defaults(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with every data-dependent option the user left unset (None) filled in from the data."""
    return _resolve(cfg)[0]


def resolve_and_describe(cfg: TrainConfig) -> tuple[TrainConfig, str]:
    """``resolve_defaults`` and ``describe_defaults`` in one look at the data."""
    after, summary = _resolve(cfg)
    return after, _describe(cfg, after, summary)


def describe_defaults(before: TrainConfig, after: TrainConfig) -> str:
    """One line saying which options were chosen from the data and why ("" when the user set them all).

    ``before`` is the config as the user gave it, ``after`` what ``resolve_defaults`` made of it.
    """
    return _describe(before, after, _choose(before)[1] if _unset(before) else None)


def _resolve(cfg: TrainConfig) -> tuple[TrainConfig, DataSummary | str | None]:
    unset, summary = _unset(cfg), None
    if unset:
        defaults, summary = _choose(cfg)
        cfg = replace(cfg, **{k: defaults[k] for k in unset})
    check_input_size(cfg.input_size)
    check_crop_pct(cfg.crop_pct)
    return cfg, summary


def _describe(before: TrainConfig, after: TrainConfig, summary: DataSummary | str | None) -> str:
    unset = _unset(before)
    if not unset:
        return ""
    if isinstance(summary, str):
        why = summary
    elif before.data == "digits":
        why = "defaults for the built-in digits (8x8, upscaled to 32)"
    else:
        why = f"defaults from the data: {summary}" if summary else "defaults (the data was not inspected)"
    chosen = {"input_size": f"input {after.input_size}", "augment": f"augment {after.augment}",
              "crop_pct": "no crop" if after.crop_pct == 1.0 else f"crop {after.crop_pct}",
              "batch_size": f"batch {after.batch_size}", "warmup_epochs": f"warm-up {after.warmup_epochs:g} epoch(s)"}
    flags = "/".join(FLAGS[k] for k in unset)
    return f"{why} -> {', '.join(chosen[k] for k in unset)} (set {flags} to override)"
