"""Import a TensorFlow Lite MobileNetV2 or MobileNetV1 (float, uint8 or int8, BatchNorm folded) as one of our models.

The file is read with LiteRT (``ai_edge_litert``): the interpreter gives the operator graph, the constant
tensors and their (per-tensor or per-channel) quantization; the generated flatbuffer schema it ships gives
each convolution's stride, padding and fused activation. The network is recognised by its structure (V2: inverted
residuals whose 1x1 projections are linear; V1: pairs of a 3x3 depthwise and a 1x1 conv, each with ReLU6, no
residual); width, classes and resolution come from the tensors.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mobilenetv2.errors import UserError
from mobilenetv2.extras import require
from mobilenetv2.models import model_from_arch
from mobilenetv2.models.layers import make_divisible
from mobilenetv2.models.mobilenet_v1 import MOBILENET_V1_TABLE
from mobilenetv2.spec import read_labels
from mobilenetv2.weights.checkpoint import Checkpoint, CheckpointMeta
from mobilenetv2.weights.foreign import CANDIDATE_WIDTHS, infer_arch, load_state_dict_strict
from mobilenetv2.weights.tflite_metadata import input_preprocessing, metadata_labels, read_metadata

log = logging.getLogger(__name__)

LAYER_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
# Operators that carry no weights and need no counterpart in our model (the head's pooling/softmax, dtype casts).
PASSIVE_OPS = ("AVERAGE_POOL_2D", "MEAN", "RESHAPE", "SQUEEZE", "SOFTMAX", "QUANTIZE", "DEQUANTIZE")
NUM_BLOCKS = 17
V1_STEM_CHANNELS = 32
BN_EPS = 1e-5


@dataclass
class TFLiteLayer:
    """One convolution or fully-connected operator, its weights dequantized into PyTorch layout."""

    index: int
    op: str
    weight: np.ndarray
    bias: np.ndarray
    stride: int
    padding: str
    activation: str

    @property
    def kernel(self) -> int:
        return self.weight.shape[-1] if self.weight.ndim == 4 else 1

    def describe(self) -> str:
        shape = "x".join(map(str, self.weight.shape))
        return f"operator {self.index} {self.op} (weights {shape}, stride {self.stride}, activation {self.activation})"


def convert_tflite(
    path: str | os.PathLike[str], labels: str | os.PathLike[str] | list[str] | None = None, drop_background: bool = False,
) -> Checkpoint:
    """Read a TFLite MobileNetV2 or MobileNetV1 into a Checkpoint (model, class names, preprocessing); save it with
    ``save_checkpoint``.

    Its BatchNorm layers are folded (identity statistics): ``calibrate_checkpoint`` gives them real ones, which
    fine-tuning with BatchNorm in training mode needs.
    """
    path = Path(path)
    interpreter, schema_model = _open(path)
    layers, residuals = _read_layers(path, interpreter, schema_model)
    if recognise(path, layers, residuals) == "mobilenet_v1":
        sd = _v1_state_dict(path, layers)
        model = model_from_arch(_v1_arch(path, sd))
    else:
        sd = _state_dict(path, layers)
        model = _v2_model(path, sd, residuals)
    metadata = read_metadata(path)
    if labels is not None:
        class_names = read_labels(labels, model.num_classes)
    else:
        class_names = metadata_labels(path, metadata, model.num_classes)
    if drop_background:
        _drop_background(path, model, sd)
        class_names = class_names[1:] if class_names is not None else None
    load_state_dict_strict(model, sd, what=f"TFLite file {path.name}")
    model.eval()
    pre = input_preprocessing(interpreter, metadata)
    extra = {"source": str(path), "source_format": "tflite", "dropped_background": drop_background, "bn_calibration_images": 0}
    return Checkpoint(model, CheckpointMeta.for_model(model, class_names=class_names, preprocessing=pre, extra=extra))


def recognise(path: Path, layers: list[TFLiteLayer], residuals: int) -> str:
    """``mobilenet_v2`` or ``mobilenet_v1`` by the file's structure; one line naming what was found for anything else."""
    depthwise = [i for i, layer in enumerate(layers) if layer.op == "DEPTHWISE_CONV_2D"]
    after = [layers[i + 1] for i in depthwise if i + 1 < len(layers)]
    pointwise = [layer for layer in after if layer.op == "CONV_2D" and layer.kernel == 1]
    if depthwise and (residuals or any(layer.activation == "NONE" for layer in pointwise)):
        return "mobilenet_v2"
    if depthwise and len(pointwise) == len(depthwise) and all(layer.activation == "RELU6" for layer in pointwise):
        return "mobilenet_v1"
    counts = {op: sum(layer.op == op for layer in layers) for op in LAYER_OPS}
    found = ", ".join(f"{n} {op}" for op, n in counts.items() if n) or "no convolution"
    what = (f"its {len(depthwise)} depthwise convs are followed by {_few(after)}" if depthwise
            else "no depthwise conv")
    raise UserError(f"{path}: this is not a MobileNet V1/V2 file: found {found} and {residuals} residual ADDs, {what} "
                    f"(V1 follows each 3x3 depthwise conv with a 1x1 ReLU6 conv, V2 with a linear 1x1 projection)")


