"""Import a TF1 Object Detection API checkpoint folder (``model.ckpt.index``, ``model.ckpt.data-*``,
``pipeline.config``, maybe ``checkpoint``) of an SSDLite-MobileNetV2: the same checkpoint as its frozen graph gives.

The variables carry the frozen graph's Const names (``.../weights``, ``.../BatchNorm/gamma``, ``moving_mean``; the
graph's ``/read`` identities are not variables); with ``eval_config { use_moving_averages: true }`` each variable's
``.../ExponentialMovingAverage`` shadow replaces it, as the API's exporter does. The anchors, box coder, score
converter and NMS come from ``pipeline.config`` (protobuf text format, read by ``parse_text_proto``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mobilenetv2.errors import UserError
from mobilenetv2.models.detection import BOX_CODER_WEIGHTS, AnchorSpecs
from mobilenetv2.weights.checkpoint import Checkpoint
from mobilenetv2.weights.tf_bundle import read_bundle
from mobilenetv2.weights.tf_detection import INPUT_SIZE, NUM_HEADS, _short, detection_checkpoint

CONFIG = "pipeline.config"
EXTRACTORS = ("ssd_mobilenet_v2",)  # SSDLite is ssd_mobilenet_v2 with use_depthwise in the extractor and the predictor
SHADOW = "/ExponentialMovingAverage"
SCORE_CONVERTERS = {"SIGMOID": "sigmoid", "SOFTMAX": "softmax"}
TOKEN = re.compile(r"\s+|#[^\n]*|(?P<str>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")|(?P<punct>[{}<>:,;\[\]])"
                   r"|(?P<word>[-+.\w]+)")

Message = dict[str, list]


def convert_tf_checkpoint(folder: str | os.PathLike[str],
                          labels: str | os.PathLike[str] | list[str] | None = None) -> Checkpoint:
    """A detection Checkpoint from an Object Detection API checkpoint folder and its ``pipeline.config``."""
    folder = Path(folder)
    config = read_pipeline(folder / CONFIG)
    variables = read_bundle(checkpoint_prefix(folder))
    weights = model_weights(variables, config.use_moving_averages)
    return detection_checkpoint(
        folder, weights, config.anchor_specs, labels, widths=(config.depth_multiplier,),
        score_converter=config.score_converter, num_classes=config.num_classes,
        extra={"source_format": "tf_checkpoint", "nms_iou": config.nms_iou, "box_coder_scales": config.box_coder_scales,
               "score_threshold": config.score_threshold, "max_detections": config.max_detections,
               "use_moving_averages": config.use_moving_averages})


def checkpoint_prefix(folder: Path) -> Path:
    """The prefix the ``checkpoint`` file names (its last path part, in ``folder``), else the folder's one ``*.index``."""
    state = folder / "checkpoint"
    if state.is_file():
        match = re.search(r'^model_checkpoint_path:\s*"(.*)"', state.read_text(errors="replace"), flags=re.M)
        if match and Path(f"{folder / Path(match.group(1)).name}.index").is_file():
            return folder / Path(match.group(1)).name
    indexes = sorted(folder.glob("*.index"))
    if len(indexes) != 1:
        found = ", ".join(p.name for p in indexes) or "none"
        raise UserError(f"{folder}: expected one checkpoint (model.ckpt.index beside model.ckpt.data-*), found {found}")
    return indexes[0].with_suffix("")


def model_weights(variables: dict[str, np.ndarray], use_moving_averages: bool) -> dict[str, np.ndarray]:
    """The variables the exporter would freeze: each replaced by its moving-average shadow when asked and present."""
    plain = {name: value for name, value in variables.items() if not name.endswith(SHADOW)}
    if use_moving_averages:
        plain.update({name[:-len(SHADOW)]: value for name, value in variables.items() if name.endswith(SHADOW)})
    return plain


@dataclass
class PipelineConfig:
    """What the import takes from a pipeline.config (its ``model.ssd`` and ``eval_config``)."""

    num_classes: int  # with the background
    depth_multiplier: float
    anchor_specs: AnchorSpecs
    score_converter: str
    nms_iou: float
    score_threshold: float
    max_detections: int
    use_moving_averages: bool
    box_coder_scales: list[float] = field(default_factory=lambda: list(BOX_CODER_WEIGHTS))


