"""Optimisers (SGD, RMSprop, AdamW) with per-stage learning rates, and warm-up + decay schedules."""

from __future__ import annotations

import math

import torch
from torch import nn

from mobilenetv2.training.config import TrainConfig


def stage_lr_mults(model: nn.Module, cfg: TrainConfig) -> list[tuple[str, nn.Module, float]]:
    """(stage name, module, lr multiplier) from input to output: the head gets 1, the backbone
    ``backbone_lr_mult``, decayed by ``layer_decay`` per stage away from the head."""
    if not hasattr(model, "stage_modules"):
        return [("model", model, 1.0)]
    stages = list(model.stage_modules().items())
    last = len(stages) - 1
    return [(name, module, 1.0 if name == "classifier" else cfg.backbone_lr_mult * cfg.layer_decay ** (last - i))
            for i, (name, module) in enumerate(stages)]


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """One group per stage and decay kind; biases and normalisation weights (1-D) get no weight decay."""
    groups, seen = [], set()
    for name, module, mult in stage_lr_mults(model, cfg):
        params = [p for p in module.parameters() if id(p) not in seen]
        seen.update(id(p) for p in params)
        decay = [p for p in params if p.ndim > 1]
        no_decay = [p for p in params if p.ndim <= 1]
        for ps, wd in ((decay, cfg.weight_decay), (no_decay, 0.0)):
            if ps:
                groups.append({"params": ps, "lr": cfg.lr * mult, "weight_decay": wd, "stage": name, "lr_mult": mult})
    rest = [p for p in model.parameters() if id(p) not in seen]
    if rest:  # parameters outside the named stages (e.g. a wrapper's) train at the base lr
        groups.append({"params": rest, "lr": cfg.lr, "weight_decay": cfg.weight_decay, "stage": "other", "lr_mult": 1.0})
    return groups


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, lr=cfg.lr, alpha=cfg.alpha, eps=cfg.eps or 1e-3, momentum=cfg.momentum)
    return torch.optim.AdamW(groups, lr=cfg.lr, eps=cfg.eps or 1e-8)


POLY_POWER = 0.9


def lr_factor(step: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """Multiplier of the peak lr at optimiser step ``step``: linear warm-up, then the schedule."""
    total = cfg.epochs * steps_per_epoch
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    if step < warmup:
        return (step + 1) / warmup
    epoch = step // steps_per_epoch
    if cfg.schedule == "cosine":
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    if cfg.schedule == "poly":  # DeepLab's: (1 - progress) ** 0.9, per step
        progress = (step - warmup) / max(1, total - warmup)
        return max(0.0, 1 - min(1.0, progress)) ** POLY_POWER
    if cfg.schedule == "step":
        return cfg.gamma ** (epoch // cfg.step_epochs)
    if cfg.schedule == "exponential":
        return cfg.gamma ** epoch
    return 1.0


def build_scheduler(optimizer: torch.optim.Optimizer, steps_per_epoch: int, cfg: TrainConfig):
    """A per-step LambdaLR (stepped after every optimiser step)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, steps_per_epoch, cfg))
