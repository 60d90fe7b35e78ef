"""What an app's task library (MediaPipe Tasks: ImageClassifier, ImageSegmenter, ObjectDetector) needs from our .tflite
files: the graph's head and input, and the TFLite Metadata that describes them.

The input takes ``(pixel - mean) / std`` with one mean and one std for all channels (MediaPipe refuses per-channel
values): the per-channel rest of the std is folded into the first convolution (``input_scaling``, as the Core ML
export), and the per-channel rest of the mean is a constant added to the input in the graph (exact at the zero-padded
borders, which a folded bias would not be). A classifier ends in a softmax (apps read its output as scores); a
segmentation model gives its score maps (SEGMENTER_METADATA says softmax); an SSDLite detector gives the raw box codes
(y, x, h, w, as MediaPipe decodes them against the anchors written in DETECTOR_METADATA) and the scores of the classes
without the background (its softmax or sigmoid applied), and MediaPipe runs the NMS."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mobilenetv2.errors import UserError
from mobilenetv2.formats import tflite_metadata as md
from mobilenetv2.formats.base import META_CLASS_NAMES, metadata_entries
from mobilenetv2.formats.input_scaling import InputScaling, fold_first_conv
from mobilenetv2.formats.tflite_metadata import META_BACKGROUND, OWN_METADATA
from mobilenetv2.models.fuse import fuse_bn
from mobilenetv2.spec import Preprocessing
from mobilenetv2.weights import CheckpointMeta

DETECTOR_METADATA = "DETECTOR_METADATA"
SEGMENTER_METADATA = "SEGMENTER_METADATA"
BOX_SCALES = (10.0, 10.0, 5.0, 5.0)  # the SSD box coder's (y, x, h, w) divisors, models/detection.BOX_CODER_WEIGHTS
LABELS_FILE = "labels.txt"
LICENSE = "as the checkpoint's source"


@dataclass(frozen=True)
class AppInput:
    """The file's input: ``(pixel - mean) / std`` on 0-255 pixels, then ``offsets`` per channel in the graph."""

    mean: float
    std: float
    scaling: InputScaling
    offsets: tuple[float, ...]

    @classmethod
    def of(cls, pre: Preprocessing, channels: int) -> AppInput:
        scaling = InputScaling.of(pre, channels, "MediaPipe")
        mean = 255.0 * float(np.mean(pre.mean))
        return cls(mean, 1.0 / scaling.scale, scaling, tuple(b + mean * scaling.scale for b in scaling.bias))

    @property
    def pixel_range(self) -> tuple[float, float]:
        """What pixels 0 and 255 become: the input's range, so that a uint8 input holds the pixels themselves."""
        return (0.0 - self.mean) / self.std, (255.0 - self.mean) / self.std

    def preprocessing(self, pre: Preprocessing) -> Preprocessing:
        """``pre`` with the file's mean and std (0-1 scale): what our own tools normalise by for this file."""
        channels = len(pre.mean)
        return dataclasses.replace(pre, mean=(self.mean / 255,) * channels, std=(self.std / 255,) * channels)

    def from_normalised(self, batch: np.ndarray, pre: Preprocessing) -> np.ndarray:
        """NCHW images normalised by ``pre`` -> normalised as the file takes them."""
        mean, std = (np.asarray(v, np.float32).reshape(1, -1, 1, 1) for v in (pre.mean, pre.std))
        return ((batch * std + mean) * 255.0 - self.mean) / self.std


