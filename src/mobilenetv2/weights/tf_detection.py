"""Import an SSDLite-MobileNetV2 frozen graph of the TensorFlow Object Detection API (``frozen_inference_graph.pb``).

The GraphDef is read with tensorboard's protobuf classes (no TensorFlow); the weights are its ``Const`` nodes:
``FeatureExtractor/MobilenetV2/...`` (stem, ``expanded_conv[_k]``, ``Conv_1``), the extra layers
``layer_19_{1,2}_Conv2d_{2..5}_*`` and ``BoxPredictor_N/{BoxEncoding,Class}Predictor[_depthwise]``. BatchNorm stays
BatchNorm (TF's epsilon absorbed into the variance where ours differs); box codes are reordered from TF's
(ty, tx, th, tw) to our (tx, ty, tw, th); the anchors' (scale, aspect ratio) come from ``MultipleGridAnchorGenerator``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch

from mobilenetv2.errors import UserError, first_line
from mobilenetv2.extras import require
from mobilenetv2.models import create_model
from mobilenetv2.models.detection import BOX_CODER_WEIGHTS, AnchorSpecs
from mobilenetv2.spec import Preprocessing, read_labels
from mobilenetv2.weights.checkpoint import Checkpoint, CheckpointMeta
from mobilenetv2.weights.foreign import check_state_dict, load_state_dict_strict

PREFIX = "FeatureExtractor/MobilenetV2/"
NUM_HEADS = 6
NUM_EXTRAS = 4
NUM_BLOCKS = 17
WIDTHS = (1.0, 0.75, 0.5, 0.35, 1.4, 1.3, 0.25)
INPUT_SIZE = 300  # the API's fixed_shape_resizer for SSDLite-MobileNetV2
BOX_ORDER = [1, 0, 3, 2]  # TF's (ty, tx, th, tw) -> our (dx, dy, dw, dh)
DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64}
COCO_IDS = {1: "person", 2: "bicycle", 3: "car", 4: "motorcycle", 5: "airplane", 6: "bus", 7: "train", 8: "truck",
            9: "boat", 10: "traffic light", 11: "fire hydrant", 13: "stop sign", 14: "parking meter", 15: "bench",
            16: "bird", 17: "cat", 18: "dog", 19: "horse", 20: "sheep", 21: "cow", 22: "elephant", 23: "bear",
            24: "zebra", 25: "giraffe", 27: "backpack", 28: "umbrella", 31: "handbag", 32: "tie", 33: "suitcase",
            34: "frisbee", 35: "skis", 36: "snowboard", 37: "sports ball", 38: "kite", 39: "baseball bat",
            40: "baseball glove", 41: "skateboard", 42: "surfboard", 43: "tennis racket", 44: "bottle",
            46: "wine glass", 47: "cup", 48: "fork", 49: "knife", 50: "spoon", 51: "bowl", 52: "banana", 53: "apple",
            54: "sandwich", 55: "orange", 56: "broccoli", 57: "carrot", 58: "hot dog", 59: "pizza", 60: "donut",
            61: "cake", 62: "chair", 63: "couch", 64: "potted plant", 65: "bed", 67: "dining table", 70: "toilet",
            72: "tv", 73: "laptop", 74: "mouse", 75: "remote", 76: "keyboard", 77: "cell phone", 78: "microwave",
            79: "oven", 80: "toaster", 81: "sink", 82: "refrigerator", 84: "book", 85: "clock", 86: "vase",
            87: "scissors", 88: "teddy bear", 89: "hair drier", 90: "toothbrush"}

Consts = dict[str, np.ndarray]


def convert_tf_detection(path: str | os.PathLike[str],
                         labels: str | os.PathLike[str] | list[str] | None = None) -> Checkpoint:
    """A detection Checkpoint (``ssdlite_mobilenet_v2``, sigmoid scores, TF's anchors) from a frozen graph."""
    path = Path(path)
    graph = read_graph(path)
    consts = graph_consts(graph)
    check_layout(path, consts)
    return detection_checkpoint(path, consts, anchor_specs(path, consts), labels,
                                extra={"source_format": "tf_frozen_graph", "nms_iou": _nms_iou(graph),
                                       "box_coder_scales": _box_coder_scales(path, consts)})


def detection_checkpoint(path: Path, weights: Consts, specs: AnchorSpecs,
                         labels: str | os.PathLike[str] | list[str] | None, *, extra: dict,
                         widths: tuple[float, ...] = WIDTHS, score_converter: str = "sigmoid",
                         num_classes: int | None = None) -> Checkpoint:
    """The Checkpoint of an SSDLite-MobileNetV2 whose variables (by the API's names) are ``weights``; ``num_classes``,
    when given (a pipeline.config's, background included), must be the class heads'."""
    check_layout(path, weights)
    sd = _state_dict(path, weights)
    found = _num_classes(path, weights)
    if num_classes is not None and num_classes != found:
        raise UserError(f"{path}: the config says {num_classes - 1} classes but the class predictors hold {found - 1} "
                        "(besides the background)")
    model = _build(path, sd, found, specs, widths, score_converter)
    model.eval()
    meta = CheckpointMeta.for_model(
        model, task="detection", class_names=class_names(path, labels, found),
        preprocessing=Preprocessing(input_size=INPUT_SIZE, crop_pct=1.0, mean=(0.5,) * 3, std=(0.5,) * 3,
                                    resize_mode="squash"),
        extra={"source": str(path), **extra})
    return Checkpoint(model, meta)


def describe(ckpt: Checkpoint) -> str:
    """One line on what the conversion took from the graph besides the weights."""
    from mobilenetv2.models.detection import feature_sizes, ssd_anchors

    size = ckpt.preprocessing.input_size
    count = len(ssd_anchors(feature_sizes(size), ckpt.model.anchor_specs))
    averages = ", the variables' moving averages" if ckpt.extra.get("use_moving_averages") else ""
    return (f"{ckpt.model.score_converter} class scores, TF's {count} anchors at {size}x{size}, box coder scales "
            f"{ckpt.extra['box_coder_scales']}, NMS IoU {ckpt.extra['nms_iou']}{averages}")


def read_graph(path: Path):
    """The GraphDef of ``path`` (tensorboard's protobuf classes); one line if the file is not one."""
    graph_pb2 = require("tensorboard.compat.proto.graph_pb2", "tensorboard")
    from google.protobuf.message import DecodeError

    graph = graph_pb2.GraphDef()
    try:
        graph.ParseFromString(path.read_bytes())
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise UserError(f"{path}: not a TensorFlow GraphDef, or truncated ({first_line(exc, 120)})") from exc
    if not graph.node:
        raise UserError(f"{path}: the TensorFlow graph holds no nodes")
    return graph


def graph_consts(graph) -> Consts:
    """Every float/int ``Const`` node's value as a numpy array, by node name."""
    out = {}
    for node in graph.node:
        if node.op != "Const":
            continue
        tensor = node.attr["value"].tensor
        dtype = DTYPES.get(tensor.dtype)
        if dtype is None:
            continue
        shape = [d.size for d in tensor.tensor_shape.dim]
        if tensor.tensor_content:
            value = np.frombuffer(tensor.tensor_content, dtype)
        else:
            vals = tensor.float_val or tensor.double_val or tensor.int_val or tensor.int64_val
            value = np.array(vals, dtype)
            if value.size == 1 and int(np.prod(shape)) > 1:
                value = np.full(shape, value[0], dtype)
        if value.size != int(np.prod(shape)):
            continue
        out[node.name] = value.reshape(shape)
    return out


def check_layout(path: Path, consts: Consts) -> None:
    """One line unless the graph is an SSD with a MobileNetV2 feature extractor and six separable box predictors."""
    weights = [n for n in consts if n.endswith(("/weights", "/depthwise_weights"))]
    extractors = sorted({n.split("/")[1] for n in weights if n.startswith("FeatureExtractor/")})
    if not any(n.startswith(PREFIX) for n in weights):
        found = (f"feature extractor {', '.join(extractors)}" if extractors else
                 f"scopes {', '.join(sorted({n.split('/')[0] for n in weights})[:5]) or 'none'} with weights")
        raise UserError(f"{path}: not an SSD on MobileNetV2 (no {PREFIX}... weights; found {found})")
    heads = sorted({n.split("/")[0] for n in weights if n.startswith("BoxPredictor_")})
    if len(heads) != NUM_HEADS:
        raise UserError(f"{path}: an SSD has {NUM_HEADS} box predictors BoxPredictor_0..5; found {len(heads)}")
    if f"{heads[0]}/BoxEncodingPredictor_depthwise/depthwise_weights" not in consts:
        raise UserError(f"{path}: the box predictors are not SSDLite's separable convs (no BoxEncodingPredictor_depthwise); "
                        "only ssdlite_mobilenet_v2 graphs convert")


def _get(path: Path, consts: Consts, name: str) -> np.ndarray:
    if name not in consts:
        raise UserError(f"{path}: node {name} not found; not the Object Detection API's ssdlite_mobilenet_v2 layout")
    return consts[name]


def _conv(path: Path, consts: Consts, scope: str) -> torch.Tensor:
    """A conv's HWIO kernel (or depthwise HW,C,1) as OIHW."""
    if f"{scope}/depthwise_weights" in consts:
        return torch.from_numpy(consts[f"{scope}/depthwise_weights"].transpose(2, 3, 0, 1).copy())
    return torch.from_numpy(_get(path, consts, f"{scope}/weights").transpose(3, 2, 0, 1).copy())


def _put(sd: dict, consts: Consts, path: Path, scope: str, conv: str, bn: str | None) -> None:
    """``scope``'s conv kernel at ``conv`` and its BatchNorm at ``bn`` (or its biases at ``conv``'s bias)."""
    sd[f"{conv}.weight"] = _conv(path, consts, scope)
    if bn is None:
        sd[f"{conv}.bias"] = torch.from_numpy(_get(path, consts, f"{scope}/biases").copy())
        return
    mean = _get(path, consts, f"{scope}/BatchNorm/moving_mean")
    sd[f"{bn}.running_mean"] = torch.from_numpy(mean.copy())
    sd[f"{bn}.running_var"] = torch.from_numpy(_get(path, consts, f"{scope}/BatchNorm/moving_variance").copy())
    sd[f"{bn}.weight"] = torch.from_numpy(consts.get(f"{scope}/BatchNorm/gamma", np.ones_like(mean)).copy())
    sd[f"{bn}.bias"] = torch.from_numpy(consts.get(f"{scope}/BatchNorm/beta", np.zeros_like(mean)).copy())
    sd[f"{bn}.num_batches_tracked"] = torch.tensor(0)


def _state_dict(path: Path, consts: Consts) -> dict[str, torch.Tensor]:
    sd: dict[str, torch.Tensor] = {}
    _put(sd, consts, path, f"{PREFIX}Conv", "features.0.0", "features.0.1")
    _put(sd, consts, path, f"{PREFIX}expanded_conv/depthwise", "features.1.conv.0.0", "features.1.conv.0.1")
    _put(sd, consts, path, f"{PREFIX}expanded_conv/project", "features.1.conv.1", "features.1.conv.2")
    for block in range(2, NUM_BLOCKS + 1):
        scope, prefix = f"{PREFIX}expanded_conv_{block - 1}", f"features.{block}.conv"
        _put(sd, consts, path, f"{scope}/expand", f"{prefix}.0.0", f"{prefix}.0.1")
        _put(sd, consts, path, f"{scope}/depthwise", f"{prefix}.1.0", f"{prefix}.1.1")
        _put(sd, consts, path, f"{scope}/project", f"{prefix}.2", f"{prefix}.3")
    _put(sd, consts, path, f"{PREFIX}Conv_1", f"features.{NUM_BLOCKS + 1}.0", f"features.{NUM_BLOCKS + 1}.1")
    for i in range(NUM_EXTRAS):
        for slot, scope in enumerate(_extra_scopes(path, consts, i + 2)):
            _put(sd, consts, path, scope, f"extras.{i}.{slot}.0", f"extras.{i}.{slot}.1")
    for j in range(NUM_HEADS):
        for ours, theirs in (("box", "BoxEncodingPredictor"), ("cls", "ClassPredictor")):
            _put(sd, consts, path, f"BoxPredictor_{j}/{theirs}_depthwise", f"classifier.{ours}.{j}.0.0",
                 f"classifier.{ours}.{j}.0.1")
            _put(sd, consts, path, f"BoxPredictor_{j}/{theirs}", f"classifier.{ours}.{j}.1", None)
        _reorder_box_codes(sd, f"classifier.box.{j}.1")
    return sd


def _extra_scopes(path: Path, consts: Consts, index: int) -> list[str]:
    """The 1x1, depthwise 3x3 stride-2 and 1x1 convs of extra layer ``layer_19_*_Conv2d_{index}``."""
    pattern = re.compile(rf"{re.escape(PREFIX)}(layer_19_1_Conv2d_{index}_1x1_\d+|layer_19_2_Conv2d_{index}_3x3_s2_\d+"
                         rf"(_depthwise)?)/(depthwise_)?weights")
    found = sorted({m.group(1) for n in consts if (m := pattern.fullmatch(n))})
    if len(found) != 3:
        raise UserError(f"{path}: extra layer {index} should be 3 convs (layer_19_1_Conv2d_{index}_1x1_*, "
                        f"layer_19_2_Conv2d_{index}_3x3_s2_*[_depthwise]); found {len(found)}")
    first = next(s for s in found if s.startswith("layer_19_1"))
    depthwise = next(s for s in found if s.endswith("_depthwise"))
    last = next(s for s in found if s.startswith("layer_19_2") and s != depthwise)
    return [PREFIX + s for s in (first, depthwise, last)]


def _reorder_box_codes(sd: dict[str, torch.Tensor], conv: str) -> None:
    weight, bias = sd[f"{conv}.weight"], sd[f"{conv}.bias"]
    order = [a * 4 + k for a in range(weight.shape[0] // 4) for k in BOX_ORDER]
    sd[f"{conv}.weight"], sd[f"{conv}.bias"] = weight[order].contiguous(), bias[order].contiguous()


def _num_classes(path: Path, consts: Consts) -> int:
    """Classes per anchor (background included), the same from every class predictor."""
    counts = set()
    for j in range(NUM_HEADS):
        box = _get(path, consts, f"BoxPredictor_{j}/BoxEncodingPredictor/biases").shape[0]
        counts.add(_get(path, consts, f"BoxPredictor_{j}/ClassPredictor/biases").shape[0] * 4 // box)
    if len(counts) != 1 or min(counts) < 2:
        raise UserError(f"{path}: the class predictors disagree on the class count ({sorted(counts)})")
    return counts.pop()


def anchor_specs(path: Path, consts: Consts) -> AnchorSpecs:
    """Each map's (scale, aspect ratio) pairs from ``MultipleGridAnchorGenerator``: the ``Sqrt*/x`` aspect ratios,
    each followed by the ``truediv*/x`` scales of the same length."""
    names = [n for n in consts if n.startswith("MultipleGridAnchorGenerator/")]
    ratios = [n for n in names if re.fullmatch(r"MultipleGridAnchorGenerator/Sqrt(_\d+)?/x", n)]
    specs = []
    for name in ratios:
        after = names[names.index(name) + 1:]
        scales = next((n for n in after if re.fullmatch(r"MultipleGridAnchorGenerator/truediv_\d+/x", n)
                       and consts[n].shape == consts[name].shape), None)
        if scales is None:
            break
        specs.append([(_short(s), _short(r)) for s, r in zip(consts[scales], consts[name])])
    if len(specs) != NUM_HEADS:
        raise UserError(f"{path}: found the anchors of {len(specs)} maps in MultipleGridAnchorGenerator, not {NUM_HEADS}")
    return specs


def _build(path: Path, sd: dict[str, torch.Tensor], num_classes: int, specs: AnchorSpecs, widths: tuple[float, ...],
           score_converter: str) -> torch.nn.Module:
    """The model whose shapes fit the weights (its width is the first of ``widths`` that fits), with them loaded."""
    stem = int(sd["features.0.0.weight"].shape[0])
    for width in widths:
        args = {"num_classes": num_classes, "width_mult": width, "image_size": INPUT_SIZE, "tf_padding": True,
                "anchor_specs": specs, "score_converter": score_converter}
        with torch.device("meta"):
            skeleton = create_model("ssdlite_mobilenet_v2", **args)
        try:
            check_state_dict(skeleton, {k: v.to("meta") for k, v in sd.items()}, what=f"graph {path.name}")
        except UserError:
            continue
        model = create_model("ssdlite_mobilenet_v2", **args)
        _absorb_epsilon(model, sd)
        load_state_dict_strict(model, sd, what=f"graph {path.name}")
        return model
    raise UserError(f"{path}: the weights' channels (first conv {stem}) fit no ssdlite_mobilenet_v2 width "
                    f"({', '.join(map(str, widths))})")


def _absorb_epsilon(model: torch.nn.Module, sd: dict[str, torch.Tensor], tf_eps: float = 1e-3) -> None:
    """TF's BatchNorm epsilon is 1e-3; where ours is smaller the variance takes the difference (same output)."""
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.BatchNorm2d) and f"{name}.running_var" in sd:
            sd[f"{name}.running_var"] = sd[f"{name}.running_var"] + (tf_eps - module.eps)


def _nms_iou(graph) -> float:
    """The IoU of the graph's ``Postprocessor`` non-maximum suppression (0.6 for SSDLite)."""
    for node in graph.node:
        if node.name.startswith("Postprocessor/") and node.name.endswith("iou_threshold") and node.op == "Const":
            return round(float(node.attr["value"].tensor.float_val[0]), 6)
    return 0.6


def _box_coder_scales(path: Path, consts: Consts) -> list[float]:
    """The box decoder's (y, x, h, w) scales as the graph divides by them (``Postprocessor/Decode/truediv*/y``)."""
    names = [f"Postprocessor/Decode/truediv{s}/y" for s in ("", "_1", "_2", "_3")]
    scales = [float(consts[n]) for n in names if n in consts and consts[n].size == 1]
    if scales and scales != list(BOX_CODER_WEIGHTS):
        raise UserError(f"{path}: the box coder's scales are {scales}; SSDLite's (and ours) are {list(BOX_CODER_WEIGHTS)}")
    return list(BOX_CODER_WEIGHTS)


def class_names(path: Path, labels: str | os.PathLike[str] | list[str] | None, num_classes: int) -> list[str]:
    """From a labels file (one a line, background first) or a ``label_map.pbtxt``; else COCO's names for 91 classes,
    generic names otherwise."""
    if labels is not None and str(labels).endswith(".pbtxt"):
        return _label_map(Path(labels), num_classes)
    if labels is not None:
        return read_labels(labels, num_classes)
    if num_classes == len(COCO_IDS) + 11:  # 90 ids with 10 gaps, and the background
        return ["background", *(COCO_IDS.get(i, "N/A") for i in range(1, num_classes))]
    return ["background", *(f"class_{i}" for i in range(1, num_classes))]


def _label_map(path: Path, num_classes: int) -> list[str]:
    """The Object Detection API's ``label_map.pbtxt``: ``item { id: N name: '...' display_name: '...' }``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read label map {path}: {exc}") from exc
    names = {}
    for item in re.findall(r"item\s*\{(.*?)\}", text, flags=re.S):
        ident = re.search(r"\bid\s*:\s*(\d+)", item)
        name = re.search(r"\bdisplay_name\s*:\s*['\"](.*?)['\"]", item) or re.search(r"\bname\s*:\s*['\"](.*?)['\"]", item)
        if ident and name:
            names[int(ident.group(1))] = name.group(1)
    if not names or max(names) != num_classes - 1:
        raise UserError(f"label map {path} has ids up to {max(names, default=0)} but the model has {num_classes - 1} "
                        f"classes besides the background")
    return ["background", *(names.get(i, "N/A") for i in range(1, num_classes))]


def _short(value: float) -> float:
    """A float32 constant as its shortest decimal (0.35, not 0.3499999940395355): the same float32 again."""
    return float(np.format_float_positional(np.float32(value)))
