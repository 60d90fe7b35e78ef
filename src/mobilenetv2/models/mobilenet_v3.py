"""MobileNetV3-Small and -Large (Howard et al., 2019): V2's bottleneck with SE, hard-swish and 5x5 kernels."""

from __future__ import annotations

from torch import nn

from mobilenetv2.models.base import MobileNet, init_weights
from mobilenetv2.models.builder import FeatureBuilder
from mobilenetv2.models.checks import check_choice, check_common_args
from mobilenetv2.models.layers import ConvBNAct, InvertedResidual, make_divisible

# (kernel, expanded channels, output channels, squeeze-excite, activation, stride), as in torchvision.
V3_TABLES: dict[str, list[tuple[int, int, int, bool, str, int]]] = {
    "large": [
        (3, 16, 16, False, "relu", 1), (3, 64, 24, False, "relu", 2), (3, 72, 24, False, "relu", 1),
        (5, 72, 40, True, "relu", 2), (5, 120, 40, True, "relu", 1), (5, 120, 40, True, "relu", 1),
        (3, 240, 80, False, "hardswish", 2), (3, 200, 80, False, "hardswish", 1),
        (3, 184, 80, False, "hardswish", 1), (3, 184, 80, False, "hardswish", 1),
        (3, 480, 112, True, "hardswish", 1), (3, 672, 112, True, "hardswish", 1),
        (5, 672, 160, True, "hardswish", 2), (5, 960, 160, True, "hardswish", 1),
        (5, 960, 160, True, "hardswish", 1),
    ],
    "small": [
        (3, 16, 16, True, "relu", 2), (3, 72, 24, False, "relu", 2), (3, 88, 24, False, "relu", 1),
        (5, 96, 40, True, "hardswish", 2), (5, 240, 40, True, "hardswish", 1), (5, 240, 40, True, "hardswish", 1),
        (5, 120, 48, True, "hardswish", 1), (5, 144, 48, True, "hardswish", 1),
        (5, 288, 96, True, "hardswish", 2), (5, 576, 96, True, "hardswish", 1), (5, 576, 96, True, "hardswish", 1),
    ],
}
V3_LAST_CHANNELS = {"large": 1280, "small": 1024}
V3_BN = {"bn_eps": 0.001, "bn_momentum": 0.01}


class MobileNetV3(MobileNet):
    """MobileNetV3 ``variant`` "small" or "large"; layout as torchvision's, with ``conv`` for its ``block``."""

    def __init__(
        self, variant: str = "large", num_classes: int = 1000, width_mult: float = 1.0, in_chans: int = 3,
        dropout: float = 0.2, round_nearest: int = 8, tf_padding: bool = False,
    ) -> None:
        super().__init__()
        check_choice("variant", variant, list(V3_TABLES))
        check_common_args(num_classes=num_classes, width_mult=width_mult, in_chans=in_chans, dropout=dropout)
        self.arch = {"name": "mobilenet_v3", "args": {
            "variant": variant, "num_classes": num_classes, "width_mult": width_mult, "in_chans": in_chans,
            "dropout": dropout, "round_nearest": round_nearest, "tf_padding": tf_padding,
        }}
        self.in_chans, self.num_classes = in_chans, num_classes

        def scale(c: int) -> int:
            return make_divisible(c * width_mult, round_nearest)

        in_chs = scale(16)
        b = FeatureBuilder()
        b.stage("stem", "conv2d 3x3", None, in_chs, 1, 2)
        b.add(ConvBNAct(in_chans, in_chs, 3, 2, activation="hardswish", tf_padding=tf_padding, **V3_BN), 2, in_chs)
        for kernel, expanded, out, use_se, act, s in V3_TABLES[variant]:
            expanded, out = scale(expanded), scale(out)
            se_chs = make_divisible(expanded // 4, 8) if use_se else 0
            operator = f"bneck {kernel}x{kernel}" + (" SE" if use_se else "") + f" {act}"
            b.stage(f"block{len(b)}", operator, expanded, out, 1, s)
            b.add(InvertedResidual(
                in_chs, out, s, expanded, kernel, activation=act, se_channels=se_chs, tf_padding=tf_padding, **V3_BN
            ), s, out)
            in_chs = out
        last_conv = 6 * in_chs
        b.stage("head_conv", "conv2d 1x1", None, last_conv, 1, 1)
        b.add(ConvBNAct(in_chs, last_conv, 1, activation="hardswish", **V3_BN), 1, last_conv)
        self.features, self.stages, self.feature_info = b.build()
        self.num_features = last_conv
        hidden = scale(V3_LAST_CHANNELS[variant])
        self.classifier = nn.Sequential(
            nn.Linear(last_conv, hidden), nn.Hardswish(inplace=True), nn.Dropout(p=dropout), nn.Linear(hidden, num_classes)
        )
        init_weights(self)
