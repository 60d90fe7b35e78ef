"""ONNX: BatchNorm folded, a dynamic batch, the metadata in ``metadata_props``; int8 by onnxruntime's static
quantization (QDQ or QOperator, per-channel int8 weights, uint8 activations calibrated on real images)."""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mobilenetv2.errors import UserError, first_line
from mobilenetv2.extras import available, require
from mobilenetv2.formats.base import META_PRECISION, Format, QuantizeOptions, meta_from_entries, metadata_entries
from mobilenetv2.tasks import get_task
from mobilenetv2.weights import CheckpointMeta

if TYPE_CHECKING:
    from torch import nn

DEFAULT_OPSET = 18
METHODS = ("minmax", "percentile", "entropy")
QUANT_FORMATS = ("qdq", "qoperator")
INT8_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger"}


class OnnxFormat(Format):
    name = "onnx"

    def export(self, model: nn.Module, path: Path, meta: CheckpointMeta, *, opset: int | None = None) -> None:
        import torch

        from mobilenetv2.models.fuse import fuse_bn

        opset = opset or DEFAULT_OPSET
        if not 13 <= opset <= 23:
            raise UserError(f"--opset must be between 13 and 23, got {opset}")
        onnx = require("onnx", "deploy")
        require("onnxscript", "deploy")  # torch.onnx.export(dynamo=True) needs it
        size = meta.preprocessing.input_size
        example = torch.randn(2, model.in_chans, size, size)
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                # external_data=False: weights inside the file, no "<name>.data" beside it (models here are < 2 GB)
                torch.onnx.export(fuse_bn(model), (example,), str(path), dynamo=True, opset_version=opset, optimize=True,
                                  external_data=False, input_names=["images"], output_names=get_task(meta.task).output_names,
                                  dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},), verbose=False)
        except Exception as exc:  # noqa: BLE001 - the exporter raises many types; one line is what the user needs
            raise UserError(f"this model cannot be exported to ONNX: {first_line(exc)}") from exc
        proto = onnx.load(str(path))
        set_metadata(proto, metadata_entries(meta, "fp32"))
        onnx.save(proto, str(path))

    def quantize_method(self, options: QuantizeOptions) -> str:
        if options.io:
            raise UserError("--io applies to .tflite files only")
        method = options.method or "minmax"
        if method not in METHODS:
            raise UserError(f"unknown calibration method {method!r}; allowed: {', '.join(METHODS)}")
        if options.quant_format not in QUANT_FORMATS:
            raise UserError(f"unknown quantization format {options.quant_format!r}; allowed: {', '.join(QUANT_FORMATS)}")
        return method

    def quantize(self, model: nn.Module, path: Path, meta: CheckpointMeta, calibration: Iterable[np.ndarray],
                 options: QuantizeOptions, *, fp32_path: Path | None = None) -> None:
        with tempfile.TemporaryDirectory(prefix="mobilenetv2-quant-") as tmp:
            if fp32_path is None:
                fp32_path = Path(tmp) / "fp32.onnx"
                self.export(model, fp32_path, meta)
            quantize_onnx(fp32_path, path, calibration, method=self.quantize_method(options),
                          quant_format=options.quant_format, per_channel=options.per_channel,
                          reduce_range=options.reduce_range, float_tail=get_task(meta.task).float_output_tail)

    def read_meta(self, path: Path) -> tuple[CheckpointMeta, str | None]:
        """The stored metadata: read by onnxruntime where our entries say the precision (importing onnx costs ~1 s of
        start-up, most of it ml_dtypes), else from the graph with onnx (a foreign file: int8 if it has int8 ops)."""
        if not Path(path).is_file():
            raise UserError(f"ONNX model not found: {path}")
        if available("onnxruntime"):
            entries, size = ort_metadata(path)
            if META_PRECISION in entries:
                return meta_from_entries(entries, path, size)
        onnx = require("onnx", "onnxruntime")
        from google.protobuf.message import DecodeError  # onnx's protobuf

        try:
            proto = onnx.load(str(path), load_external_data=False)
        except (DecodeError, OSError) as exc:
            raise UserError(f"{path} is not a loadable ONNX model ({first_line(exc, 160)})") from exc
        meta, precision = meta_from_entries({p.key: p.value for p in proto.metadata_props}, path, _static_size(proto))
        if precision is None:
            precision = "int8" if any(node.op_type in INT8_OPS for node in proto.graph.node) else "fp32"
        return meta, precision


