"""Export to ONNX with BatchNorm folded, a dynamic batch dimension, and the preprocessing and class names in the
model's metadata_props (read back by ``OnnxBackend``)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobilenetv2.errors import UserError
from mobilenetv2.export.fuse import fuse_bn
from mobilenetv2.export.runtime import META_ARCHITECTURE, META_CLASS_NAMES, META_PREPROCESSING, META_TASK
from mobilenetv2.extras import require
from mobilenetv2.weights import CheckpointMeta

DEFAULT_OPSET = 18


def model_metadata(meta: CheckpointMeta) -> dict[str, str]:
    """What an exported file stores beside the graph (JSON strings): task, architecture, class names, preprocessing."""
    return {
        META_TASK: json.dumps(meta.task),
        META_ARCHITECTURE: json.dumps(meta.architecture),
        META_CLASS_NAMES: json.dumps(meta.class_names),
        META_PREPROCESSING: json.dumps(meta.preprocessing.to_dict()),
    }


def export_onnx(model: nn.Module, path: str | os.PathLike[str], *, opset: int = DEFAULT_OPSET,
                input_size: int, metadata: dict[str, str], output_names: list[str] | None = None) -> Path:
    """Write ``model`` (BatchNorm folded, eval mode) to ``path`` as ONNX with a dynamic batch dimension.

    Not atomic by itself: callers write to ``io.atomic_path`` and verify before the file takes its final name.
    """
    onnx = require("onnx", "deploy")
    require("onnxscript", "deploy")  # torch.onnx.export(dynamo=True) needs it

    if not 13 <= opset <= 23:
        raise UserError(f"--opset must be between 13 and 23, got {opset}")
    fused = fuse_bn(model)
    example = torch.randn(2, model.in_chans, input_size, input_size)
    path = Path(path)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            # external_data=False: weights inside the file, no "<name>.data" left beside it (models here are < 2 GB)
            torch.onnx.export(fused, (example,), str(path), dynamo=True, opset_version=opset, optimize=True,
                              external_data=False, input_names=["images"], output_names=output_names or ["logits"],
                              dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},), verbose=False)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - the exporter raises many types; one line is what the user needs
        raise UserError(f"this model cannot be exported to ONNX: {first_line(exc)}") from None
    proto = onnx.load(str(path))
    set_metadata(proto, metadata)
    onnx.save(proto, str(path))
    return path


def set_metadata(proto: Any, metadata: dict[str, str]) -> None:
    """Replace/add string entries in an ONNX ModelProto's metadata_props."""
    existing = {p.key: p for p in proto.metadata_props}
    for key, value in metadata.items():
        if key in existing:
            existing[key].value = value
        else:
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0][:200] if text else type(exc).__name__)
