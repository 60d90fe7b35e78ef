"""Import the published DeepLabv3-MobileNetV2 TFLite models (PASCAL VOC, uint8) as our segmentation checkpoints.

The graph is MobileNetV2 up to the 320-channel bottleneck (dilated past output stride 16), then ``aspp0`` (1x1 conv,
ReLU), ``image_pooling`` (average pool, 1x1 conv, ReLU, resize), their concatenation (pooling first), a 1x1
projection (ReLU), the 1x1 logits and a bilinear resize to the input (``align_corners`` as the file says), ArgMax.
Widths come from the tensors: the half-width file rounds channels to multiples of 1 (12, 72...), not 8.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from mobilenetv2.errors import UserError
from mobilenetv2.models import create_model
from mobilenetv2.spec import read_labels
from mobilenetv2.weights.checkpoint import Checkpoint, CheckpointMeta
from mobilenetv2.weights.foreign import load_state_dict_strict
from mobilenetv2.weights.tflite import (
    BN_EPS,
    NUM_BLOCKS,
    TFLiteLayer,
    _expect,
    _layer,
    _open,
    _put_conv_bn,
    _starts_block,
    input_preprocessing,
)

WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D")
ALLOWED = (*WEIGHTED, "ADD", "AVERAGE_POOL_2D", "RESIZE_BILINEAR", "CONCATENATION", "QUANTIZE", "DEQUANTIZE", "ARG_MAX")
HEAD_LAYERS = 4  # aspp0, image_pooling, concat_projection, logits
WIDTHS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)


def is_deeplab_tflite(path: str | os.PathLike[str]) -> bool:
    """True when the file's graph ends like DeepLab (a RESIZE_BILINEAR to the input and an ARG_MAX or logits)."""
    interpreter, _ = _open(Path(path))
    names = [op["op_name"] for op in interpreter._get_ops_details()]
    return "RESIZE_BILINEAR" in names and "CONCATENATION" in names


def convert_deeplab_tflite(path: str | os.PathLike[str],
                           labels: str | os.PathLike[str] | list[str] | None = None) -> Checkpoint:
    """A segmentation Checkpoint (model, PASCAL class names, preprocessing) from a DeepLabv3-MobileNetV2 TFLite file.

    Its BatchNorm layers are folded: ``weights.tflite.calibrate_checkpoint`` gives them real statistics.
    """
    path = Path(path)
    interpreter, schema_model = _open(path)
    ops = interpreter._get_ops_details()
    for op in ops:
        if op["op_name"] not in ALLOWED:
            raise UserError(f"{path}: operator {op['index']} is {op['op_name']}; not a DeepLabv3-MobileNetV2 "
                            f"(expected only {', '.join(ALLOWED)})")
    if not any(op["op_name"] == "CONCATENATION" for op in ops):
        raise UserError(f"{path}: not a DeepLabv3-MobileNetV2 file (no ASPP concatenation; a classifier? convert it "
                        f"without segmentation in mind, it is detected by its graph)")
    details = interpreter.get_tensor_details()
    producers = {int(t): op for op in ops for t in op["outputs"]}
    layers = [_layer(op, interpreter, details, producers, schema_model) for op in ops if op["op_name"] in WEIGHTED]
    dilations = [_dilation(schema_model, op["index"]) for op in ops if op["op_name"] == "DEPTHWISE_CONV_2D"]
    sd = _backbone(path, layers[:-HEAD_LAYERS])
    pooling_first = _pooling_first(ops, producers)
    _head(path, sd, layers[-HEAD_LAYERS:], pooling_first)
    width, rounding = _width(path, sd)
    num_classes = int(sd["classifier.logits.weight"].shape[0])
    model = create_model("deeplabv3_mobilenet_v2", num_classes=num_classes, width_mult=width, round_nearest=rounding,
                         output_stride=_output_stride(path, layers, dilations), align_corners=_align_corners(schema_model, ops),
                         tf_padding=True, bn_eps=BN_EPS)
    load_state_dict_strict(model, sd, what=f"TFLite file {path.name}")
    model.eval()
    names = read_labels(labels, num_classes) if labels is not None else None
    pre = input_preprocessing(interpreter)
    extra = {"source": str(path), "source_format": "tflite", "bn_calibration_images": 0}
    meta = CheckpointMeta.for_model(model, class_names=names, preprocessing=pre, task="segmentation", extra=extra)
    return Checkpoint(model, meta)


def _backbone(path: Path, layers: list[TFLiteLayer]) -> dict[str, torch.Tensor]:
    """Stem and the 17 inverted-residual blocks onto ``features.*`` (as the classifier importer maps them)."""
    if len(layers) < 2:
        raise UserError(f"{path}: too few convolutions for a DeepLabv3-MobileNetV2")
    sd: dict[str, torch.Tensor] = {}
    _expect(path, layers[0], "CONV_2D", 3, "RELU6", "the stem")
    _put_conv_bn(sd, "features.0.0", "features.0.1", layers[0])
    i, block = 1, 0
    while i + 1 < len(layers) and _starts_block(layers, i):
        block += 1
        prefix = f"features.{block}.conv"
        slot = 0
        if layers[i].op == "CONV_2D":
            _expect(path, layers[i], "CONV_2D", 1, "RELU6", f"block {block}'s expansion")
            _put_conv_bn(sd, f"{prefix}.0.0", f"{prefix}.0.1", layers[i])
            i, slot = i + 1, 1
        _expect(path, layers[i], "DEPTHWISE_CONV_2D", 3, "RELU6", f"block {block}'s depthwise conv")
        _put_conv_bn(sd, f"{prefix}.{slot}.0", f"{prefix}.{slot}.1", layers[i])
        _expect(path, layers[i + 1], "CONV_2D", 1, "NONE", f"block {block}'s linear projection")
        _put_conv_bn(sd, f"{prefix}.{slot + 1}", f"{prefix}.{slot + 2}", layers[i + 1])
        i += 2
    if block != NUM_BLOCKS or i != len(layers):
        raise UserError(f"{path}: found {block} inverted-residual blocks and {len(layers) - i} other layers before the "
                        f"head; DeepLabv3-MobileNetV2 has {NUM_BLOCKS} blocks then a 4-layer head")
    return sd


