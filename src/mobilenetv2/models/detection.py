"""SSDLite on MobileNetV2 (section 6.2 of the paper), as the TensorFlow Object Detection API builds it.

Features come from the stride-16 expansion output of the 15th layer (the 576-channel 1x1 expansion of the first
160-channel bottleneck) and from the final 1x1 conv (stride 32); four extra layers (1x1 conv to half the depth,
3x3 depthwise at stride 2, 1x1 conv to 512, 256, 256, 128 channels) make the 5x5, 3x3, 2x2 and 1x1 maps at 300x300.
Every map has depthwise-separable box and class predictors (3x3 depthwise + BatchNorm + ReLU6, then a 1x1 conv).
Anchors are TF's ``ssd_anchor_generator`` (scales 0.2 to 0.95, aspect ratios 1, 2, 1/2, 3, 1/3 and one more at
the intermediate scale; three anchors on the first map), 1917 of them at 300x300.

``forward`` returns one tensor ``[N, anchors, 4 + num_classes]``: in training mode the box regression codes
(dx, dy, dw, dh, scaled by 10/10/5/5) and the class logits; in evaluation mode the decoded boxes (xyxy, normalised
to the input, so they hold for any image size) and the class logits. Class 0 is the background.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torchvision.models.detection._utils import BoxCoder

from mobilenetv2.errors import UserError
from mobilenetv2.models.base import MobileNet, init_weights
from mobilenetv2.models.checks import check_common_args
from mobilenetv2.models.layers import ConvBNAct, InvertedResidual, check_input
from mobilenetv2.models.mobilenet_v1 import MobileNetV1
from mobilenetv2.models.mobilenet_v2 import MobileNetV2
from mobilenetv2.models.mobilenet_v3 import MobileNetV3

BOX_CODER_WEIGHTS = (10.0, 10.0, 5.0, 5.0)  # TF's faster_rcnn_box_coder scales (y, x, h, w) = (10, 10, 5, 5)
EXTRA_DEPTHS = (512, 256, 256, 128)
MIN_DEPTH = 16  # TF's min_depth for the extra layers under a width multiplier
MIN_SCALE, MAX_SCALE = 0.2, 0.95
ASPECT_RATIOS = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)
HEAD_BN = {"bn_eps": 1e-3, "bn_momentum": 0.1}  # TF's epsilon; its decay 0.97 (momentum 0.03) lags in short runs
BACKGROUND_PRIOR = 0.99  # the class logits start by saying "background" at this probability
BACKBONES = ("mobilenet_v2", "mobilenet_v1", "mobilenet_v3_large")
SCORE_CONVERTERS = ("softmax", "sigmoid")  # ours; TF's Object Detection API models score each class by a sigmoid
AnchorSpecs = list[list[tuple[float, float]]]  # per map, the (scale, aspect ratio) of each anchor at a location


def anchor_shapes(num_maps: int = 6, specs: AnchorSpecs | None = None) -> AnchorSpecs:
    """(scale, aspect ratio) of the anchors at each location of each map (TF's ``ssd_anchor_generator``); ``specs``,
    when given (an imported model's own, e.g. aspect ratio 0.3333 rather than 1/3), are returned as they are."""
    if specs is not None:
        return [[(float(s), float(r)) for s, r in layer] for layer in specs]
    scales = [MIN_SCALE + (MAX_SCALE - MIN_SCALE) * i / (num_maps - 1) for i in range(num_maps)] + [1.0]
    shapes = [[(0.1, 1.0), (scales[0], 2.0), (scales[0], 0.5)]]  # reduce_boxes_in_lowest_layer
    for i in range(1, num_maps):
        shapes.append([(scales[i], r) for r in ASPECT_RATIOS] + [(math.sqrt(scales[i] * scales[i + 1]), 1.0)])
    return shapes


def ssd_anchors(feature_sizes: list[tuple[int, int]], specs: AnchorSpecs | None = None) -> torch.Tensor:
    """Anchors [A, 4] (xyxy, normalised to the image) in the order the predictors emit them: map, row, column, shape."""
    per_map = []
    for (height, width), shapes in zip(feature_sizes, anchor_shapes(len(feature_sizes), specs)):
        cy = (torch.arange(height, dtype=torch.float64) + 0.5) / height
        cx = (torch.arange(width, dtype=torch.float64) + 0.5) / width
        wh = torch.tensor([(s * math.sqrt(r), s / math.sqrt(r)) for s, r in shapes], dtype=torch.float64)
        centres = torch.stack(torch.meshgrid(cx, cy, indexing="xy"), dim=-1).reshape(-1, 1, 2)  # row-major (y, x)
        centres = centres.expand(-1, len(shapes), 2)
        half = wh[None].expand_as(centres) / 2
        per_map.append(torch.cat([centres - half, centres + half], dim=-1).reshape(-1, 4))
    return torch.cat(per_map).float()


def feature_sizes(image_size: int, num_maps: int = 6) -> list[tuple[int, int]]:
    """The maps' sides for a square input: stride 16 and 32, then each extra layer halves (rounding up)."""
    sides = [math.ceil(image_size / 16), math.ceil(image_size / 32)]
    while len(sides) < num_maps:
        sides.append(math.ceil(sides[-1] / 2))
    return [(s, s) for s in sides]


def anchors_for_count(count: int, num_maps: int = 6, specs: AnchorSpecs | None = None) -> torch.Tensor:
    """The anchors (ours, or ``specs``: an imported model's) of a square input whose predictions number ``count``
    (the count fixes the maps' sides)."""
    per_location = [len(s) for s in anchor_shapes(num_maps, specs)]
    for first in range(1, 1024):
        sides = [first, math.ceil(first / 2)]
        while len(sides) < num_maps:
            sides.append(math.ceil(sides[-1] / 2))
        total = sum(s * s * a for s, a in zip(sides, per_location))
        if total == count:
            return ssd_anchors([(s, s) for s in sides], specs)
        if total > count:
            break
    raise UserError(f"{count} box predictions do not match the anchors of a square SSDLite input")


def box_coder() -> BoxCoder:
    return BoxCoder(BOX_CODER_WEIGHTS)


class ExtraLayer(nn.Sequential):
    """TF's depthwise extra feature layer: 1x1 conv to depth/2, 3x3 depthwise at stride 2, 1x1 conv to depth."""

    def __init__(self, in_chs: int, out_chs: int, tf_padding: bool = False) -> None:
        mid = out_chs // 2
        super().__init__(ConvBNAct(in_chs, mid, 1, activation="relu6", **HEAD_BN),
                         ConvBNAct(mid, mid, 3, 2, groups=mid, activation="relu6", tf_padding=tf_padding, **HEAD_BN),
                         ConvBNAct(mid, out_chs, 1, activation="relu6", **HEAD_BN))


class SeparablePredictor(nn.Sequential):
    """SSDLite's predictor: 3x3 depthwise + BatchNorm + ReLU6, then a 1x1 conv to anchors x outputs."""

    def __init__(self, in_chs: int, out_chs: int) -> None:
        super().__init__(ConvBNAct(in_chs, in_chs, 3, groups=in_chs, activation="relu6", **HEAD_BN),
                         nn.Conv2d(in_chs, out_chs, 1))


class SSDLiteHead(nn.Module):
    """Box and class predictors for every map; outputs [N, anchors, 4] and [N, anchors, num_classes]."""

    def __init__(self, channels: list[int], anchors_per_location: list[int], num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.box = nn.ModuleList(SeparablePredictor(c, a * 4) for c, a in zip(channels, anchors_per_location))
        self.cls = nn.ModuleList(SeparablePredictor(c, a * num_classes) for c, a in zip(channels, anchors_per_location))

    def forward(self, maps: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        boxes = torch.cat([_flatten(p(x), 4) for p, x in zip(self.box, maps)], dim=1)
        logits = torch.cat([_flatten(p(x), self.num_classes) for p, x in zip(self.cls, maps)], dim=1)
        return boxes, logits

    def init_weights(self, boxes: bool = True) -> None:
        """TF's small initial predictors (``boxes``: the box ones too); the background starts at ``BACKGROUND_PRIOR``."""
        for conv in [p[-1] for p in ((*self.box, *self.cls) if boxes else self.cls)]:
            nn.init.normal_(conv.weight, 0, 0.03)
            nn.init.zeros_(conv.bias)
        for p in self.cls:
            bias = p[-1].bias.detach().view(-1, self.num_classes)
            bias[:, 0] = math.log(BACKGROUND_PRIOR * max(self.num_classes - 1, 1) / (1 - BACKGROUND_PRIOR))


def _flatten(x: torch.Tensor, size: int) -> torch.Tensor:
    """[N, A * size, H, W] -> [N, H * W * A, size] (row, column, anchor order, as the anchors)."""
    n = x.shape[0]
    return x.permute(0, 2, 3, 1).reshape(n, -1, size)


def _classifier_backbone(name: str, width_mult: float, in_chans: int, tf_padding: bool) -> MobileNet:
    if name == "mobilenet_v2":
        return MobileNetV2(num_classes=1, width_mult=width_mult, in_chans=in_chans, tf_padding=tf_padding)
    if name == "mobilenet_v1":
        return MobileNetV1(num_classes=1, width_mult=width_mult, in_chans=in_chans, tf_padding=tf_padding)
    if name == "mobilenet_v3_large":
        return MobileNetV3("large", num_classes=1, width_mult=width_mult, in_chans=in_chans, tf_padding=tf_padding)
    raise UserError(f"backbone must be one of {', '.join(BACKBONES)}, got {name!r}")


def _stride16_tap(features: nn.Sequential) -> tuple[int, bool, int]:
    """Where the stride-16 map is taken: (index of the block that goes to stride 32, whether its expansion output
    is the tap (inverted residuals: TF's ``layer_15/expansion_output``) rather than the previous block's output,
    channels of the tap)."""
    stride = 1
    for index, block in enumerate(features):
        block_stride = block.stride if hasattr(block, "stride") and isinstance(block.stride, int) else block[0].stride[0]
        if stride == 16 and block_stride == 2:
            expand = block.conv[0] if isinstance(block, InvertedResidual) else None
            if isinstance(expand, ConvBNAct) and expand[0].kernel_size == (1, 1):
                return index, True, expand[0].out_channels
            return index, False, features[index - 1].out_channels
        stride *= block_stride
    raise UserError("the backbone never reaches stride 32")


class SSDLite(MobileNet):
    """SSDLite on a MobileNet backbone (V2 by default; V1 and V3-Large for comparison).

    ``anchor_specs`` (per map, (scale, aspect ratio) pairs) and ``score_converter`` ("sigmoid") reproduce an imported
    TF Object Detection API model; by default our anchors and softmax scores.
    """

    def __init__(self, num_classes: int = 91, width_mult: float = 1.0, image_size: int = 300,
                 backbone: str = "mobilenet_v2", in_chans: int = 3, tf_padding: bool = False,
                 anchor_specs: AnchorSpecs | None = None, score_converter: str = "softmax") -> None:
        super().__init__()
        check_common_args(num_classes=num_classes, width_mult=width_mult, in_chans=in_chans, dropout=0.0)
        if score_converter not in SCORE_CONVERTERS:
            raise UserError(f"score_converter must be one of {', '.join(SCORE_CONVERTERS)}, got {score_converter!r}")
        if num_classes < 2:
            raise UserError(f"num_classes counts the background: at least 2 for detection, got {num_classes}")
        if image_size < 64:
            raise UserError(f"image_size must be at least 64 pixels for SSDLite's six maps, got {image_size}")
        self.arch = {"name": f"ssdlite_{backbone}", "args": {
            "num_classes": num_classes, "width_mult": width_mult, "image_size": image_size, "backbone": backbone,
            "in_chans": in_chans, "tf_padding": tf_padding}}
        if anchor_specs is not None:  # only then, so that our own checkpoints' metadata stays as it was
            self.arch["args"]["anchor_specs"] = [[[float(s), float(r)] for s, r in layer] for layer in anchor_specs]
        if score_converter != "softmax":
            self.arch["args"]["score_converter"] = score_converter
        self.score_converter = score_converter
        self.in_chans, self.num_classes, self.default_input_size = in_chans, num_classes, image_size
        net = _classifier_backbone(backbone, width_mult, in_chans, tf_padding)
        self.features, self.stages, self.feature_info = net.features, net.stages, net.feature_info
        self.num_features = net.num_features
        self.tap_index, self.tap_expansion, tap_channels = _stride16_tap(self.features)
        depths = [max(int(d * width_mult), MIN_DEPTH) for d in EXTRA_DEPTHS]
        self.extras = nn.ModuleList(ExtraLayer(i, o, tf_padding) for i, o in zip([self.num_features, *depths], depths))
        channels = [tap_channels, self.num_features, *depths]
        self.anchor_specs = anchor_shapes(len(channels), anchor_specs)
        if len(self.anchor_specs) != len(channels) or not all(self.anchor_specs):
            raise UserError(f"anchor_specs must give the anchors of each of the {len(channels)} maps")
        self.classifier = SSDLiteHead(channels, [len(s) for s in self.anchor_specs], num_classes)
        self.coder = box_coder()
        self._anchors: dict[tuple, torch.Tensor] = {}
        init_weights(self)
        self.classifier.init_weights()

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The six maps the predictors read, from stride 16 to the 1x1 map (at 300x300)."""
        for layer in self.features[: self.tap_index]:
            x = layer(x)
        block = self.features[self.tap_index]
        if self.tap_expansion:  # the expansion output inside the block (no residual: the block has stride 2)
            first = block.conv[0](x)
            maps, x = [first], block.conv[1:](first)
        else:
            maps, x = [x], block(x)
        for layer in self.features[self.tap_index + 1:]:
            x = layer(x)
        maps.append(x)
        for extra in self.extras:
            x = extra(x)
            maps.append(x)
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_chans, min_size=64)
        maps = self.feature_maps(x)
        regression, logits = self.classifier(maps)
        if self.training:
            return torch.cat([regression, logits], dim=-1)
        anchors = self.anchors([tuple(m.shape[-2:]) for m in maps], x.device)
        boxes = self.coder.decode_single(regression.reshape(-1, 4), anchors.repeat(x.shape[0], 1))
        return torch.cat([boxes.reshape(regression.shape), logits], dim=-1)

    def anchors(self, sizes: list[tuple[int, int]], device: torch.device) -> torch.Tensor:
        key = (tuple(sizes), str(device))
        if key not in self._anchors:
            self._anchors[key] = ssd_anchors(list(sizes), self.anchor_specs).to(device)
        return self._anchors[key]

    def use_score_converter(self, name: str) -> None:
        """Score classes by ``name`` from now on (fine-tuning an imported sigmoid model under our softmax loss)."""
        if name not in SCORE_CONVERTERS:
            raise UserError(f"score_converter must be one of {', '.join(SCORE_CONVERTERS)}, got {name!r}")
        self.score_converter = name
        self.arch["args"].pop("score_converter", None)
        if name != "softmax":
            self.arch["args"]["score_converter"] = name

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        raise UserError(f"{self.arch['name']} is a detection model: call it on images (it has no pooled head)")

    def reset_classifier(self, num_classes: int) -> None:
        """New class predictors for ``num_classes`` classes (background included), e.g. to fine-tune."""
        head = self.classifier
        per_location = [p[-1].out_channels // head.num_classes for p in head.cls]
        for p, a in zip(head.cls, per_location):
            p[-1] = nn.Conv2d(p[-1].in_channels, a * num_classes, 1)
        head.num_classes = self.num_classes = num_classes
        self.arch["args"]["num_classes"] = num_classes
        head.init_weights(boxes=False)
