"""The input's normalisation as app runtimes take it: one scale for all channels (Core ML's image scale, MediaPipe's
single std) and the per-channel rest of the std folded into the first convolution's weights, exact since zero padding
is zero on both sides. Shared by the Core ML and LiteRT exports."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mobilenetv2.backends.coreml import channel_stats
from mobilenetv2.errors import UserError
from mobilenetv2.models.fuse import fuse_bn
from mobilenetv2.spec import Preprocessing


@dataclass(frozen=True)
class InputScaling:
    """``scale * pixel + bias`` (one scale, one bias per channel) and the per-channel factors folded into the first
    convolution: together the preprocessing's ``(pixel / 255 - mean) / std``."""

    scale: float
    bias: tuple[float, ...]
    factors: tuple[float, ...]

    @classmethod
    def of(cls, pre: Preprocessing, channels: int, runtime: str = "Core ML") -> InputScaling:
        if channels not in (1, 3):
            raise UserError(f"{runtime}'s image inputs are RGB or grayscale; this model takes {channels} channels")
        channel_stats(pre, channels)  # one line when the mean and std do not have one value per channel
        common = float(np.mean(pre.std))
        return cls(1.0 / (255.0 * common), tuple(-m / common for m in pre.mean), tuple(common / s for s in pre.std))

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 NHWC pixels -> ``scale * p + bias``, float32 NCHW (what the folded graph takes)."""
        scaled = pixels.astype(np.float32) * np.float32(self.scale) + np.asarray(self.bias, np.float32)
        return np.ascontiguousarray(scaled.transpose(0, 3, 1, 2))


def fold_first_conv(model: nn.Module, scaling: InputScaling, what: str) -> nn.Module:
    """The BatchNorm-folded copy of ``model`` with ``scaling``'s per-channel factors in its first conv's weights."""
    folded = fuse_bn(model)
    first = next((m for m in folded.modules() if isinstance(m, nn.Conv2d)), None)
    if first is None or first.in_channels != model.in_chans or first.groups != 1:
        raise UserError(f"{what} needs a model whose first layer is a full convolution over the input channels")
    with torch.no_grad():
        first.weight.mul_(torch.tensor(scaling.factors, dtype=first.weight.dtype).view(1, -1, 1, 1))
    return folded
