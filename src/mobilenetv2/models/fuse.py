"""Fold BatchNorm into the preceding convolution: the same function with fewer ops, for export and inference."""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fuse_bn(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` in which every Conv2d followed by BatchNorm2d (inside an nn.Sequential)
    absorbs the BatchNorm, which becomes an Identity. ``model`` itself is left unchanged."""
    fused = copy.deepcopy(model).eval()
    for module in fused.modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (_, conv), (bn_name, bn) in zip(children, children[1:]):
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
                folded = fuse_conv_bn_eval(conv, bn)
                conv.weight, conv.bias = folded.weight, folded.bias
                setattr(module, bn_name, nn.Identity())
    return fused


def count_batchnorms(model: nn.Module) -> int:
    """How many BatchNorm layers remain (0 after ``fuse_bn`` on our models)."""
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