def read_pipeline(path: Path) -> PipelineConfig:
    """The SSDLite-MobileNetV2 settings of ``path``; one line for anything else (another extractor, full-conv heads,
    another resizer or box coder)."""
    if not path.is_file():
        raise UserError(f"{path} not found: a checkpoint folder needs the pipeline.config it was trained with")
    try:
        root = parse_text_proto(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from exc
    ssd = _one(_one(root, "model", path), "ssd", path)
    extractor = _check_ssdlite(ssd, path)
    post = _one(ssd, "post_processing", path)
    nms = _one(post, "batch_non_max_suppression", path)
    converter = str(_scalar(post, "score_converter", "IDENTITY"))
    if converter not in SCORE_CONVERTERS:
        raise UserError(f"{path}: score_converter {converter}; SIGMOID or SOFTMAX convert")
    _check_input_size(ssd, path)
    try:
        return PipelineConfig(
            num_classes=int(_scalar(ssd, "num_classes", 0)) + 1,
            depth_multiplier=float(_scalar(extractor, "depth_multiplier", 1.0)),
            anchor_specs=_anchor_specs(_one(_one(ssd, "anchor_generator", path), "ssd_anchor_generator", path), path),
            score_converter=SCORE_CONVERTERS[converter], nms_iou=float(_scalar(nms, "iou_threshold", 0.6)),
            score_threshold=float(_scalar(nms, "score_threshold", 0.0)),
            max_detections=int(_scalar(nms, "max_total_detections", 100)),
            use_moving_averages=bool(_scalar(root.get("eval_config", [{}])[0], "use_moving_averages", False)),
            box_coder_scales=_box_coder(ssd, path))
    except (TypeError, ValueError) as exc:
        raise UserError(f"{path}: a setting the import reads is not a number ({exc})") from exc


def _check_ssdlite(ssd: Message, path: Path) -> Message:
    """The feature extractor's settings, if it is SSDLite's (ssd_mobilenet_v2, separable extractor and heads)."""
    extractor = _one(ssd, "feature_extractor", path)
    kind = _scalar(extractor, "type", "")
    if kind not in EXTRACTORS:
        raise UserError(f"{path}: feature extractor {kind or '(none)'}; only ssd_mobilenet_v2 (SSDLite) converts")
    predictor = _one(_one(ssd, "box_predictor", path), "convolutional_box_predictor", path)
    if not (_scalar(extractor, "use_depthwise", False) and _scalar(predictor, "use_depthwise", False)):
        raise UserError(f"{path}: full convolution heads (use_depthwise is not true in the feature extractor and the "
                        "box predictor); only SSDLite's separable ones convert")
    return extractor


def _check_input_size(ssd: Message, path: Path) -> None:
    resizer = _one(ssd, "image_resizer", path)
    if "fixed_shape_resizer" not in resizer:
        raise UserError(f"{path}: image_resizer {next(iter(resizer), '(none)')}; only fixed_shape_resizer "
                        f"{INPUT_SIZE}x{INPUT_SIZE} converts")
    fixed = resizer["fixed_shape_resizer"][0]
    size = (int(_scalar(fixed, "height", 300)), int(_scalar(fixed, "width", 300)))
    if size != (INPUT_SIZE, INPUT_SIZE):
        raise UserError(f"{path}: fixed_shape_resizer {size[0]}x{size[1]}; the import takes SSDLite's "
                        f"{INPUT_SIZE}x{INPUT_SIZE}")


def _box_coder(ssd: Message, path: Path) -> list[float]:
    coder = _one(ssd, "box_coder", path)
    if "faster_rcnn_box_coder" not in coder:
        raise UserError(f"{path}: box coder {next(iter(coder), '(none)')}; only faster_rcnn_box_coder converts")
    frcnn = coder["faster_rcnn_box_coder"][0]
    scales = [float(_scalar(frcnn, k, d)) for k, d in (("y_scale", 10.0), ("x_scale", 10.0), ("height_scale", 5.0),
                                                           ("width_scale", 5.0))]
    if scales != list(BOX_CODER_WEIGHTS):
        raise UserError(f"{path}: the box coder's scales are {scales}; SSDLite's (and ours) are {list(BOX_CODER_WEIGHTS)}")
    return scales


def _anchor_specs(gen: Message, path: Path) -> AnchorSpecs:
    """(scale, aspect ratio) per map as TF's ``create_ssd_anchors`` makes them from ``ssd_anchor_generator``."""
    layers = int(_scalar(gen, "num_layers", 6))
    if layers != NUM_HEADS:
        raise UserError(f"{path}: ssd_anchor_generator num_layers {layers}; SSDLite has {NUM_HEADS}")
    unsupported = [k for k in ("height_stride", "width_stride", "height_offset", "width_offset") if k in gen]
    unsupported += [k for k in ("base_anchor_height", "base_anchor_width") if float(_scalar(gen, k, 1.0)) != 1.0]
    if unsupported:
        raise UserError(f"{path}: ssd_anchor_generator sets {', '.join(unsupported)}; the import takes the defaults")
    lo, hi = float(_scalar(gen, "min_scale", 0.2)), float(_scalar(gen, "max_scale", 0.95))
    scales = [float(s) for s in gen.get("scales", [])] or [lo + (hi - lo) * i / (layers - 1) for i in range(layers)]
    scales.append(1.0)
    ratios = [float(r) for r in gen.get("aspect_ratios", [])]
    interpolated = float(_scalar(gen, "interpolated_scale_aspect_ratio", 1.0))
    specs = []
    for layer, (scale, following) in enumerate(zip(scales[:-1], scales[1:])):
        if layer == 0 and _scalar(gen, "reduce_boxes_in_lowest_layer", True):
            shapes = [(0.1, 1.0), (scale, 2.0), (scale, 0.5)]
        else:
            shapes = [(scale, r) for r in ratios]
            if interpolated > 0:
                shapes.append((np.sqrt(np.float32(scale) * np.float32(following)), interpolated))  # float32, as TF
        specs.append([(_short(s), _short(r)) for s, r in shapes])
    return specs


def _one(message: Message, name: str, path: Path) -> Message:
    values = message.get(name)
    if not values or not isinstance(values[0], dict):
        raise UserError(f"{path}: no {name} {{ ... }} where the Object Detection API's SSD config has one")
    return values[0]


def _scalar(message: Message, name: str, default):
    return message[name][-1] if name in message else default


def parse_text_proto(text: str) -> Message:
    """Protobuf text format as nested dicts of lists: ``name: value`` and ``name { ... }`` (or ``name: < ... >``);
    strings unquoted, numbers as int/float, true/false as bool, enum names as str. Comments and separators skipped."""
    tokens = [(m.lastgroup, m.group(m.lastgroup)) for m in TOKEN.finditer(text) if m.lastgroup]
    if sum(len(m.group(0)) for m in TOKEN.finditer(text)) != len(text):
        raise ValueError(f"not protobuf text format (a character the format does not use near {_unmatched(text)!r})")
    return _message(tokens, 0, None)[0]


def _message(tokens: list[tuple[str, str]], pos: int, close: str | None) -> tuple[Message, int]:
    out: Message = {}
    while pos < len(tokens):
        kind, text = tokens[pos]
        if kind == "punct" and text in "}>" and close is not None:
            if text != close:
                raise ValueError(f"protobuf text: {text!r} closes a message opened with the other bracket")
            return out, pos + 1
        if kind == "punct" and text in ",;":
            pos += 1
            continue
        if kind != "word":
            raise ValueError(f"protobuf text: expected a field name, found {text!r}")
        pos += 1
        if pos < len(tokens) and tokens[pos] == ("punct", ":"):
            pos += 1
        if pos >= len(tokens):
            raise ValueError(f"protobuf text: field {text} has no value")
        value, pos = _value(tokens, pos)
        out.setdefault(text, []).extend(value if isinstance(value, list) else [value])
    if close is not None:
        raise ValueError(f"protobuf text: a message is not closed (missing {close!r})")
    return out, pos


def _value(tokens: list[tuple[str, str]], pos: int):
    kind, text = tokens[pos]
    if (kind, text) in (("punct", "{"), ("punct", "<")):
        return _message(tokens, pos + 1, "}" if text == "{" else ">")
    if (kind, text) == ("punct", "["):
        values, pos = [], pos + 1
        while pos < len(tokens) and tokens[pos] != ("punct", "]"):
            if tokens[pos] != ("punct", ","):
                values.append(_scalar_token(*tokens[pos]))
            pos += 1
        return values, pos + 1
    return _scalar_token(kind, text), pos + 1


def _scalar_token(kind: str, text: str):
    if kind == "str":
        return text[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
    if kind != "word":
        raise ValueError(f"protobuf text: expected a value, found {text!r}")
    if text in ("true", "True", "t"):
        return True
    if text in ("false", "False", "f"):
        return False
    for number in (int, float):
        try:
            return number(text.rstrip("fF") if number is float else text)
        except ValueError:
            pass
    return text


def _unmatched(text: str) -> str:
    pos = 0
    for m in TOKEN.finditer(text):
        if m.start() != pos:
            break
        pos = m.end()
    return text[pos:pos + 20]