def _few(layers: list[TFLiteLayer]) -> str:
    kinds = sorted({f"{layer.kernel}x{layer.kernel} {layer.op} {layer.activation}" for layer in layers})
    return " / ".join(kinds) if kinds else "nothing"


def _v2_model(path: Path, sd: dict[str, torch.Tensor], residuals: int) -> torch.nn.Module:
    arch = infer_arch(sd, "mobilenet_v2")
    arch["args"] |= {"tf_padding": True, "bn_eps": BN_EPS}
    model = model_from_arch(arch)
    expected_residuals = sum(1 for m in model.features if getattr(m, "use_res_connect", False))
    if residuals != expected_residuals:
        raise UserError(f"{path}: {residuals} residual ADD operators, but MobileNetV2 of this width has {expected_residuals}")
    return model


def calibrate_checkpoint(ckpt: Checkpoint, images: torch.Tensor) -> int:
    """``calibrate_batchnorm`` on a converted checkpoint, recording the number of images in its ``extra``."""
    used = calibrate_batchnorm(ckpt.model, images)
    ckpt.extra["bn_calibration_images"] = used
    ckpt.model.eval()
    return used


@torch.no_grad()
def calibrate_batchnorm(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 32) -> int:
    """Give folded BatchNorm layers the statistics of their inputs on ``images``; eval-mode outputs stay the same.

    A folded BN is ``x + bias`` (mean 0, variance 1 - eps), so in training mode it would normalise the raw conv
    output and wreck the features. With the measured mean m and variance v of x it becomes
    ``(x - m) / sqrt(v + eps) * sqrt(v + eps) + bias + m``: still ``x + bias`` in eval mode, and close to it in
    training mode on similar images. Returns the number of images used.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    sums = {bn: [0.0, 0.0, 0] for bn in norms}

    def record(bn, inputs, _output):
        x = inputs[0].double()
        sums[bn][0] = sums[bn][0] + x.sum(dim=(0, 2, 3))
        sums[bn][1] = sums[bn][1] + (x * x).sum(dim=(0, 2, 3))
        sums[bn][2] += x.numel() // x.shape[1]

    hooks = [bn.register_forward_hook(record) for bn in norms]
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(images), batch_size):
            model(images[start:start + batch_size])
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    for bn, (total, squares, count) in sums.items():
        mean = total / count
        var = (squares / count - mean * mean).clamp_min(bn.eps)
        bn.bias.add_(mean.float())
        bn.running_mean.copy_(mean.float())
        bn.running_var.copy_(var.float())
        bn.weight.copy_((var + bn.eps).sqrt().float())
    return len(images)


def _open(path: Path) -> tuple[Any, Any]:
    require("ai_edge_litert", "interop")
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        # Without delegates the interpreter's nodes are exactly the file's operators, in order.
        interpreter = Interpreter(model_content=data,
                                  experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        model = schema.Model.GetRootAs(data, 0)
        if model.SubgraphsLength() < 1:
            raise ValueError("no subgraph")
    except Exception as exc:  # noqa: BLE001 - LiteRT raises ValueError/RuntimeError and the flatbuffer reader others
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path} is not a readable TFLite model ({reason[:160]})") from exc
    return interpreter, model


def _read_layers(path: Path, interpreter: Any, schema_model: Any) -> tuple[list[TFLiteLayer], int]:
    """The weighted operators in graph order and the number of residual ADDs; anything else is rejected."""
    details = interpreter.get_tensor_details()
    producers = {}
    layers, residuals = [], 0
    for op in interpreter._get_ops_details():
        name = op["op_name"]
        for t in op["outputs"]:
            producers[int(t)] = op
        if name in LAYER_OPS:
            layers.append(_layer(op, interpreter, details, producers, schema_model))
        elif name == "ADD":
            residuals += 1
        elif name not in PASSIVE_OPS:
            raise UserError(f"{path}: this is not a MobileNet V1/V2 file: operator {op['index']} is {name}, which occurs in "
                            f"neither (allowed: {', '.join(LAYER_OPS + ('ADD',) + PASSIVE_OPS)})")
    return layers, residuals


def _layer(op: dict, interpreter: Any, details: list[dict], producers: dict, schema_model: Any) -> TFLiteLayer:
    from ai_edge_litert import schema_py_generated as schema

    x_idx, w_idx, b_idx = (int(i) for i in op["inputs"][:3]) if len(op["inputs"]) >= 3 else (*op["inputs"], -1)
    w_idx = _through_dequantize(w_idx, producers)
    weight = _dequantize(interpreter.get_tensor(w_idx), details[w_idx])
    if b_idx >= 0:
        b_idx = _through_dequantize(b_idx, producers)
        bias_scale = details[x_idx]["quantization_parameters"]["scales"][:1] * details[w_idx]["quantization_parameters"]["scales"]
        bias = _dequantize(interpreter.get_tensor(b_idx), details[b_idx], scales=bias_scale)
    else:
        bias = np.zeros(weight.shape[0], dtype=np.float32)
    stride, padding, activation = _options(schema_model, op["index"], schema)
    if op["op_name"] == "CONV_2D":
        weight = weight.transpose(0, 3, 1, 2)  # OHWI -> OIHW
    elif op["op_name"] == "DEPTHWISE_CONV_2D":
        weight = weight.transpose(3, 0, 1, 2)  # 1HWC -> C1HW
    return TFLiteLayer(op["index"], op["op_name"], np.ascontiguousarray(weight), bias, stride, padding, activation)


def _through_dequantize(index: int, producers: dict) -> int:
    """Float models with float16 weights feed them through a DEQUANTIZE operator: read its input."""
    op = producers.get(index)
    return int(op["inputs"][0]) if op is not None and op["op_name"] == "DEQUANTIZE" else index


def _dequantize(values: np.ndarray, detail: dict, scales: np.ndarray | None = None) -> np.ndarray:
    """Real values of a constant tensor: ``(q - zero_point) * scale`` per tensor or per channel."""
    if values.dtype in (np.float32, np.float16):
        return values.astype(np.float32)
    qp = detail["quantization_parameters"]
    scales = qp["scales"] if scales is None else scales
    if len(scales) == 0:
        raise UserError(f"tensor {detail['name']!r} is {values.dtype} but carries no quantization scale")
    shape = [1] * values.ndim
    if len(scales) > 1:
        shape[qp["quantized_dimension"] if len(qp["scales"]) > 1 else 0] = len(scales)
    zero_points = qp["zero_points"] if len(qp["zero_points"]) else np.zeros(1, dtype=np.int64)
    zp_shape = shape if len(zero_points) > 1 else [1] * values.ndim
    centred = values.astype(np.float64) - zero_points.astype(np.float64).reshape(zp_shape)
    real = centred * scales.astype(np.float64).reshape(shape)
    return real.astype(np.float32)


def _options(schema_model: Any, index: int, schema: Any) -> tuple[int, str, str]:
    """Stride, padding and fused activation of one operator, from the file's flatbuffer (via LiteRT's schema)."""
    op = schema_model.Subgraphs(0).Operators(index)
    kind = op.BuiltinOptionsType()
    classes = {schema.BuiltinOptions.Conv2DOptions: schema.Conv2DOptions,
               schema.BuiltinOptions.DepthwiseConv2DOptions: schema.DepthwiseConv2DOptions,
               schema.BuiltinOptions.FullyConnectedOptions: schema.FullyConnectedOptions}
    if kind not in classes:
        return 1, "SAME", "NONE"
    table = op.BuiltinOptions()
    options = classes[kind]()
    options.Init(table.Bytes, table.Pos)
    activation = _enum_name(schema.ActivationFunctionType, options.FusedActivationFunction())
    if kind == schema.BuiltinOptions.FullyConnectedOptions:
        return 1, "SAME", activation
    if options.StrideH() != options.StrideW():
        raise UserError(f"operator {index} has unequal strides {options.StrideH()}x{options.StrideW()}; MobileNets have none")
    return int(options.StrideH()), _enum_name(schema.Padding, options.Padding()), activation


def _enum_name(enum: type, value: int) -> str:
    return next((k for k, v in vars(enum).items() if v == value and not k.startswith("_")), str(value))


def _state_dict(path: Path, layers: list[TFLiteLayer]) -> dict[str, torch.Tensor]:
    """Map stem, 17 inverted-residual blocks, the 1x1 head conv and the classifier onto our keys."""
    if not layers:
        raise UserError(f"{path}: no convolution in the file; not a MobileNetV2")
    stem, i = layers[0], 1
    _expect(path, stem, "CONV_2D", 3, "RELU6", "the stem")
    sd: dict[str, torch.Tensor] = {}
    _put_conv_bn(sd, "features.0.0", "features.0.1", stem)
    block = 0
    while i + 1 < len(layers) and _starts_block(layers, i):
        block += 1
        prefix = f"features.{block}.conv"
        if layers[i].op == "CONV_2D":
            _expect(path, layers[i], "CONV_2D", 1, "RELU6", f"block {block}'s expansion")
            _put_conv_bn(sd, f"{prefix}.0.0", f"{prefix}.0.1", layers[i])
            i, slot = i + 1, 1
        else:
            slot = 0
        _expect(path, layers[i], "DEPTHWISE_CONV_2D", 3, "RELU6", f"block {block}'s depthwise conv")
        _put_conv_bn(sd, f"{prefix}.{slot}.0", f"{prefix}.{slot}.1", layers[i])
        _expect(path, layers[i + 1], "CONV_2D", 1, "NONE", f"block {block}'s linear projection")
        _put_conv_bn(sd, f"{prefix}.{slot + 1}", f"{prefix}.{slot + 2}", layers[i + 1])
        i += 2
    if block != NUM_BLOCKS:
        where = layers[i].describe() if i < len(layers) else "the end of the graph"
        raise UserError(f"{path}: found {block} inverted-residual blocks before {where}; MobileNetV2 has {NUM_BLOCKS}")
    if len(layers) - i != 2:
        raise UserError(f"{path}: expected the 1x1 head conv and the classifier after block {NUM_BLOCKS}, "
                        f"found {len(layers) - i} weighted operators")
    head, logits = layers[i], layers[i + 1]
    _expect(path, head, "CONV_2D", 1, "RELU6", "the 1x1 head conv")
    _put_conv_bn(sd, f"features.{NUM_BLOCKS + 1}.0", f"features.{NUM_BLOCKS + 1}.1", head)
    _put_classifier(path, sd, logits)
    return sd


def _put_classifier(path: Path, sd: dict[str, torch.Tensor], logits: TFLiteLayer) -> None:
    """The classifier, a 1x1 conv or a fully-connected layer without activation, as our linear layer."""
    if logits.activation != "NONE" or logits.kernel != 1:
        raise UserError(f"{path}: the classifier, {logits.describe()}, should be a linear 1x1 conv or fully-connected layer")
    sd["classifier.1.weight"] = torch.from_numpy(logits.weight.reshape(logits.weight.shape[0], -1).copy())
    sd["classifier.1.bias"] = torch.from_numpy(logits.bias.copy())


def _v1_state_dict(path: Path, layers: list[TFLiteLayer]) -> dict[str, torch.Tensor]:
    """Map MobileNetV1's stem, 13 depthwise separable blocks and classifier onto our keys (``features.b.0``: the
    depthwise conv, ``features.b.1``: the pointwise conv)."""
    sd: dict[str, torch.Tensor] = {}
    _expect(path, layers[0], "CONV_2D", 3, "RELU6", "the stem", stride=2)
    _put_conv_bn(sd, "features.0.0", "features.0.1", layers[0])
    i = 1
    for block, (_, stride) in enumerate(MOBILENET_V1_TABLE, start=1):
        if i + 1 >= len(layers) or layers[i].op != "DEPTHWISE_CONV_2D":
            where = layers[i].describe() if i < len(layers) else "the end of the graph"
            raise UserError(f"{path}: found {block - 1} depthwise separable blocks before {where}; "
                            f"MobileNetV1 has {len(MOBILENET_V1_TABLE)}")
        _expect(path, layers[i], "DEPTHWISE_CONV_2D", 3, "RELU6", f"block {block}'s depthwise conv", stride=stride)
        _expect(path, layers[i + 1], "CONV_2D", 1, "RELU6", f"block {block}'s pointwise conv", stride=1)
        _put_conv_bn(sd, f"features.{block}.0.0", f"features.{block}.0.1", layers[i])
        _put_conv_bn(sd, f"features.{block}.1.0", f"features.{block}.1.1", layers[i + 1])
        i += 2
    if len(layers) - i != 1:
        raise UserError(f"{path}: expected only the classifier after block {len(MOBILENET_V1_TABLE)}, "
                        f"found {len(layers) - i} weighted operators")
    _put_classifier(path, sd, layers[i])
    return sd


def _v1_arch(path: Path, sd: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Our ``mobilenet_v1`` with the file's width (channels rounded to 8 as published, else to 1), classes and TF
    padding; ReLU6 as in TensorFlow's models."""
    observed = [int(sd["features.0.0.weight"].shape[0])]
    observed += [int(sd[f"features.{b}.1.0.weight"].shape[0]) for b in range(1, len(MOBILENET_V1_TABLE) + 1)]
    for rounding in (8, 1):
        for width in CANDIDATE_WIDTHS:
            rows = [make_divisible(c * width, rounding) for c, _ in MOBILENET_V1_TABLE]
            if [make_divisible(V1_STEM_CHANNELS * width, rounding), *rows] == observed:
                args = {"num_classes": int(sd["classifier.1.weight"].shape[0]), "width_mult": width,
                        "in_chans": int(sd["features.0.0.weight"].shape[1]), "activation": "relu6",
                        "round_nearest": rounding, "tf_padding": True}
                return {"name": "mobilenet_v1", "args": args}
    raise UserError(f"{path}: the channels {observed} match no MobileNetV1 width multiplier")


