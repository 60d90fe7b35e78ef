"""Preparing a model for fine-tuning: pretrained weights, a new head, BatchNorm statistics for folded weights."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from mobilenetv2.models import create_model
from mobilenetv2.tasks import Task
from mobilenetv2.training.config import TrainConfig
from mobilenetv2.weights import Checkpoint, load_checkpoint
from mobilenetv2.weights.pretrained import SOURCES, fetch_pretrained

log = logging.getLogger(__name__)


def model_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    """The architecture options the user set (None means the model's own default)."""
    return {k: v for k, v in (("width_mult", cfg.width_mult), ("dropout", cfg.dropout)) if v is not None}


def load_pretrained(cfg: TrainConfig) -> Checkpoint | None:
    """The ``--pretrained`` checkpoint (fetched first for ``torchvision``/``timm``), or None."""
    if not cfg.pretrained:
        return None
    path = cfg.pretrained
    if cfg.pretrained in SOURCES:
        with torch.device("meta"):  # only the name and width are needed
            arch = create_model(cfg.model, num_classes=1, **model_kwargs(cfg)).arch
        path = fetch_pretrained(cfg.pretrained, arch["name"], arch["args"].get("width_mult", 1.0))
    overrides = {"dropout": cfg.dropout} if cfg.dropout is not None else {}
    return load_checkpoint(path, **overrides)


def prepare_model(cfg: TrainConfig, task: Task, num_classes: int, pretrained: Checkpoint | None,
                  train_loader: Any = None) -> nn.Module:
    """A fresh model, or the pretrained one with its BatchNorm made trainable and a new head for ``num_classes``."""
    if pretrained is None:
        model = task.build_model(cfg.model, num_classes, **model_kwargs(cfg))
    else:
        model = task.adapt_pretrained(pretrained.model, cfg.model, num_classes, **model_kwargs(cfg))
        if folded_batchnorm(pretrained) and train_loader is not None:
            calibrate_folded_batchnorm(model, train_loader)
    if cfg.bn_momentum is not None:
        set_bn_momentum(model, cfg.bn_momentum)
    return model.train()


def folded_batchnorm(ckpt: Checkpoint) -> bool:
    """TFLite weights come with BatchNorm folded (identity statistics) unless converted with --calibrate."""
    return ckpt.extra.get("source_format") == "tflite" and not ckpt.extra.get("bn_calibration_images")


def calibrate_folded_batchnorm(model: nn.Module, loader: Any, max_images: int = 128) -> None:
    """Give folded BatchNorm layers real statistics from training images, so that training mode (batch
    statistics) does not normalise away the folded scales; eval-mode outputs are unchanged."""
    from mobilenetv2.weights.tflite import calibrate_batchnorm

    batches, count = [], 0
    for images, _ in loader:
        batches.append(images)
        count += len(images)
        if count >= max_images:
            break
    used = calibrate_batchnorm(model, torch.cat(batches)[:max_images])
    log.info("pretrained TFLite weights: BatchNorm statistics calibrated on %d training images", used)


def set_bn_momentum(model: nn.Module, momentum: float) -> None:
    """Give every BatchNorm layer ``momentum`` (the weight of the newest batch in the running statistics)."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = momentum