class _Offsets(nn.Module):
    def __init__(self, offsets: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("offsets", torch.tensor(offsets, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.offsets


class _Softmax(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).softmax(1)


class _SSDOutputs(nn.Module):
    """(box codes [N, A, 4] as (dy, dx, dh, dw), scores [N, A, C - 1] of the classes without the background)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.sigmoid = model, getattr(model, "score_converter", "softmax") == "sigmoid"

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        regression, logits = self.model.classifier(self.model.feature_maps(x))
        scores = logits.sigmoid() if self.sigmoid else logits.softmax(-1)
        return regression[..., [1, 0, 3, 2]], scores[..., 1:]


HEADS = {"classification": _Softmax, "segmentation": lambda model: model, "detection": _SSDOutputs}


def app_graph(model: nn.Module, meta: CheckpointMeta) -> tuple[nn.Module, AppInput]:
    """The BatchNorm-folded graph the file holds (per-channel normalisation folded, the task's head) and its input."""
    if meta.task not in HEADS:
        raise UserError(f"LiteRT export writes {', '.join(HEADS)} models, not {meta.task}")
    check_labels(meta, model)
    app_input = AppInput.of(meta.preprocessing, model.in_chans)
    one_std = all(abs(f - 1.0) < 1e-9 for f in app_input.scaling.factors)  # nothing to fold
    folded = (fuse_bn(model) if one_std else fold_first_conv(model, app_input.scaling, "LiteRT export")).eval()
    head = HEADS[meta.task](folded)
    graph = nn.Sequential(_Offsets(app_input.offsets), head) if any(app_input.offsets) else head
    graph.in_chans = model.in_chans
    return graph.eval(), app_input


def float_probabilities(meta: CheckpointMeta, io_type: str) -> bool:
    """Whether an int8 classifier keeps its softmax float: apps read its output as the probabilities, which a uint8
    softmax gives in 1/256 steps (ties, a sum off 1); a full-integer file (``--io int8``, microcontrollers) keeps it int8."""
    return meta.task == "classification" and io_type != "int8"


def check_labels(meta: CheckpointMeta, model: nn.Module) -> None:
    """One line when the checkpoint's class names cannot be the file's labels: none, or not one per class."""
    classes = getattr(model, "num_classes", None) or meta.num_classes
    if not meta.class_names:
        raise UserError("the checkpoint has no class names, which the .tflite file's labels need (apps name classes "
                        "by them): save it with class names (train or convert --labels)")
    if classes is not None and len(meta.class_names) != classes:
        raise UserError(f"the checkpoint has {len(meta.class_names)} class names for {classes} model outputs; the "
                        f".tflite file's labels need one per class")


def detector_anchors(model: nn.Module, size: int) -> np.ndarray:
    """The model's anchors at ``size`` as (y_center, x_center, height, width) ratios."""
    with torch.no_grad():
        maps = model.feature_maps(torch.zeros(1, model.in_chans, size, size))
        xyxy = model.anchors([tuple(m.shape[-2:]) for m in maps], torch.device("cpu")).double().numpy()
    return np.stack([(xyxy[:, 1] + xyxy[:, 3]) / 2, (xyxy[:, 0] + xyxy[:, 2]) / 2, xyxy[:, 3] - xyxy[:, 1],
                     xyxy[:, 2] - xyxy[:, 0]], axis=1)


def info_fields(meta: CheckpointMeta) -> dict[str, str]:
    """Name, description, version, author and license: the checkpoint's own (its ``extra``) where it has them."""
    extra = meta.extra or {}
    arch = meta.architecture.get("name", "model")
    classes = len(meta.class_names or [])
    source = f" Converted from {extra['source_format']}." if extra.get("source_format") else ""
    described = (f"{arch} {meta.task} model ({classes} classes, {meta.input_size}x{meta.input_size} RGB input), "
                 f"written by mobilenetv2.{source}")
    return {"name": str(extra.get("name") or f"{arch} {meta.task}"), "description": str(extra.get("description") or described),
            "version": str(extra.get("version") or f"mobilenetv2 {_package_version()}"),
            "author": str(extra.get("author") or "mobilenetv2"), "license": str(extra.get("license") or LICENSE)}


def _package_version() -> str:
    try:
        return importlib.metadata.version("mobilenetv2")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def metadata_for(meta: CheckpointMeta, app_input: AppInput, precision: str,
                 anchors: np.ndarray | None = None) -> tuple[bytes, dict[str, bytes]]:
    """The TFLITE_METADATA buffer of a file of ``meta`` and its associated files (the labels)."""
    own = {key: json.loads(value) for key, value in
           metadata_entries(meta.replace(preprocessing=app_input.preprocessing(meta.preprocessing)), precision).items()
           if key != META_CLASS_NAMES}  # the labels are the label file's
    image = md.image_input("image", "RGB image, pixels p taken as (p - mean) / std", app_input.mean, app_input.std)
    labels = meta.class_names[1:] if meta.task == "detection" else meta.class_names
    if meta.task == "detection":
        own[META_BACKGROUND] = meta.class_names[0]
    files = [md.labels_file(LABELS_FILE, "the class of each output channel")]
    customs = [md.custom(OWN_METADATA, json.dumps(own).encode())]
    if meta.task == "detection":
        outputs = [md.output("location", "box codes (dy, dx, dh, dw) of each anchor, decoded as DETECTOR_METADATA says",
                             boxes=True),
                   md.output("score", "score of each class (the background left out) at each anchor", files)]
        customs.append(md.custom(DETECTOR_METADATA, md.detector_options(anchors, len(labels), BOX_SCALES, False)))
    elif meta.task == "segmentation":
        outputs = [md.output("scores", "score map of each class (category mask: the argmax)", files)]
        customs.append(md.custom(SEGMENTER_METADATA, md.segmenter_options()))
    else:
        outputs = [md.output("probability", "probability of each class (softmax)", files)]
    buffer = md.model_metadata(info_fields(meta), [image], outputs, customs)
    return buffer, {LABELS_FILE: ("\n".join(labels) + "\n").encode("utf-8")}


def with_metadata(model_bytes: bytes, model: nn.Module, meta: CheckpointMeta, app_input: AppInput, precision: str) -> bytes:
    """``model_bytes`` with its TFLite Metadata and label file."""
    anchors = detector_anchors(model, meta.input_size) if meta.task == "detection" else None
    buffer, files = metadata_for(meta, app_input, precision, anchors)
    return md.populate(model_bytes, buffer, files)

