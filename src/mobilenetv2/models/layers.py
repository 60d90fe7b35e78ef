"""Small reusable blocks shared by MobileNetV1, V2 and V3 (in the spirit of timm's ``layers/``)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from mobilenetv2.errors import UserError

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu6": lambda: nn.ReLU6(inplace=True),
    "relu": lambda: nn.ReLU(inplace=True),
    "hardswish": lambda: nn.Hardswish(inplace=True),
    "silu": lambda: nn.SiLU(inplace=True),
    "gelu": lambda: nn.GELU(),
    "identity": lambda: nn.Identity(),
}


def make_activation(name: str) -> nn.Module:
    """Build an activation layer by name (see ``ACTIVATIONS``)."""
    if name not in ACTIVATIONS:
        raise UserError(f"unknown activation {name!r}; allowed: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round channels to a multiple of ``divisor``, never below 90% of ``value`` (torchvision/timm rule)."""
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding: asymmetric (more after than before) where stride > 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad_h = _same_pad(x.shape[-2], self.kernel_size[0], self.stride[0], self.dilation[0])
        pad_w = _same_pad(x.shape[-1], self.kernel_size[1], self.stride[1], self.dilation[1])
        if pad_h or pad_w:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return super().forward(x)


def _same_pad(size: int, kernel: int, stride: int, dilation: int) -> int:
    return max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)


def make_conv(
    in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, groups: int = 1, bias: bool = False,
    tf_padding: bool = False, dilation: int = 1,
) -> nn.Conv2d:
    """A Conv2d with PyTorch's symmetric padding, or TF "SAME" padding where it differs (stride > 1)."""
    if tf_padding and stride > 1:
        return Conv2dSame(in_chs, out_chs, kernel_size, stride, 0, dilation, groups=groups, bias=bias)
    padding = dilation * (kernel_size - 1) // 2
    return nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding, dilation, groups=groups, bias=bias)


class ConvBNAct(nn.Sequential):
    """Conv2d, BatchNorm2d and an optional activation; keys ``0``, ``1``, ``2`` as in torchvision."""

    def __init__(
        self, in_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 1, groups: int = 1,
        activation: str | None = "relu6", bn_eps: float = 1e-5, bn_momentum: float = 0.1,
        tf_padding: bool = False, dilation: int = 1,
    ) -> None:
        layers: list[nn.Module] = [
            make_conv(in_chs, out_chs, kernel_size, stride, groups, tf_padding=tf_padding, dilation=dilation),
            nn.BatchNorm2d(out_chs, eps=bn_eps, momentum=bn_momentum),
        ]
        if activation is not None:
            layers.append(make_activation(activation))
        super().__init__(*layers)
        self.out_channels = out_chs


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: global pool, 1x1 reduce, activation, 1x1 expand, gate."""

    def __init__(self, channels: int, squeeze_channels: int, activation: str = "relu", gate: str = "hardsigmoid"):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.act = make_activation(activation)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.gate = nn.Hardsigmoid(inplace=True) if gate == "hardsigmoid" else nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.gate(self.fc2(self.act(self.fc1(F.adaptive_avg_pool2d(x, 1)))))
        return x * scale


class InvertedResidual(nn.Module):
    """MobileNetV2 bottleneck: 1x1 expand, kxk depthwise, optional SE, linear 1x1 projection.

    The projection has no activation (the paper's linear bottleneck); the residual is used only where
    stride is 1 and the input and output channels match. Keys follow torchvision's ``conv.N``.
    """

    def __init__(
        self, in_chs: int, out_chs: int, stride: int, expanded_chs: int, kernel_size: int = 3,
        activation: str = "relu6", se_channels: int = 0, se_gate: str = "hardsigmoid",
        bn_eps: float = 1e-5, bn_momentum: float = 0.1, tf_padding: bool = False,
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise UserError(f"stride must be 1 or 2, got {stride}")
        self.stride = stride
        self.use_res_connect = stride == 1 and in_chs == out_chs
        norm = {"bn_eps": bn_eps, "bn_momentum": bn_momentum}
        layers: list[nn.Module] = []
        if expanded_chs != in_chs:
            layers.append(ConvBNAct(in_chs, expanded_chs, 1, activation=activation, **norm))
        layers.append(
            ConvBNAct(expanded_chs, expanded_chs, kernel_size, stride, groups=expanded_chs,
                      activation=activation, tf_padding=tf_padding, **norm)
        )
        if se_channels:
            layers.append(SqueezeExcite(expanded_chs, se_channels, gate=se_gate))
        layers += [nn.Conv2d(expanded_chs, out_chs, 1, bias=False), nn.BatchNorm2d(out_chs, **_bn_kwargs(norm))]
        self.conv = nn.Sequential(*layers)
        self.out_channels = out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class DepthwiseSeparable(nn.Sequential):
    """MobileNetV1 block: 3x3 depthwise ConvBNAct then 1x1 pointwise ConvBNAct."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, activation: str = "relu", tf_padding: bool = False):
        super().__init__(
            ConvBNAct(in_chs, in_chs, 3, stride, groups=in_chs, activation=activation, tf_padding=tf_padding),
            ConvBNAct(in_chs, out_chs, 1, activation=activation),
        )
        self.stride = stride
        self.out_channels = out_chs


def _bn_kwargs(norm: dict[str, float]) -> dict[str, float]:
    return {"eps": norm["bn_eps"], "momentum": norm["bn_momentum"]}


def check_input(x: torch.Tensor, in_chans: int, min_size: int = 32) -> None:
    """Raise one clear error for an input of the wrong rank, channel count or size."""
    if not isinstance(x, torch.Tensor):
        raise UserError(f"input must be a torch.Tensor of shape (N, {in_chans}, H, W), got {type(x).__name__}")
    if x.dim() != 4:
        raise UserError(f"input must have 4 dimensions (N, {in_chans}, H, W), got shape {tuple(x.shape)}")
    if x.shape[1] != in_chans:
        raise UserError(f"input must have {in_chans} channels (N, {in_chans}, H, W), got shape {tuple(x.shape)}")
    if x.shape[-1] < min_size or x.shape[-2] < min_size:
        raise UserError(f"input resolution must be at least {min_size}x{min_size}, got {tuple(x.shape[-2:])}")
