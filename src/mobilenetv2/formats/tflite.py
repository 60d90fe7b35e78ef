"""LiteRT / TensorFlow Lite flatbuffers (``.tflite``): what Android apps, Coral boards and microcontrollers run.

Export converts the BN-folded model with litert-torch (Google's maintained PyTorch converter) so that the file takes
NHWC images (and gives NHWC maps for dense tasks), the layout apps feed. int8 is full-integer post-training
quantization by ai-edge-quantizer (int8 weights per output channel, int8 activations calibrated min-max on real
photos), then the input/output type the app wants (``--io uint8|int8|float``: LiteRT's own interface rewrite).
Our metadata (task, class names, normalisation, and the input's type and quantisation) lives in FILE.tflite.json
beside the file: the TFLite metadata writer (tflite-support) needs protobuf < 4, which no current package set has.
A file without it (a published one) is read by its tensors: the input's size and quantisation, and a classifier or,
when its output is a map of class indices (ARG_MAX) or scores, a segmentation model; and by its TFLite Metadata when
it has some (the label file zipped onto it, a float input's normalisation: ``weights/tflite_metadata.py``)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mobilenetv2.backends.litert import open_interpreter, output_kind
from mobilenetv2.errors import UserError, first_line
from mobilenetv2.extras import require
from mobilenetv2.formats.base import Format, QuantizeOptions, metadata_entries
from mobilenetv2.io import atomic_write_text
from mobilenetv2.weights import CheckpointMeta
from mobilenetv2.weights.tflite_metadata import input_preprocessing, metadata_labels, read_metadata

if TYPE_CHECKING:
    from torch import nn

IO_TYPES = ("uint8", "int8", "float")
DEFAULT_IO = "uint8"  # what Google's published files, the Edge TPU and microcontroller kernels take
TFLITE_TYPES = {"uint8": 3, "int8": 9}  # the schema's TensorType numbers, as LiteRT's interface rewrite takes them
META_INPUT = "mobilenetv2.input"
META_OUTPUT = "mobilenetv2.output"


@contextlib.contextmanager
def quiet_native() -> Iterator[io.StringIO]:
    """Keep the converters' progress lines, warnings and C++ logs (written to file descriptor 2) off the terminal."""
    captured = io.StringIO()
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
                warnings.simplefilter("ignore")
                yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _litert_torch() -> Any:
    module = require("litert_torch", "mobile")
    module.progress.console.quiet = True  # its rich progress lines go to stdout otherwise
    return module