def _starts_block(layers: list[TFLiteLayer], i: int) -> bool:
    if layers[i].op == "DEPTHWISE_CONV_2D":
        return True
    return layers[i].op == "CONV_2D" and i + 1 < len(layers) and layers[i + 1].op == "DEPTHWISE_CONV_2D"


def _expect(path: Path, layer: TFLiteLayer, op: str, kernel: int, activation: str, role: str,
            stride: int | None = None) -> None:
    if layer.op != op or layer.kernel != kernel or layer.activation != activation:
        raise UserError(f"{path}: {role} should be a {kernel}x{kernel} {op} with activation {activation}, "
                        f"found {layer.describe()}")
    if stride is not None and layer.stride != stride:
        raise UserError(f"{path}: {role} should have stride {stride}, found {layer.describe()}")
    if kernel > 1 and layer.padding != "SAME":
        raise UserError(f"{path}: {role} ({layer.describe()}) uses {layer.padding} padding; MobileNet uses SAME")


def _put_conv_bn(sd: dict[str, torch.Tensor], conv: str, bn: str, layer: TFLiteLayer) -> None:
    """The folded conv, and a BatchNorm that is exactly ``x + bias`` (running_var = 1 - eps)."""
    channels = layer.weight.shape[0]
    sd[f"{conv}.weight"] = torch.from_numpy(layer.weight.copy())
    sd[f"{bn}.weight"] = torch.ones(channels)
    sd[f"{bn}.bias"] = torch.from_numpy(layer.bias.copy())
    sd[f"{bn}.running_mean"] = torch.zeros(channels)
    sd[f"{bn}.running_var"] = torch.full((channels,), 1.0 - BN_EPS)
    sd[f"{bn}.num_batches_tracked"] = torch.tensor(0)


def _drop_background(path: Path, model: torch.nn.Module, sd: dict[str, torch.Tensor]) -> None:
    outputs = sd["classifier.1.weight"].shape[0]
    if outputs != 1001:
        raise UserError(f"--drop-background needs a classifier with 1001 outputs (background + 1000), {path.name} has {outputs}")
    sd["classifier.1.weight"] = sd["classifier.1.weight"][1:].clone()
    sd["classifier.1.bias"] = sd["classifier.1.bias"][1:].clone()
    model.reset_classifier(1000)
