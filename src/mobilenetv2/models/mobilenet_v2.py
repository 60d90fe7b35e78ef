"""MobileNetV2 exactly as in Table 2 of Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks"."""

from __future__ import annotations

from torch import nn

from mobilenetv2.models.base import MobileNet, init_weights
from mobilenetv2.models.builder import FeatureBuilder
from mobilenetv2.models.checks import check_common_args
from mobilenetv2.models.layers import ConvBNAct, InvertedResidual, make_divisible

# Table 2 of the paper: expansion t, output channels c, repeats n, first stride s.
MOBILENET_V2_TABLE: list[tuple[int, int, int, int]] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]
STEM_CHANNELS = 32
LAST_CHANNELS = 1280


class MobileNetV2(MobileNet):
    """MobileNetV2 with the paper's knobs: width multiplier, expansion factor, activation, optional SE.

    Keys match torchvision's ``mobilenet_v2`` so its state_dicts load unchanged.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        in_chans: int = 3,
        expansion: int = 6,
        dropout: float = 0.2,
        activation: str = "relu6",
        se_ratio: float = 0.0,
        round_nearest: int = 8,
        tf_padding: bool = False,
        bn_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        check_common_args(num_classes=num_classes, width_mult=width_mult, in_chans=in_chans, dropout=dropout)
        self.arch = {"name": "mobilenet_v2", "args": {
            "num_classes": num_classes, "width_mult": width_mult, "in_chans": in_chans, "expansion": expansion,
            "dropout": dropout, "activation": activation, "se_ratio": se_ratio, "round_nearest": round_nearest,
            "tf_padding": tf_padding, "bn_eps": bn_eps,
        }}
        self.in_chans, self.num_classes = in_chans, num_classes
        norm = {"bn_eps": bn_eps}
        in_chs = make_divisible(STEM_CHANNELS * width_mult, round_nearest)
        self.num_features = make_divisible(LAST_CHANNELS * max(1.0, width_mult), round_nearest)

        b = FeatureBuilder()
        b.stage("stem", "conv2d 3x3", None, in_chs, 1, 2)
        b.add(ConvBNAct(in_chans, in_chs, 3, 2, activation=activation, tf_padding=tf_padding, **norm), 2, in_chs)
        for row, (t, c, n, s) in enumerate(MOBILENET_V2_TABLE, start=1):
            t = t if t == 1 else expansion  # the table's 6 is the expansion factor; the first row stays 1
            out_chs = make_divisible(c * width_mult, round_nearest)
            b.stage(f"stage{row}", "bottleneck", t, out_chs, n, s)
            for i in range(n):
                stride = s if i == 0 else 1
                expanded = int(round(in_chs * t))
                se_chs = make_divisible(expanded * se_ratio, round_nearest) if se_ratio > 0 else 0
                b.add(InvertedResidual(
                    in_chs, out_chs, stride, expanded, activation=activation, se_channels=se_chs,
                    tf_padding=tf_padding, **norm,
                ), stride, out_chs)
                in_chs = out_chs
        b.stage("head_conv", "conv2d 1x1", None, self.num_features, 1, 1)
        b.add(ConvBNAct(in_chs, self.num_features, 1, activation=activation, **norm), 1, self.num_features)
        self.features, self.stages, self.feature_info = b.build()
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(self.num_features, num_classes))
        init_weights(self)

