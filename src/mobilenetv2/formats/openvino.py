"""OpenVINO IR: ``model.xml`` (the graph) and ``model.bin`` (the weights) beside it, converted from PyTorch with
BatchNorm folded, fp32 weights (not OpenVINO's default fp16 compression), a dynamic batch, and the metadata in the
IR's own ``rt_info`` (``<rt_info><mobilenetv2><task value=.../>...``), so the two files are the whole model. int8:
the onnxruntime QDQ model (``formats/onnx.py``, calibrated on real images) read into OpenVINO and saved as IR; its
QuantizeLinear/DequantizeLinear pairs become OpenVINO's FakeQuantize, which the CPU plugin runs in int8.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mobilenetv2.backends.openvino import read_model
from mobilenetv2.errors import UserError, first_line
from mobilenetv2.extras import require
from mobilenetv2.formats.base import (
    META_ARCHITECTURE,
    META_CLASS_NAMES,
    META_PRECISION,
    META_PREPROCESSING,
    META_TASK,
    Format,
    QuantizeOptions,
    meta_from_entries,
    metadata_entries,
)
from mobilenetv2.tasks import get_task
from mobilenetv2.weights import CheckpointMeta

if TYPE_CHECKING:
    from torch import nn

RT_INFO_SECTION = "mobilenetv2"  # rt_info["mobilenetv2"]["task"] holds the entry "mobilenetv2.task", and so on


def set_metadata(model: Any, entries: dict[str, str]) -> None:
    """Store metadata entries (JSON strings) in an ``openvino.Model``'s rt_info."""
    for key, value in entries.items():
        model.set_rt_info(value, [RT_INFO_SECTION, key.removeprefix("mobilenetv2.")])


def get_metadata(model: Any) -> dict[str, str]:
    """The metadata entries stored by ``set_metadata`` (none for an IR written elsewhere)."""
    keys = (META_TASK, META_ARCHITECTURE, META_CLASS_NAMES, META_PREPROCESSING, META_PRECISION)
    found = {key: [RT_INFO_SECTION, key.removeprefix("mobilenetv2.")] for key in keys}
    return {key: model.get_rt_info(where).astype(str) for key, where in found.items() if model.has_rt_info(where)}


def save_ir(model: Any, path: Path, entries: dict[str, str]) -> None:
    """``path`` (.xml) and its .bin, fp32 weights kept as they are, the metadata in rt_info."""
    ov = require("openvino", "openvino")
    set_metadata(model, entries)
    ov.save_model(model, str(path), compress_to_fp16=False)


def name_tensors(model: Any, output_names: list[str]) -> None:
    model.inputs[0].get_tensor().set_names({"images"})
    for port, name in zip(model.outputs, output_names):
        port.get_tensor().set_names({name})


class OpenVinoFormat(Format):
    name = "openvino"
    companions = (".bin",)  # the weights, beside the graph: export and quantize write both atomically

    def export(self, model: nn.Module, path: Path, meta: CheckpointMeta, *, opset: int | None = None) -> None:
        """Convert the BN-folded model (traced at batch 1, any batch allowed) and save it as IR."""
        import torch

        from mobilenetv2.models.fuse import fuse_bn

        ov = require("openvino", "openvino")
        size, channels = meta.preprocessing.input_size, model.in_chans
        example = torch.randn(1, channels, size, size)
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
                warnings.simplefilter("ignore")  # the tracer's warnings are about its own heuristics, not the model
                converted = ov.convert_model(fuse_bn(model).eval(), example_input=example,
                                             input=[ov.PartialShape([-1, channels, size, size])])
        except Exception as exc:  # noqa: BLE001 - the converter raises many types; one line is what the user needs
            raise UserError(f"this model cannot be converted to OpenVINO: {first_line(exc)}") from exc
        name_tensors(converted, get_task(meta.task).output_names)
        save_ir(converted, Path(path), metadata_entries(meta, "fp32"))

    def quantize_method(self, options: QuantizeOptions) -> str:
        from mobilenetv2.formats.onnx import FORMAT as ONNX

        return ONNX.quantize_method(options)

    def quantize(self, model: nn.Module, path: Path, meta: CheckpointMeta, calibration: Iterable[np.ndarray],
                 options: QuantizeOptions, *, fp32_path: Path | None = None) -> None:
        """onnxruntime's static QDQ quantization of the ONNX export (same calibration and options as ``.onnx``), read
        into OpenVINO and saved as IR."""
        from mobilenetv2.formats.onnx import FORMAT as ONNX

        ov = require("openvino", "openvino")
        with tempfile.TemporaryDirectory(prefix="mobilenetv2-quant-") as tmp:
            int8_onnx = Path(tmp) / "int8.onnx"
            ONNX.quantize(model, int8_onnx, meta, calibration, options)
            converted = ov.convert_model(str(int8_onnx))
            name_tensors(converted, get_task(meta.task).output_names)
            save_ir(converted, Path(path), {**metadata_entries(meta, "int8"), META_PRECISION: '"int8"'})

    def read_meta(self, path: Path) -> tuple[CheckpointMeta, str | None]:
        model = read_model(Path(path))
        shape = model.inputs[0].get_partial_shape()
        size = shape[3].get_length() if len(shape) == 4 and shape[3].is_static else None
        meta, precision = meta_from_entries(get_metadata(model), path, size)
        if precision is None:
            precision = "int8" if any(op.get_type_name() == "FakeQuantize" for op in model.get_ops()) else "fp32"
        return meta, precision


FORMAT = OpenVinoFormat()
