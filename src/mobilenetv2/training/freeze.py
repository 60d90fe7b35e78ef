"""Freezing stages for fine-tuning: no gradients, and BatchNorm statistics kept (eval mode) while training."""

from __future__ import annotations

from torch import nn

from mobilenetv2.errors import UserError


def frozen_stages(model: nn.Module, spec: str | None) -> list[nn.Module]:
    """The stage modules that ``spec`` freezes: 'all' = every stage but the classifier; a stage name = the stem
    up to and including that stage."""
    if not spec:
        return []
    if not hasattr(model, "stage_modules"):
        raise UserError(f"--freeze needs one of this package's models (stage names), not {type(model).__name__}")
    stages = model.stage_modules()
    names = [n for n in stages if n != "classifier"]
    if spec == "all":
        return [stages[n] for n in names]
    if spec not in names:
        raise UserError(f"freeze must be 'all' or a stage name ({', '.join(names)}), got {spec!r}")
    return [stages[n] for n in names[: names.index(spec) + 1]]


def set_frozen(modules: list[nn.Module], frozen: bool = True) -> None:
    """Turn gradients of the modules' parameters off (frozen) or on."""
    for module in modules:
        for p in module.parameters():
            p.requires_grad_(not frozen)


def keep_frozen_bn(modules: list[nn.Module]) -> None:
    """Put the BatchNorm layers of frozen modules in eval mode; call after every ``model.train()``."""
    for module in modules:
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
