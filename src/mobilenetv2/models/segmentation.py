"""Semantic segmentation on a MobileNetV2 backbone: DeepLabv3 (section 6.3 of the paper) and LR-ASPP.

The backbone is MobileNetV2's ``features`` up to the 320-channel bottleneck (no 1x1 conv to 1280), with the
strides past ``output_stride`` turned into dilations as TensorFlow's ``mobilenet`` does (the block that would
stride runs at stride 1, the blocks after it dilate), so the keys match a classifier's and the published
DeepLab weights. Outputs are logits at the input's resolution, ``[N, num_classes, H, W]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mobilenetv2.errors import UserError
from mobilenetv2.models.base import MobileNet, init_weights
from mobilenetv2.models.checks import check_common_args
from mobilenetv2.models.layers import Conv2dSame, ConvBNAct, InvertedResidual, check_input
from mobilenetv2.models.mobilenet_v2 import MobileNetV2

OUTPUT_STRIDES = (8, 16, 32)
HEADS = ("published", "aspp")
ASPP_RATES_AT_16 = (6, 12, 18)  # DeepLabv3's atrous rates at output stride 16 (doubled at 8)
HEAD_CHANNELS = 256
LRASPP_CHANNELS = 128


def mobilenet_v2_backbone(width_mult: float, output_stride: int, in_chans: int = 3, tf_padding: bool = False,
                          bn_eps: float = 1e-5, round_nearest: int = 8) -> MobileNetV2:
    """MobileNetV2 without its last 1x1 conv, dilated past ``output_stride``; ``features`` keys as a classifier's."""
    if output_stride not in OUTPUT_STRIDES:
        raise UserError(f"output_stride must be one of {', '.join(map(str, OUTPUT_STRIDES))}, got {output_stride}")
    net = MobileNetV2(num_classes=1, width_mult=width_mult, in_chans=in_chans, tf_padding=tf_padding, bn_eps=bn_eps,
                      round_nearest=round_nearest)
    head = net.stages.pop()  # head_conv: 1x1 to 1280, not part of DeepLab's backbone
    net.features = net.features[: head.indices[0]]
    dilate(net, output_stride)
    return net


def dilate(net: MobileNetV2, output_stride: int) -> None:
    """TF mobilenet's rule: once the stride reaches ``output_stride``, strided blocks run at stride 1 and the
    dilation rate of every later depthwise conv grows by the stride they gave up."""
    stride, rate, deepest = 1, 1, {}
    for index, block in enumerate(net.features):
        block_stride = block.stride if isinstance(block, InvertedResidual) else block[0].stride[0]
        if stride == output_stride and isinstance(block, InvertedResidual):
            _set_depthwise(block, 1, rate)
            rate *= block_stride
        else:
            stride *= block_stride
        if stride >= 4:
            deepest[stride] = {"index": index, "stride": stride, "channels": block.out_channels, "name": f"features.{index}"}
    net.feature_info = list(deepest.values())


