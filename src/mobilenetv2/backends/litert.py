"""LiteRT (the TensorFlow Lite interpreter, ``ai-edge-litert``) as a backend: ``.tflite`` files, NHWC inputs, float or
quantised (uint8/int8) tensors converted with each tensor's own scale and zero point.

A file says what its output is by the operator that computes it, found by walking back from the output tensor
through QUANTIZE, DEQUANTIZE and RESHAPE (which only change its type or shape): our exports end in logits, Google's
published classifiers in a SOFTMAX (probabilities; TF2's uint8 files requantize it), its DeepLab files in an ARG_MAX
(class indices). ``from_native`` turns
each into what PyTorch's model gives (log-probabilities, whose softmax is the file's probabilities; one-hot scores
for class indices), so that every predictor, evaluation and comparison does the right thing with any file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mobilenetv2.backends.base import Runtime, RuntimeOptions
from mobilenetv2.errors import UserError, first_line
from mobilenetv2.extras import require
from mobilenetv2.weights.tflite_metadata import SSDDecoding, TFLiteMetadata, read_metadata

if TYPE_CHECKING:
    from mobilenetv2.spec import Preprocessing
    from mobilenetv2.weights import CheckpointMeta

OUTPUT_KINDS = ("logits", "probabilities", "class_indices")
PASS_THROUGH_OPS = ("QUANTIZE", "DEQUANTIZE", "RESHAPE")  # change the output's type or shape, not what it holds
MIN_PROBABILITY = 1e-8  # log(0) would be -inf: a zero probability becomes a very unlikely class
BOX_EXP_CLIP = float(np.log(1000.0 / 16))  # the SSD box coder's limit on log size changes (torchvision's)


def open_interpreter(path: Path, threads: int | None = None) -> Any:
    """An allocated LiteRT interpreter for ``path`` (XNNPACK delegate, ``threads`` threads); one line if it fails."""
    require("ai_edge_litert", "litert")
    from ai_edge_litert.interpreter import Interpreter

    if not Path(path).is_file():
        raise UserError(f"TFLite model not found: {path}")
    try:
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:  # what LiteRT raises for a bad file (and a failed allocation)
        raise UserError(f"{path} is not a loadable TFLite model ({first_line(exc, 160)})") from exc
    return interpreter


def output_kind(interpreter: Any) -> tuple[str, int | None]:
    """(what the first output holds, the number of classes an ARG_MAX chose from) by the operator that computes it."""
    producer = output_producer(interpreter)
    name = producer["op_name"] if producer else ""
    if name == "SOFTMAX":
        return "probabilities", None
    if name == "ARG_MAX":
        scores = interpreter._get_tensor_details(int(producer["inputs"][0]), 0)  # noqa: SLF001
        return "class_indices", int(scores["shape"][-1])
    return "logits", None


def output_producer(interpreter: Any) -> dict[str, Any] | None:
    """The operator that computes the first output, past QUANTIZE, DEQUANTIZE and RESHAPE (None for a graph input)."""
    ops = [op for op in interpreter._get_ops_details() if op["op_name"] != "DELEGATE"]  # noqa: SLF001
    producers = {int(t): op for op in ops for t in op["outputs"]}
    producer = producers.get(int(interpreter.get_output_details()[0]["index"]))
    for _ in range(len(ops)):  # a well-formed graph has no cycle; the bound keeps a broken one from hanging
        if producer is None or producer["op_name"] not in PASS_THROUGH_OPS:
            break
        producer = producers.get(int(producer["inputs"][0]))
    return producer


def quantize(values: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """Real values -> the tensor's integer type with its (scale, zero point); float tensors pass through."""
    dtype = np.dtype(detail["dtype"])
    if not np.issubdtype(dtype, np.integer):
        return values.astype(dtype)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(values / scale + zero), info.min, info.max).astype(dtype)