def convert_nhwc(model: nn.Module, meta: CheckpointMeta) -> bytes:
    """The BN-folded ``model`` as a LiteRT flatbuffer with an NHWC input of ``meta``'s size (batch 1); a 4-D output
    (segmentation scores) is NHWC too. One line naming the cause when the converter refuses the model."""
    import torch

    from mobilenetv2.models.fuse import fuse_bn

    size = meta.preprocessing.input_size
    with quiet_native():
        litert_torch = _litert_torch()
        folded = fuse_bn(model).eval()
        example = torch.randn(1, model.in_chans, size, size, generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            dense = folded(example).ndim == 4
        wrapped = litert_torch.to_channel_last_io(folded, args=[0], outputs=[0] if dense else []).eval()
        try:
            return litert_torch.convert(wrapped, (example.permute(0, 2, 3, 1).contiguous(),)).model_content()
        except Exception as exc:  # noqa: BLE001 - torch.export and the converter raise many types
            raise UserError(f"this model cannot be converted to LiteRT: {first_line(exc, 200)}") from exc


def _calibration_samples(calibration: Iterable[np.ndarray], name: str) -> Iterator[dict[str, np.ndarray]]:
    for batch in calibration:
        for image in np.asarray(batch, dtype=np.float32):
            yield {name: np.ascontiguousarray(image.transpose(1, 2, 0)[None])}


def quantize_full_integer(fp32_path: Path, calibration: Iterable[np.ndarray], *, per_channel: bool = True) -> bytes:
    """ai-edge-quantizer's static int8 (weights and activations, min-max ranges from ``calibration``: normalised
    float32 NCHW batches) of a float .tflite, keeping float input and output around QUANTIZE/DEQUANTIZE ops."""
    require("ai_edge_quantizer", "mobile")
    from ai_edge_quantizer import qtyping, quantizer
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    ops = qtyping.TFLOperationName
    granularity = qtyping.QuantGranularity.CHANNELWISE if per_channel else qtyping.QuantGranularity.TENSORWISE
    with quiet_native():
        signature, inputs = _signature(fp32_path)
        engine = quantizer.Quantizer(str(fp32_path))
        engine.add_static_config(".*", ops.ALL_SUPPORTED, 8, 8, granularity)
        for op in (ops.INPUT, ops.OUTPUT):  # the interface is set afterwards (set_io_type)
            engine.update_quantization_recipe(".*", op, algorithm_key=AlgorithmName.NO_QUANTIZE)
        ranges = engine.calibrate({signature: list(_calibration_samples(calibration, inputs[0]))}, num_threads=1)
        return bytes(engine.quantize(ranges, enable_progress_report=False).quantized_model)


def _signature(path: Path) -> tuple[str, list[str]]:
    interpreter = open_interpreter(path)
    (name, signature), *_ = interpreter.get_signature_list().items()
    return name, signature["inputs"]


def set_io_type(model: bytes, io_type: str) -> bytes:
    """``model`` (float input/output around QUANTIZE/DEQUANTIZE) with a ``io_type`` interface: LiteRT's rewrite drops
    the boundary ops for int8, and keeps a requantizing op for uint8 (as TensorFlow's converter does)."""
    if io_type == "float":
        return model
    from ai_edge_litert import _pywrap_modify_model_interface as interface
    from ai_edge_litert.tools import flatbuffer_utils

    with tempfile.TemporaryDirectory(prefix="mobilenetv2-tflite-") as tmp:
        source, target = Path(tmp) / "float_io.tflite", Path(tmp) / "io.tflite"
        # written back as one flatbuffer: the rewrite does not follow buffers stored after it (ai-edge-quantizer's)
        flatbuffer_utils.write_model(flatbuffer_utils.read_model_from_bytearray(bytearray(model)), str(source))
        code = TFLITE_TYPES[io_type]
        with quiet_native():
            status = interface.modify_model_interface(str(source), str(target), code, code)
        if status != 0:
            raise UserError(f"LiteRT could not give the int8 model a {io_type} input and output (status {status})")
        return target.read_bytes()


def tensor_description(detail: dict[str, Any], layout: str | None = None) -> dict[str, Any]:
    """A tensor as an app needs it: shape, type, and the (scale, zero point) of a quantised one."""
    scale, zero = detail["quantization"]
    described = {"shape": [int(d) for d in detail["shape"]], "dtype": np.dtype(detail["dtype"]).name}
    if layout:
        described["layout"] = layout
    if scale:
        described.update(scale=float(scale), zero_point=int(zero))
    return described


class TFLiteFormat(Format):
    name = "tflite"
    sidecar = True

    def export(self, model: nn.Module, path: Path, meta: CheckpointMeta, *, opset: int | None = None) -> None:
        if opset is not None:
            raise UserError("--opset applies to ONNX only")
        Path(path).write_bytes(convert_nhwc(model, meta))

    def quantize_method(self, options: QuantizeOptions) -> str:
        given = [flag for flag, used in [("--method", options.method), ("--quant-format", options.quant_format != "qdq"),
                                         ("--reduce-range", options.reduce_range)] if used]
        if given:
            raise UserError(f"{', '.join(given)} apply to ONNX (onnxruntime) only; LiteRT's int8 calibrates min-max "
                            f"ranges (allowed with .tflite: --num-calib, --per-tensor, --io)")
        io_type = options.io or DEFAULT_IO
        if io_type not in IO_TYPES:
            raise UserError(f"--io must be one of {', '.join(IO_TYPES)}, got {io_type!r}")
        return f"min-max, {io_type} I/O"

    def quantize(self, model: nn.Module, path: Path, meta: CheckpointMeta, calibration: Iterable[np.ndarray],
                 options: QuantizeOptions, *, fp32_path: Path | None = None) -> None:
        self.quantize_method(options)
        with tempfile.TemporaryDirectory(prefix="mobilenetv2-tflite-") as tmp:
            if fp32_path is None:
                fp32_path = Path(tmp) / "fp32.tflite"
                self.export(model, fp32_path, meta)
            try:
                int8 = quantize_full_integer(fp32_path, calibration, per_channel=options.per_channel)
            except (ValueError, RuntimeError) as exc:
                raise UserError(f"ai-edge-quantizer could not quantize this model: {first_line(exc, 200)}") from exc
        Path(path).write_bytes(set_io_type(int8, options.io or DEFAULT_IO))

    def finish(self, path: Path, meta: CheckpointMeta, precision: str) -> None:
        """The metadata JSON beside the file, with the input and output tensors as an app must feed and read them."""
        interpreter = open_interpreter(path)
        entries = {key: json.loads(value) for key, value in metadata_entries(meta, precision).items()}
        entries[META_INPUT] = tensor_description(interpreter.get_input_details()[0], "NHWC")
        entries[META_OUTPUT] = {**tensor_description(interpreter.get_output_details()[0]),
                                "holds": output_kind(interpreter)[0]}
        atomic_write_text(self.sidecar_path(path), json.dumps(entries, indent=2))

    def read_meta(self, path: Path) -> tuple[CheckpointMeta, str | None]:
        if self.sidecar_path(path).is_file():
            return super().read_meta(path)
        interpreter = open_interpreter(path)
        kind, argmax_classes = output_kind(interpreter)
        dense = kind == "class_indices" or len(interpreter.get_output_details()[0]["shape"]) == 4
        metadata = read_metadata(path)
        classes = argmax_classes or int(interpreter.get_output_details()[0]["shape"][-1])
        return CheckpointMeta(architecture={}, task="segmentation" if dense else "classification",
                              class_names=metadata_labels(Path(path), metadata, classes),
                              preprocessing=input_preprocessing(interpreter, metadata),
                              extra={"num_classes": classes}), None  # a file without labels names its classes 0, 1, ...


FORMAT = TFLiteFormat()
