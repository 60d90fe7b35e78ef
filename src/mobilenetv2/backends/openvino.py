"""OpenVINO as a backend: ``.onnx`` files (fp32, or int8 in QDQ form) and OpenVINO IR (``.xml`` + ``.bin``) on the CPU.

The precision is always pinned: OpenVINO's CPU plugin runs fp32 models in bf16 by default where the CPU has bf16
(AMX, AVX-512 BF16), which would make an "fp32" runtime answer in bf16. Here fp32 (and the float parts of an int8
model) run in f32, and bf16 only when it is asked for (``precision="bf16"``, ``--backend openvino:bf16``).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mobilenetv2.backends.base import Runtime, RuntimeOptions
from mobilenetv2.errors import UserError, first_line
from mobilenetv2.extras import require

if TYPE_CHECKING:
    from mobilenetv2.weights import CheckpointMeta

# The runtime's precision -> OpenVINO's inference precision hint (what the float operations compute in).
INFERENCE_PRECISION = {"fp32": "f32", "int8": "f32", "bf16": "bf16"}
_core: Any = None


def core() -> Any:
    """The process's ``openvino.Core`` (creating one costs tens of ms); one line naming the extra when missing."""
    global _core
    if _core is None:
        _core = require("openvino", "openvino").Core()
    return _core


def cpu_has_bf16() -> bool:
    """Whether OpenVINO's CPU plugin runs bf16 natively here (AMX-BF16 or AVX-512 BF16)."""
    return "BF16" in core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def read_model(path: Path) -> Any:
    """An ``openvino.Model`` from an ONNX file or an IR ``.xml`` (its ``.bin`` beside it); one line if it fails."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model not found: {path}")
    if path.suffix.lower() == ".xml" and not path.with_suffix(".bin").is_file():
        raise UserError(f"{path}: its weights file {path.with_suffix('.bin').name} is missing (an OpenVINO IR is "
                        f"the .xml and the .bin beside it)")
    engine = core()  # outside the try: a missing extra is its own one-line error
    try:
        return engine.read_model(str(path))
    except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError subclasses for a bad file
        raise UserError(f"{path} is not a model OpenVINO can read ({first_line(exc, 160)})") from exc


class OpenVinoRuntime(Runtime):
    """A model compiled for OpenVINO's CPU plugin: ``precision`` fp32 (pinned f32), bf16 (needs the CPU's bf16), or
    int8 (a quantized file; its float parts in f32)."""

    backend = "openvino"
    precisions = ("fp32", "bf16")

    def __init__(self, path: Path, meta: CheckpointMeta, options: RuntimeOptions | None = None, *, format: str,  # noqa: A002
                 precision: str = "fp32") -> None:
        if precision not in INFERENCE_PRECISION:
            raise UserError(f"OpenVINO runs fp32, bf16 or int8 here, not {precision}")
        super().__init__(meta, path, precision=precision, format=format)
        if precision == "bf16" and not cpu_has_bf16():
            raise UserError("this CPU has no bf16 instructions (AMX-BF16 or AVX-512 BF16): OpenVINO would emulate bf16 "
                            "or fall back to f32; run fp32 instead")
        options = options or RuntimeOptions()
        model = read_model(Path(path))
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": INFERENCE_PRECISION[precision],
                                  "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
        if options.threads is not None:
            config["INFERENCE_NUM_THREADS"] = int(options.threads)
        try:
            self.compiled = core().compile_model(model, "CPU", config)
        except Exception as exc:  # noqa: BLE001 - the plugin raises RuntimeError subclasses and others; the cause is kept
            raise UserError(f"OpenVINO cannot compile {path} ({first_line(exc, 160)})") from exc
        self.request = self.compiled.create_infer_request()
        self._lock = threading.Lock()  # an infer request runs one call at a time
        shape = model.inputs[0].get_partial_shape()
        self.input_shape = tuple(d.get_length() if d.is_static else None for d in shape)
        self.input_dtype = np.dtype(model.inputs[0].get_element_type().to_dtype())
        if len(self.input_shape) == 4 and self.input_shape[-1] in (1, 3) and self.input_shape[1] not in (1, 3):
            self.input_layout = "NHWC"
        if self.input_shape and self.input_shape[0] is not None:
            self.max_batch = self.input_shape[0]

    def run(self, inputs: np.ndarray) -> np.ndarray:
        with self._lock:
            return self.request.infer({0: np.ascontiguousarray(inputs)})[0]

    def to_native(self, images: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(images.transpose(0, 2, 3, 1)) if self.input_layout == "NHWC" else images