def dequantize(values: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    scale, zero = detail["quantization"]
    if not np.issubdtype(values.dtype, np.integer) or not scale:
        return values.astype(np.float32)
    return ((values.astype(np.float32) - zero) * scale).astype(np.float32)


def as_scores(outputs: np.ndarray, kind: str, classes: int | None) -> np.ndarray:
    """Real-valued outputs of ``kind`` -> what PyTorch's model gives: logits as they are, log-probabilities for
    probabilities, one-hot class scores [N, classes, H, W] for class indices [N, H, W]."""
    if kind == "probabilities":
        return np.log(np.maximum(outputs, MIN_PROBABILITY)).astype(np.float32)
    if kind == "class_indices":
        indices = outputs.astype(np.int64)
        return (indices[:, None] == np.arange(classes)[None, :, None, None]).astype(np.float32)
    return outputs


@dataclass(frozen=True)
class FileInput:
    """How the file takes 0-255 pixels p: ``(p - mean) / std`` (per channel or one for all)."""

    mean: np.ndarray
    std: np.ndarray

    def convert(self, images: np.ndarray, pre: Preprocessing) -> np.ndarray:
        """NCHW images normalised by ``pre`` -> normalised as the file takes them (unchanged when the two agree)."""
        mean, std = (np.asarray(v, np.float32).reshape(1, -1, 1, 1) * 255 for v in (pre.mean, pre.std))
        if np.allclose(mean.ravel(), self.mean, atol=1e-3) and np.allclose(std.ravel(), self.std, rtol=1e-5):
            return images
        pixels = images * std + mean
        return ((pixels - self.mean.reshape(1, -1, 1, 1)) / self.std.reshape(1, -1, 1, 1)).astype(np.float32)


def file_normalisation(detail: dict[str, Any], metadata: TFLiteMetadata) -> FileInput | None:
    """The file's own input normalisation: a quantised input holds pixels as its quantisation says; a float one as its
    metadata's NormalizationOptions say (None without: the file takes what its preprocessing gives)."""
    scale, zero = detail["quantization"]
    if np.issubdtype(np.dtype(detail["dtype"]), np.integer) and scale:
        offset = 128 if np.dtype(detail["dtype"]) == np.int8 else 0  # an int8 input holds the pixel minus 128
        return FileInput(np.asarray([zero + offset], np.float32), np.asarray([1 / scale], np.float32))
    if metadata.mean is None:
        return None
    return FileInput(np.asarray(metadata.mean, np.float32), np.asarray(metadata.std, np.float32))


def decode_ssd(outputs: np.ndarray, decoding: SSDDecoding, *, sigmoid: bool) -> np.ndarray:
    """An app detector's [N, A, 4 + C - 1] (box codes dy, dx, dh, dw; class scores without the background) -> what
    PyTorch's SSDLite gives: decoded xyxy boxes (ratios) and logits [N, A, 4 + C] whose softmax (or sigmoid) is the
    file's scores."""
    codes, scores = outputs[..., :4].astype(np.float64), outputs[..., 4:].astype(np.float64)
    yc, xc, h, w = (decoding.anchors[None, :, i].astype(np.float64) for i in range(4))
    sy, sx, sh, sw = decoding.scales
    cy, cx = codes[..., 0] / sy * h + yc, codes[..., 1] / sx * w + xc
    dh, dw = (np.minimum(codes[..., i] / s, BOX_EXP_CLIP) for i, s in ((2, sh), (3, sw)))
    hh, ww = (np.exp(dh) * h, np.exp(dw) * w) if decoding.exponential else (dh * h, dw * w)
    boxes = np.stack([cx - ww / 2, cy - hh / 2, cx + ww / 2, cy + hh / 2], axis=-1)
    return np.concatenate([boxes, scores_as_logits(scores, sigmoid)], axis=-1).astype(np.float32)


def scores_as_logits(scores: np.ndarray, sigmoid: bool) -> np.ndarray:
    """Class scores without the background -> logits with it: log-probabilities (softmax; the background takes the
    rest) or the sigmoid's inverse (the background, which a sigmoid detector ignores, at the lowest score)."""
    if sigmoid:
        p = np.clip(scores, MIN_PROBABILITY, 1 - MIN_PROBABILITY)
        return np.concatenate([np.full_like(p[..., :1], np.log(MIN_PROBABILITY)), np.log(p / (1 - p))], axis=-1)
    background = np.clip(1 - scores.sum(axis=-1, keepdims=True), 0, 1)
    return np.log(np.maximum(np.concatenate([background, scores], axis=-1), MIN_PROBABILITY))


def ssd_scores_as_logits(reference: np.ndarray, *, sigmoid: bool) -> np.ndarray:
    """PyTorch's SSDLite outputs (boxes, logits) with the logits as an app detector file gives them back."""
    logits = reference[..., 4:].astype(np.float64)
    if sigmoid:
        scores = 1 / (1 + np.exp(-logits[..., 1:]))
    else:
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        scores = (shifted / shifted.sum(axis=-1, keepdims=True))[..., 1:]
    return np.concatenate([reference[..., :4], scores_as_logits(scores, sigmoid)], axis=-1).astype(np.float32)


class LiteRTRuntime(Runtime):
    """A ``.tflite`` model in the LiteRT interpreter; batch 1 (the interpreter is resized only for a batch of one)."""

    backend = "litert"

    def __init__(self, path: Path, meta: CheckpointMeta, options: RuntimeOptions | None = None, *,
                 format: str, precision: str | None = None) -> None:  # noqa: A002
        self.interpreter = self.open(path, options or RuntimeOptions())
        (self.input,) = self.interpreter.get_input_details()
        self.output = self.interpreter.get_output_details()[0]
        metadata = read_metadata(path)
        self.file_input = file_normalisation(self.input, metadata)
        self.detector = metadata.detector() if len(self.interpreter.get_output_details()) == 2 else None
        dtype = np.dtype(self.input["dtype"])
        if precision is None:
            precision = "int8" if np.issubdtype(dtype, np.integer) else "fp32"
        super().__init__(meta, path, precision=precision, format=format)
        self.input_layout, self.input_dtype = "NHWC", dtype
        self.input_shape = tuple(int(d) for d in self.input["shape"])
        self.max_batch = int(self.input["shape"][0])
        self.output_kind, argmax_classes = self.read_output_kind()
        self.classes = len(meta.class_names) if meta.class_names else argmax_classes

    def open(self, path: Path, options: RuntimeOptions) -> Any:
        return open_interpreter(path, options.threads)

    def read_output_kind(self) -> tuple[str, int | None]:
        return output_kind(self.interpreter)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "outputs": self.output_kind}

    def run(self, inputs: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self.input["index"], np.ascontiguousarray(inputs))
        self.interpreter.invoke()
        if self.detector is not None:  # box codes and class scores, side by side as real values
            return np.concatenate([dequantize(self.interpreter.get_tensor(d["index"]), d)
                                   for d in self.interpreter.get_output_details()], axis=-1)
        return self.interpreter.get_tensor(self.output["index"])

    def to_native(self, images: np.ndarray) -> np.ndarray:
        """Images normalised by the metadata's preprocessing -> the file's input (its own normalisation, NHWC, its type)."""
        images = self.file_input.convert(images, self.meta.preprocessing) if self.file_input else images
        return quantize(np.ascontiguousarray(images.transpose(0, 2, 3, 1)), self.input)

    def comparable(self, reference: np.ndarray) -> np.ndarray:
        """PyTorch's raw outputs as this file gives them back: log-probabilities for a softmax output, an SSD's
        decoded boxes and scores without the background for an app detector."""
        if self.detector is not None:
            return ssd_scores_as_logits(reference, sigmoid=self.sigmoid_scores)
        if self.output_kind == "probabilities":
            shifted = reference - reference.max(axis=1, keepdims=True)
            log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            return np.maximum(log_p, np.log(MIN_PROBABILITY)).astype(np.float32)  # as as_scores floors them
        return reference

    @property
    def sigmoid_scores(self) -> bool:
        return self.meta.architecture.get("args", {}).get("score_converter") == "sigmoid"

    def from_native(self, outputs: np.ndarray) -> np.ndarray:
        if self.detector is not None:
            return decode_ssd(outputs, self.detector, sigmoid=self.sigmoid_scores)
        real = as_scores(dequantize(outputs, self.output), self.output_kind, self.classes)
        return np.ascontiguousarray(real.transpose(0, 3, 1, 2)) if real.ndim == 4 and self.output_kind != "class_indices" \
            else real
