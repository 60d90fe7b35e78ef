"""Run an exported ONNX classifier with onnxruntime (contract C4): float32 NCHW batches in, logits out."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from mobilenetv2.errors import UserError
from mobilenetv2.extras import require
from mobilenetv2.spec import Preprocessing

# Keys of the ONNX model's metadata_props written by `export_onnx` (values are JSON).
META_CLASS_NAMES = "mobilenetv2.class_names"
META_PREPROCESSING = "mobilenetv2.preprocessing"
META_ARCHITECTURE = "mobilenetv2.architecture"
META_TASK = "mobilenetv2.task"


def session_options(threads: int | None = None, spin: bool = True):
    """onnxruntime session options: all graph optimisations, ``threads`` intra-op threads, sequential execution.

    ``spin=False`` stops idle worker threads from busy-waiting, which would steal the CPU from whatever runs next
    (benchmarks that interleave onnxruntime with PyTorch use it).
    """
    ort = require("onnxruntime", "deploy")

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


class OnnxBackend:
    """An onnxruntime session for a classifier exported by ``mobilenetv2 export`` (or any 1-input ONNX classifier)."""

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None, *, spin: bool = True) -> None:
        ort = require("onnxruntime", "deploy")

        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"ONNX model not found: {self.path}")
        if threads is not None and threads < 1:
            raise UserError(f"threads must be >= 1, got {threads}")
        try:
            self.session = ort.InferenceSession(str(self.path), session_options(threads, spin),
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types for a bad file
            first_line = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise UserError(f"{self.path} is not a loadable ONNX model ({first_line})") from None
        self.input_name = self.session.get_inputs()[0].name
        meta = self.session.get_modelmeta().custom_metadata_map
        self.architecture: dict[str, Any] | None = _json(meta.get(META_ARCHITECTURE))
        self.class_names: list[str] | None = _json(meta.get(META_CLASS_NAMES))
        self.task: str = _json(meta.get(META_TASK)) or "classification"
        stored = _json(meta.get(META_PREPROCESSING))
        self.preprocessing = Preprocessing.from_dict(stored) if stored else Preprocessing(input_size=self._static_size())

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """float32 NCHW normalised images -> float32 logits of shape (N, num_classes)."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 4:
            raise UserError(f"input must have 4 dimensions (N, C, H, W), got shape {batch.shape}")
        return self.session.run(None, {self.input_name: batch})[0]

    def _static_size(self) -> int:
        shape = self.session.get_inputs()[0].shape
        return shape[-1] if len(shape) == 4 and isinstance(shape[-1], int) else 224


def _json(value: str | None) -> Any:
    return json.loads(value) if value else None
