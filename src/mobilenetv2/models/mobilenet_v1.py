"""MobileNetV1 (Howard et al., 2017): a stem conv and 13 depthwise separable blocks."""

from __future__ import annotations

from torch import nn

from mobilenetv2.models.base import MobileNet, init_weights
from mobilenetv2.models.builder import FeatureBuilder
from mobilenetv2.models.checks import check_common_args
from mobilenetv2.models.layers import ConvBNAct, DepthwiseSeparable, make_divisible

# Table 1 of the V1 paper: (output channels, stride) of each depthwise separable block.
MOBILENET_V1_TABLE: list[tuple[int, int]] = [
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
]


class MobileNetV1(MobileNet):
    """MobileNetV1 with a width multiplier; ReLU by default, as in the V1 paper."""

    def __init__(
        self, num_classes: int = 1000, width_mult: float = 1.0, in_chans: int = 3, dropout: float = 0.2,
        activation: str = "relu", round_nearest: int = 8, tf_padding: bool = False,
    ) -> None:
        super().__init__()
        check_common_args(num_classes=num_classes, width_mult=width_mult, in_chans=in_chans, dropout=dropout)
        self.arch = {"name": "mobilenet_v1", "args": {
            "num_classes": num_classes, "width_mult": width_mult, "in_chans": in_chans, "dropout": dropout,
            "activation": activation, "round_nearest": round_nearest, "tf_padding": tf_padding,
        }}
        self.in_chans, self.num_classes = in_chans, num_classes
        in_chs = make_divisible(32 * width_mult, round_nearest)
        b = FeatureBuilder()
        b.stage("stem", "conv2d 3x3", None, in_chs, 1, 2)
        b.add(ConvBNAct(in_chans, in_chs, 3, 2, activation=activation, tf_padding=tf_padding), 2, in_chs)
        for c, s in MOBILENET_V1_TABLE:
            out_chs = make_divisible(c * width_mult, round_nearest)
            last = b.stages[-1]
            if s == 1 and last.s == 1 and last.c == out_chs:  # a repeat of the row above: one stage, n + 1
                b.extend_stage()
            else:
                b.stage(f"stage{len(b.stages)}", "dw-separable", None, out_chs, 1, s)
            b.add(DepthwiseSeparable(in_chs, out_chs, s, activation=activation, tf_padding=tf_padding), s, out_chs)
            in_chs = out_chs
        self.features, self.stages, self.feature_info = b.build()
        self.num_features = in_chs
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(in_chs, num_classes))
        init_weights(self)