def ort_metadata(path: Path) -> tuple[dict[str, str], int | None]:
    """(metadata entries, static input size or None) as onnxruntime reads them, no graph optimisation; ({}, None) for a
    file onnxruntime cannot load (``onnx`` then says why)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - onnxruntime raises its own types for a bad file; onnx's reader names the cause
        return {}, None
    shape = session.get_inputs()[0].shape if session.get_inputs() else []
    size = shape[-1] if len(shape) == 4 and isinstance(shape[-1], int) else None
    return dict(session.get_modelmeta().custom_metadata_map), size


def _static_size(proto: Any) -> int | None:
    dims = proto.graph.input[0].type.tensor_type.shape.dim if proto.graph.input else []
    return dims[-1].dim_value or None if len(dims) == 4 else None


def set_metadata(proto: Any, metadata: dict[str, str]) -> None:
    """Replace/add string entries in an ONNX ModelProto's metadata_props."""
    existing = {p.key: p for p in proto.metadata_props}
    for key, value in metadata.items():
        if key in existing:
            existing[key].value = value
        else:
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value


class BatchReader:
    """onnxruntime's CalibrationDataReader over an iterable of float32 NCHW batches."""

    def __init__(self, input_name: str, batches: Iterable[np.ndarray]) -> None:
        self.input_name = input_name
        self._batches: Iterator[np.ndarray] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)}


def quantize_onnx(fp32_path: str | Path, out: str | Path, calibration: Iterable[np.ndarray], *,
                  method: str = "minmax", quant_format: str = "qdq", per_channel: bool = True,
                  reduce_range: bool = False, preprocess: bool = True, float_tail: bool = False) -> Path:
    """Static int8 quantization: uint8 activations calibrated on ``calibration`` batches, int8 weights.

    ``preprocess`` runs onnxruntime's ``quant_pre_process`` (shape inference and graph optimisation) first.
    ``float_tail`` keeps the nodes after the last convolutions in float (a detector's box decoding and concat).
    The fp32 model's metadata is copied, with the precision set to int8. Writes ``out`` directly.
    """
    onnx = require("onnx", "deploy")
    require("onnxruntime", "deploy")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in METHODS:
        raise UserError(f"unknown calibration method {method!r}; allowed: {', '.join(METHODS)}")
    if quant_format not in QUANT_FORMATS:
        raise UserError(f"unknown quantization format {quant_format!r}; allowed: {', '.join(QUANT_FORMATS)}")
    fp32 = onnx.load(str(fp32_path))
    with tempfile.TemporaryDirectory(prefix="mobilenetv2-quant-") as tmp:
        source = Path(fp32_path)
        if preprocess:
            source = Path(tmp) / "preprocessed.onnx"
            quant_pre_process(str(fp32_path), str(source), skip_symbolic_shape=True)
        exclude = tail_nodes(onnx.load(str(source)).graph) if float_tail else []
        quantize_static(
            str(source), str(out), BatchReader(fp32.graph.input[0].name, calibration),
            quant_format=QuantFormat.QDQ if quant_format == "qdq" else QuantFormat.QOperator,
            per_channel=per_channel, reduce_range=reduce_range,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method={"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                              "entropy": CalibrationMethod.Entropy}[method],
            extra_options={"CalibTensorRangeSymmetric": False}, nodes_to_exclude=exclude,
        )
    int8 = onnx.load(str(out))
    set_metadata(int8, {**{p.key: p.value for p in fp32.metadata_props}, META_PRECISION: json.dumps("int8")})
    onnx.save(int8, str(out))
    return Path(out)


def tail_nodes(graph: Any) -> list[str]:
    """Names of the nodes between the last weighted layers (Conv, Gemm, MatMul) and the graph's outputs."""
    producer = {out: node for node in graph.node for out in node.output}
    pending, seen, tail = [o.name for o in graph.output], set(), []
    while pending:
        node = producer.get(pending.pop())
        if node is None or node.name in seen or node.op_type in ("Conv", "Gemm", "MatMul"):
            continue
        seen.add(node.name)
        tail.append(node.name)
        pending.extend(node.input)
    return tail


FORMAT = OnnxFormat()
