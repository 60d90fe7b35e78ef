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

from mobilenetv2.data.preprocessing import Preprocessing
from mobilenetv2.errors import UserError
from mobilenetv2.export.fuse import fuse_bn
from mobilenetv2.export.runtime import META_ARCHITECTURE, META_CLASS_NAMES, META_PREPROCESSING

DEFAULT_OPSET = 18


def model_metadata(model: nn.Module, class_names: list[str] | None = None,
                   preprocessing: Preprocessing | None = None) -> dict[str, str]:
    """What an exported file stores beside the graph (JSON strings): architecture, class names, preprocessing."""
    class_names = class_names if class_names is not None else getattr(model, "class_names", None)
    preprocessing = preprocessing or getattr(model, "preprocessing", None) or Preprocessing()
    return {
        META_ARCHITECTURE: json.dumps(getattr(model, "arch", None)),
        META_CLASS_NAMES: json.dumps(list(class_names) if class_names is not None else None),
        META_PREPROCESSING: json.dumps(preprocessing.to_dict()),
    }


def export_onnx(model: nn.Module, path: str | os.PathLike[str], *, opset: int = DEFAULT_OPSET,
                input_size: int | None = None, metadata: dict[str, str] | None = None) -> Path:
    """Write ``model`` (BatchNorm folded, eval mode) to ``path`` as ONNX with a dynamic batch dimension.

    Not atomic by itself: callers write to ``io.atomic_path`` and verify before the file takes its final name.
    """
    import onnx

    if not 13 <= opset <= 23:
        raise UserError(f"--opset must be between 13 and 23, got {opset}")
    fused = fuse_bn(model)
    size = input_size or getattr(getattr(model, "preprocessing", None), "input_size", 224)
    example = torch.randn(2, getattr(model, "in_chans", 3), size, size)
    path = Path(path)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(fused, (example,), str(path), dynamo=True, opset_version=opset, optimize=True,
                              input_names=["images"], output_names=["logits"],
                              dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},), verbose=False)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - the exporter raises many types; one line is what the user needs
        raise UserError(f"this model cannot be exported to ONNX: {first_line(exc)}") from None
    proto = onnx.load(str(path))
    set_metadata(proto, metadata or model_metadata(model))
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