def _head(path: Path, sd: dict[str, torch.Tensor], layers: list[TFLiteLayer], pooling_first: bool) -> None:
    aspp0, pooling, project, logits = layers
    for layer, role, activation in [(aspp0, "aspp0", "RELU"), (pooling, "image_pooling", "RELU"),
                                    (project, "concat_projection", "RELU"), (logits, "logits", "NONE")]:
        _expect(path, layer, "CONV_2D", 1, activation, f"the head's {role}")
    _put_conv_bn(sd, "classifier.branches.0.0", "classifier.branches.0.1", aspp0)
    _put_conv_bn(sd, "classifier.branches.1.1.0", "classifier.branches.1.1.1", pooling)
    if pooling_first:  # ours concatenates [aspp0, pooling]: swap the projection's input halves
        half = project.weight.shape[1] // 2
        project.weight = project.weight[:, list(range(half, 2 * half)) + list(range(half))].copy()
    _put_conv_bn(sd, "classifier.project.0", "classifier.project.1", project)
    sd["classifier.logits.weight"] = torch.from_numpy(logits.weight.copy())
    sd["classifier.logits.bias"] = torch.from_numpy(logits.bias.copy())


def _pooling_first(ops: list[dict], producers: dict) -> bool:
    """Whether the concatenation's first input comes from the image-pooling branch (through a resize)."""
    concat = next(op for op in ops if op["op_name"] == "CONCATENATION")
    first = producers.get(int(concat["inputs"][0]))
    while first is not None and first["op_name"] in ("QUANTIZE", "DEQUANTIZE"):
        first = producers.get(int(first["inputs"][0]))
    return first is not None and first["op_name"] == "RESIZE_BILINEAR"


def _width(path: Path, sd: dict[str, torch.Tensor]) -> tuple[float, int]:
    """Width multiplier and channel rounding (8, or 1 as in the half-width file) that give the file's channels."""
    from mobilenetv2.models.layers import make_divisible
    from mobilenetv2.models.mobilenet_v2 import MOBILENET_V2_TABLE, STEM_CHANNELS

    observed = [int(sd["features.0.0.weight"].shape[0])] + [int(sd[f"features.{i}.conv.{2 if i == 1 else 3}.weight"].shape[0])
                                                             for i in _row_ends()]
    for rounding in (8, 1):
        for w in WIDTHS:
            if [make_divisible(STEM_CHANNELS * w, rounding)] + [make_divisible(c * w, rounding)
                                                                 for _, c, _, _ in MOBILENET_V2_TABLE] == observed:
                return w, rounding
    raise UserError(f"{path}: channels {observed} fit no MobileNetV2 width multiplier")


def _row_ends() -> list[int]:
    from mobilenetv2.models.mobilenet_v2 import MOBILENET_V2_TABLE

    ends, index = [], 0
    for _, _, n, _ in MOBILENET_V2_TABLE:
        index += n
        ends.append(index)
    return ends


def _output_stride(path: Path, layers: list[TFLiteLayer], dilations: list[int]) -> int:
    """The stride the strided convs reach before dilation takes over (16 for the published files)."""
    stride = 1
    for layer in layers:
        stride *= layer.stride
    if stride not in (8, 16, 32):
        raise UserError(f"{path}: the convolutions stride by {stride} in all; DeepLab uses 8, 16 or 32")
    expected = create_model("deeplabv3_mobilenet_v2", output_stride=stride)
    wanted = [m.dilation[0] for m in expected.features.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    if dilations != wanted:
        raise UserError(f"{path}: depthwise dilations {dilations} are not those of output stride {stride} ({wanted})")
    return stride


def _dilation(schema_model: Any, index: int) -> int:
    from ai_edge_litert import schema_py_generated as schema

    table = schema_model.Subgraphs(0).Operators(index).BuiltinOptions()
    options = schema.DepthwiseConv2DOptions()
    options.Init(table.Bytes, table.Pos)
    return int(options.DilationHFactor())


def _align_corners(schema_model: Any, ops: list[dict]) -> bool:
    """The last RESIZE_BILINEAR's align_corners (TF DeepLab resizes logits with align_corners=True)."""
    from ai_edge_litert import schema_py_generated as schema

    index = [op["index"] for op in ops if op["op_name"] == "RESIZE_BILINEAR"][-1]
    table = schema_model.Subgraphs(0).Operators(index).BuiltinOptions()
    options = schema.ResizeBilinearOptions()
    options.Init(table.Bytes, table.Pos)
    return bool(options.AlignCorners())
