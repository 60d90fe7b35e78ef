"""LiteRT (the TensorFlow Lite interpreter, ``ai-edge-litert``) as a backend: ``.tflite`` files, NHWC inputs, float or
quantised (uint8/int8) tensors converted with each tensor's own scale and zero point."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mobilenetv2.backends.base import Runtime, RuntimeOptions
from mobilenetv2.errors import UserError, first_line
from mobilenetv2.extras import require

if TYPE_CHECKING:
    from mobilenetv2.weights import CheckpointMeta


def open_interpreter(path: Path, threads: int | None = None) -> Any:
    """An allocated LiteRT interpreter for ``path`` (XNNPACK delegate, ``threads`` threads); one line if it fails."""
    require("ai_edge_litert", "interop")
    from ai_edge_litert.interpreter import Interpreter

    if not Path(path).is_file():
        raise UserError(f"TFLite model not found: {path}")
    try:
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
    except Exception as exc:  # noqa: BLE001 - LiteRT raises ValueError/RuntimeError for a bad file
        raise UserError(f"{path} is not a loadable TFLite model ({first_line(exc, 160)})") from None
    return interpreter


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


class LiteRTRuntime(Runtime):
    """A ``.tflite`` model in the LiteRT interpreter; batch 1 (the interpreter is resized only for a batch of one)."""

    backend = "litert"

    def __init__(self, path: Path, meta: CheckpointMeta, options: RuntimeOptions | None = None, *,
                 precision: str | None = None) -> None:
        self.interpreter = open_interpreter(path, (options or RuntimeOptions()).threads)
        (self.input,) = self.interpreter.get_input_details()
        self.output = self.interpreter.get_output_details()[0]
        dtype = np.dtype(self.input["dtype"])
        if precision is None:
            precision = "int8" if np.issubdtype(dtype, np.integer) else "fp32"
        super().__init__(meta, path, precision=precision, format="tflite")
        self.input_layout, self.input_dtype = "NHWC", dtype
        self.input_shape = tuple(int(d) for d in self.input["shape"])
        self.max_batch = int(self.input["shape"][0])

    def run(self, inputs: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self.input["index"], np.ascontiguousarray(inputs))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"])

    def to_native(self, images: np.ndarray) -> np.ndarray:
        return quantize(np.ascontiguousarray(images.transpose(0, 2, 3, 1)), self.input)

    def from_native(self, outputs: np.ndarray) -> np.ndarray:
        real = dequantize(outputs, self.output)
        return np.ascontiguousarray(real.transpose(0, 3, 1, 2)) if real.ndim == 4 else real
