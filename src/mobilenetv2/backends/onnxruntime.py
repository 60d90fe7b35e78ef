"""onnxruntime as a backend: ``.onnx`` files (fp32, or int8 in QDQ/QOperator form) on the CPU execution provider."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mobilenetv2.backends.base import Runtime, RuntimeOptions
from mobilenetv2.errors import UserError, first_line
from mobilenetv2.extras import require

if TYPE_CHECKING:
    from mobilenetv2.weights import CheckpointMeta

ONNX_DTYPES = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8,
               "tensor(float16)": np.float16}


def session_options(threads: int | None = None, spin: bool = True):
    """All graph optimisations, ``threads`` intra-op threads, sequential execution; ``spin=False`` stops idle worker
    threads from busy-waiting, which would steal the CPU from whatever runs next (a server's decoding, the other
    paths of an interleaved benchmark)."""
    ort = require("onnxruntime", "onnxruntime")

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


class OnnxRuntime(Runtime):
    """An onnxruntime session on the CPU; inputs as the graph declares them (NCHW float32 for our exports)."""

    backend = "onnxruntime"

    def __init__(self, path: Path, meta: CheckpointMeta, options: RuntimeOptions | None = None, *, format: str,  # noqa: A002
                 precision: str = "fp32") -> None:
        super().__init__(meta, path, precision=precision, format=format)
        ort = require("onnxruntime", "onnxruntime")
        options = options or RuntimeOptions()
        try:
            self.session = ort.InferenceSession(str(path), session_options(options.threads, options.spin),
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types for a bad file
            raise UserError(f"{path} is not a loadable ONNX model ({first_line(exc, 160)})") from exc
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        self.input_dtype = np.dtype(ONNX_DTYPES.get(first.type, np.float32))
        self.input_shape = tuple(d if isinstance(d, int) else None for d in first.shape)
        if len(self.input_shape) == 4 and self.input_shape[-1] in (1, 3) and self.input_shape[1] not in (1, 3):
            self.input_layout = "NHWC"
        if len(self.input_shape) == 4 and self.input_shape[0] is not None:
            self.max_batch = self.input_shape[0]

    def run(self, inputs: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: inputs})[0]

    def to_native(self, images: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(images.transpose(0, 2, 3, 1)) if self.input_layout == "NHWC" else images
