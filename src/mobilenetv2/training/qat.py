"""Quantization-aware training (contract C5) that keeps the model's class and state-dict keys.

Weights are fake-quantised per output channel (symmetric int8, as ``quantize_static`` does) inside the
Conv2d/Linear forward; activations after each ReLU6, each linear-bottleneck projection and each residual sum are
fake-quantised per tensor (uint8, moving-average min/max) by forward hooks. The observers live in the modules'
``__dict__``, not as sub-modules, so ``state_dict()`` is unchanged and checkpoints saved during QAT load as plain
models. Per-channel symmetric weight quantisation commutes with BatchNorm folding, so the weights trained here are
the ones the int8 ONNX model gets after ``fuse_bn``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.ao.quantization import FakeQuantize, MovingAverageMinMaxObserver

from mobilenetv2.models.layers import InvertedResidual

_OBSERVER = "_qat_observer"


def fake_quantize_weight(weight: torch.Tensor) -> torch.Tensor:
    """Symmetric per-output-channel int8 fake quantisation with a straight-through gradient."""
    amax = weight.detach().abs().flatten(1).amax(dim=1).clamp_min(1e-8)
    scale = (amax / 127).float()
    zero_point = torch.zeros_like(scale, dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(weight, scale, zero_point, 0, -127, 127)


class QatConv2d(nn.Conv2d):
    def _conv_forward(self, input, weight, bias):  # noqa: A002 - PyTorch's signature
        return super()._conv_forward(input, fake_quantize_weight(weight), bias)


class QatLinear(nn.Linear):
    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002
        return F.linear(input, fake_quantize_weight(self.weight), self.bias)


_QAT_CLASSES: dict[type, type] = {nn.Conv2d: QatConv2d}


def _qat_class(conv_class: type) -> type:
    """QatConv2d for nn.Conv2d; a QAT twin for its subclasses (e.g. Conv2dSame) so their forward is kept."""
    if conv_class not in _QAT_CLASSES:
        _QAT_CLASSES[conv_class] = type(f"Qat{conv_class.__name__}", (QatConv2d, conv_class), {})
    return _QAT_CLASSES[conv_class]


def _activation_fake_quant() -> FakeQuantize:
    return FakeQuantize(observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255, dtype=torch.quint8,
                        qscheme=torch.per_tensor_affine)


def _fake_quant_output(module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
    return _apply_observer(module, output)


def _fake_quant_input(module: nn.Module, inputs):
    return (_apply_observer(module, inputs[0]), *inputs[1:])


def _apply_observer(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    fq: FakeQuantize = module.__dict__[_OBSERVER]
    if fq.scale.device != x.device:
        fq.to(x.device)
    if module.training:
        fq.enable_observer()
    else:
        fq.disable_observer()
        if torch.isinf(fq.activation_post_process.min_val).all():
            return x  # never observed: nothing to quantise against yet
    return fq(x)


def _observe(module: nn.Module, hook, pre: bool = False) -> None:
    object.__setattr__(module, _OBSERVER, _activation_fake_quant())  # bypasses sub-module registration
    if pre:
        module.register_forward_pre_hook(hook)
    else:
        module.register_forward_hook(hook)


def prepare_qat(model: nn.Module) -> nn.Module:
    """Make ``model`` (in place, and returned) train with int8 fake quantisation; keys stay the same."""
    if is_qat(model):
        return model
    first_conv = True
    for module in list(model.modules()):
        if type(module) is nn.Linear:
            module.__class__ = QatLinear
        elif isinstance(module, nn.Conv2d) and not isinstance(module, QatConv2d):
            module.__class__ = _qat_class(type(module))
            if first_conv:
                _observe(module, _fake_quant_input, pre=True)
                first_conv = False
        if isinstance(module, (nn.ReLU6, nn.ReLU, nn.Hardswish, InvertedResidual)):
            _observe(module, _fake_quant_output)
        elif isinstance(module, nn.Sequential) and len(module) and isinstance(module[-1], nn.BatchNorm2d):
            _observe(module[-1], _fake_quant_output)  # linear bottleneck: the projection's BN output
    model.__dict__["_qat_prepared"] = True
    return model


def is_qat(model: nn.Module) -> bool:
    return bool(model.__dict__.get("_qat_prepared"))


def finalize_qat(model: nn.Module) -> nn.Module:
    """Undo ``prepare_qat`` in place: plain layers, no hooks or observers; the trained weights stay."""
    model = getattr(model, "module", model)
    model = getattr(model, "_orig_mod", model)
    for module in model.modules():
        if isinstance(module, QatConv2d):
            module.__class__ = next(c for c in type(module).__mro__ if issubclass(c, nn.Conv2d) and not issubclass(c, QatConv2d))
        elif isinstance(module, QatLinear):
            module.__class__ = nn.Linear
        for hooks in (module._forward_hooks, module._forward_pre_hooks):
            for key in [k for k, fn in hooks.items() if fn in (_fake_quant_output, _fake_quant_input)]:
                del hooks[key]
        module.__dict__.pop(_OBSERVER, None)
    model.__dict__.pop("_qat_prepared", None)
    return model
