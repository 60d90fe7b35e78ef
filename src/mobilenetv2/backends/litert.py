"""LiteRT (the TensorFlow Lite interpreter, ``ai-edge-litert``) as a backend: ``.tflite`` files, NHWC inputs, float or
quantised (uint8/int8) tensors converted with each tensor's own scale and zero point.

A file says what its output is by the operator that computes it, found by walking back from the output tensor
through QUANTIZE, DEQUANTIZE and RESHAPE (which only change its type or shape): our exports end in logits, Google's
published classifiers in a SOFTMAX (probabilities; TF2's uint8 files requantize it), its DeepLab files in an ARG_MAX
(class indices). ``from_native`` turns
each into what PyTorch's model gives (log-probabilities, whose softmax is the file's probabilities; one-hot scores
for class indices), so that every predictor, evaluation and comparison does the right thing with any file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mobilenetv2.backends.base import Runtime, RuntimeOptions
from mobilenetv2.errors import UserError, first_line
from mobilenetv2.extras import require

if TYPE_CHECKING:
    from mobilenetv2.weights import CheckpointMeta

OUTPUT_KINDS = ("logits", "probabilities", "class_indices")
PASS_THROUGH_OPS = ("QUANTIZE", "DEQUANTIZE", "RESHAPE")  # change the output's type or shape, not what it holds
MIN_PROBABILITY = 1e-8  # log(0) would be -inf: a zero probability becomes a very unlikely class


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


class LiteRTRuntime(Runtime):
    """A ``.tflite`` model in the LiteRT interpreter; batch 1 (the interpreter is resized only for a batch of one)."""

    backend = "litert"

    def __init__(self, path: Path, meta: CheckpointMeta, options: RuntimeOptions | None = None, *,
                 format: str, precision: str | None = None) -> None:  # noqa: A002
        self.interpreter = self.open(path, options or RuntimeOptions())
        (self.input,) = self.interpreter.get_input_details()
        self.output = self.interpreter.get_output_details()[0]
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
        return self.interpreter.get_tensor(self.output["index"])

    def to_native(self, images: np.ndarray) -> np.ndarray:
        return quantize(np.ascontiguousarray(images.transpose(0, 2, 3, 1)), self.input)

    def from_native(self, outputs: np.ndarray) -> np.ndarray:
        real = as_scores(dequantize(outputs, self.output), self.output_kind, self.classes)
        return np.ascontiguousarray(real.transpose(0, 3, 1, 2)) if real.ndim == 4 and self.output_kind != "class_indices" \
            else real