def _set_depthwise(block: InvertedResidual, stride: int, dilation: int) -> None:
    conv = next(m for m in block.modules() if isinstance(m, nn.Conv2d) and m.groups > 1)
    conv.stride, conv.dilation = (stride, stride), (dilation, dilation)
    if not isinstance(conv, Conv2dSame):  # SAME padding is computed from the dilation at run time
        conv.padding = (dilation * (conv.kernel_size[0] - 1) // 2,) * 2
    block.stride = stride


class ImagePooling(nn.Sequential):
    """Global average pooling, 1x1 conv, BatchNorm, ReLU, then back to the feature map's size."""

    def __init__(self, in_chs: int, out_chs: int, bn_eps: float) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), ConvBNAct(in_chs, out_chs, 1, activation="relu", bn_eps=bn_eps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(super().forward(x), size=x.shape[-2:], mode="bilinear", align_corners=False)


class SeparableAtrous(nn.Sequential):
    """3x3 dilated depthwise + 1x1 pointwise, each with BatchNorm and ReLU (DeepLab's separable ASPP branch)."""

    def __init__(self, in_chs: int, out_chs: int, rate: int, bn_eps: float) -> None:
        super().__init__(ConvBNAct(in_chs, in_chs, 3, groups=in_chs, dilation=rate, activation="relu", bn_eps=bn_eps),
                         ConvBNAct(in_chs, out_chs, 1, activation="relu", bn_eps=bn_eps))


class DeepLabHead(nn.Module):
    """Parallel branches, concatenated, projected to 256 and classified by a 1x1 conv.

    ``published``: the released DeepLabv3-MobileNetV2 (1x1 conv + image pooling). ``aspp``: the full ASPP of
    DeepLabv3 (1x1 conv, three separable atrous convs, image pooling).
    """

    def __init__(self, in_chs: int, num_classes: int, head: str, output_stride: int, dropout: float, bn_eps: float) -> None:
        super().__init__()
        branches: list[nn.Module] = [ConvBNAct(in_chs, HEAD_CHANNELS, 1, activation="relu", bn_eps=bn_eps)]
        if head == "aspp":
            scale = 16 // output_stride if output_stride <= 16 else 1
            rates = [r * scale if output_stride <= 16 else max(1, r // 2) for r in ASPP_RATES_AT_16]
            branches += [SeparableAtrous(in_chs, HEAD_CHANNELS, rate, bn_eps) for rate in rates]
        branches.append(ImagePooling(in_chs, HEAD_CHANNELS, bn_eps))
        self.branches = nn.ModuleList(branches)
        self.project = ConvBNAct(HEAD_CHANNELS * len(branches), HEAD_CHANNELS, 1, activation="relu", bn_eps=bn_eps)
        self.dropout = nn.Dropout(dropout)
        self.logits = nn.Conv2d(HEAD_CHANNELS, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.project(torch.cat([branch(x) for branch in self.branches], dim=1))
        return self.logits(self.dropout(x))


class AuxHead(nn.Sequential):
    """A small FCN head on the stride-16 features, trained with a down-weighted loss and dropped at inference."""

    def __init__(self, in_chs: int, num_classes: int, bn_eps: float) -> None:
        super().__init__(ConvBNAct(in_chs, in_chs, 3, activation="relu", bn_eps=bn_eps), nn.Dropout(0.1),
                         nn.Conv2d(in_chs, num_classes, 1))


class SegmentationModel(MobileNet):
    """A MobileNetV2 ``features`` backbone and a dense head; ``forward`` gives logits at the input's size.

    With ``aux_loss`` the training-mode forward returns ``(logits, aux_logits)``; evaluation always returns logits.
    """

    aux: nn.Module | None
    default_input_size = 513  # PASCAL VOC's crop, where the paper counts multiply-adds

    def _backbone(self, width_mult: float, output_stride: int, in_chans: int, tf_padding: bool, bn_eps: float,
                  round_nearest: int) -> None:
        net = mobilenet_v2_backbone(width_mult, output_stride, in_chans, tf_padding, bn_eps, round_nearest)
        self.features, self.stages, self.feature_info = net.features, net.stages, net.feature_info
        self.in_chans, self.output_stride = in_chans, output_stride
        self.num_features = self.feature_info[-1]["channels"]

    def _aux_head(self, aux_loss: bool, num_classes: int, bn_eps: float) -> None:
        index, channels = self._aux_feature()
        self.aux_index = index
        self.aux = AuxHead(channels, num_classes, bn_eps) if aux_loss else None

    def _aux_feature(self) -> tuple[int, int]:
        """The end of the 96-channel stage (the last at stride 16 in the plain network): index and channels."""
        index = self.stages[-3].indices[-1]
        return index, self.features[index].out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        check_input(x, self.in_chans)
        size = x.shape[-2:]
        taps = self.taps()
        kept: dict[int, torch.Tensor] = {}
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in taps:
                kept[index] = x
        logits = self.upsample(self.decode(x, kept), size)
        if self.training and self.aux is not None:
            return logits, self.upsample(self.aux(kept[self.aux_index]), size)
        return logits

    def taps(self) -> set[int]:
        return {self.aux_index} if self.training and self.aux is not None else set()

    def decode(self, x: torch.Tensor, kept: dict[int, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def upsample(self, logits: torch.Tensor, size: torch.Size) -> torch.Tensor:
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=self.align_corners)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        raise UserError(f"{self.arch['name']} is a segmentation model: call it on images (it has no pooled head)")

    def reset_classifier(self, num_classes: int) -> None:
        """New 1x1 classifiers (main and auxiliary) for ``num_classes`` classes, e.g. to fine-tune on new classes."""
        self._new_logits(num_classes)
        if self.aux is not None:
            self.aux[-1] = nn.Conv2d(self.aux[-1].in_channels, num_classes, 1)
        self.num_classes = num_classes
        self.arch["args"]["num_classes"] = num_classes
        self._init_logits()

    def _init_logits(self) -> None:
        """Small logits at the start, as a classifier's last layer: Kaiming-initialised 1x1 convs to the classes give
        logits large enough (initial loss ~4 instead of ln C) to stall training from scratch for epochs."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m.out_channels == self.num_classes and m.kernel_size == (1, 1):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def _new_logits(self, num_classes: int) -> None:
        raise NotImplementedError


class DeepLabV3(SegmentationModel):
    """DeepLabv3 on MobileNetV2: backbone at ``output_stride`` 16 (or 8), ``head`` "published" or "aspp"."""

    def __init__(self, num_classes: int = 21, width_mult: float = 1.0, output_stride: int = 16, head: str = "published",
                 in_chans: int = 3, dropout: float = 0.1, aux_loss: bool = False, align_corners: bool = False,
                 tf_padding: bool = False, bn_eps: float = 1e-5, round_nearest: int = 8) -> None:
        super().__init__()
        check_common_args(num_classes=num_classes, width_mult=width_mult, in_chans=in_chans, dropout=dropout)
        if head not in HEADS:
            raise UserError(f"head must be one of {', '.join(HEADS)}, got {head!r}")
        self.arch = {"name": "deeplabv3_mobilenet_v2", "args": {
            "num_classes": num_classes, "width_mult": width_mult, "output_stride": output_stride, "head": head,
            "in_chans": in_chans, "dropout": dropout, "aux_loss": aux_loss, "align_corners": align_corners,
            "tf_padding": tf_padding, "bn_eps": bn_eps, "round_nearest": round_nearest}}
        self.num_classes, self.align_corners = num_classes, align_corners
        self._backbone(width_mult, output_stride, in_chans, tf_padding, bn_eps, round_nearest)
        self.classifier = DeepLabHead(self.num_features, num_classes, head, output_stride, dropout, bn_eps)
        self._aux_head(aux_loss, num_classes, bn_eps)
        init_weights(self)
        self._init_logits()

    def decode(self, x: torch.Tensor, kept: dict[int, torch.Tensor]) -> torch.Tensor:
        return self.classifier(x)

    def _new_logits(self, num_classes: int) -> None:
        self.classifier.logits = nn.Conv2d(HEAD_CHANNELS, num_classes, 1)


class LRASPPHead(nn.Module):
    """LR-ASPP (Howard et al., "Searching for MobileNetV3", section 6.3): a 1x1 conv gated by a pooled sigmoid
    branch on the deep features, upsampled to the stride-8 features, each classified and summed."""

    def __init__(self, low_chs: int, high_chs: int, num_classes: int, bn_eps: float) -> None:
        super().__init__()
        self.cbr = ConvBNAct(high_chs, LRASPP_CHANNELS, 1, activation="relu", bn_eps=bn_eps)
        self.scale = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(high_chs, LRASPP_CHANNELS, 1, bias=False), nn.Sigmoid())
        self.low_classifier = nn.Conv2d(low_chs, num_classes, 1)
        self.high_classifier = nn.Conv2d(LRASPP_CHANNELS, num_classes, 1)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        x = self.cbr(high) * self.scale(high)
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.low_classifier(low) + self.high_classifier(x)


class LRASPP(SegmentationModel):
    """LR-ASPP on MobileNetV2: stride-8 and stride-16 (dilated) features, as torchvision's ``lraspp_mobilenet_v3``."""

    def __init__(self, num_classes: int = 21, width_mult: float = 1.0, output_stride: int = 16, in_chans: int = 3,
                 aux_loss: bool = False, align_corners: bool = False, tf_padding: bool = False, bn_eps: float = 1e-5,
                 dropout: float = 0.0, round_nearest: int = 8) -> None:
        super().__init__()
        check_common_args(num_classes=num_classes, width_mult=width_mult, in_chans=in_chans, dropout=dropout)
        if output_stride != 16:
            raise UserError(f"lraspp_mobilenet_v2 uses output stride 16 (stride-8 and stride-16 features), got {output_stride}")
        self.arch = {"name": "lraspp_mobilenet_v2", "args": {
            "num_classes": num_classes, "width_mult": width_mult, "output_stride": output_stride, "in_chans": in_chans,
            "aux_loss": aux_loss, "align_corners": align_corners, "tf_padding": tf_padding, "bn_eps": bn_eps,
            "dropout": dropout, "round_nearest": round_nearest}}
        self.num_classes, self.align_corners = num_classes, align_corners
        self._backbone(width_mult, output_stride, in_chans, tf_padding, bn_eps, round_nearest)
        low = next(i for i in self.feature_info if i["stride"] == 8)
        self.low_index = low["index"]
        self.classifier = LRASPPHead(low["channels"], self.num_features, num_classes, bn_eps)
        self._aux_head(aux_loss, num_classes, bn_eps)
        init_weights(self)
        self._init_logits()

    def taps(self) -> set[int]:
        return super().taps() | {self.low_index}

    def decode(self, x: torch.Tensor, kept: dict[int, torch.Tensor]) -> torch.Tensor:
        return self.classifier(kept[self.low_index], x)

    def _new_logits(self, num_classes: int) -> None:
        head = self.classifier
        head.low_classifier = nn.Conv2d(head.low_classifier.in_channels, num_classes, 1)
        head.high_classifier = nn.Conv2d(LRASPP_CHANNELS, num_classes, 1)
