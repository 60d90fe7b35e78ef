"""The ``mobilenetv2 quantize`` workflow: export fp32, quantize to int8 (ONNX or ExecuTorch), compare side by side."""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mobilenetv2.errors import UserError
from mobilenetv2.io import atomic_path

MAX_DROP_POINTS = 1.0
RUNTIMES = {"onnxruntime": "onnx", "executorch": "pte"}  # runtime -> the file format it runs


@dataclass
class QuantizeReport:
    """fp32 vs int8 (ONNX or ExecuTorch) on the same validation images, plus sizes and batch-1 latency."""

    out: str
    runtime: str
    method: str
    calibration_images: int
    val_images: int
    fp32_top1: float
    int8_top1: float
    agreement: float         # fraction of validation images where fp32 and int8 predict the same class
    fp32_mb: float
    int8_mb: float
    fp32_ms: float
    int8_ms: float
    threads: int

    @property
    def drop_points(self) -> float:
        return (self.fp32_top1 - self.int8_top1) * 100

    def to_dict(self) -> dict:
        return {**asdict(self), "drop_points": round(self.drop_points, 3)}

    def table(self) -> str:
        from mobilenetv2.reporting import format_table

        fmt = RUNTIMES[self.runtime]
        return format_table(
            ["model", "top-1", "size (MB)", f"batch-1 latency (ms, {self.threads} threads)"],
            [[f"{fmt} fp32", f"{self.fp32_top1:.2%}", f"{self.fp32_mb:.2f}", f"{self.fp32_ms:.2f}"],
             [f"{fmt} int8 ({self.method})", f"{self.int8_top1:.2%}", f"{self.int8_mb:.2f}", f"{self.int8_ms:.2f}"]])

    def verdict(self) -> str:
        summary = (f"int8 vs fp32 on {self.val_images} validation images: top-1 drop {self.drop_points:+.2f} points, "
                   f"same prediction on {self.agreement:.1%}, {self.fp32_mb / self.int8_mb:.1f}x smaller, "
                   f"{self.fp32_ms / self.int8_ms:.1f}x faster")
        if self.drop_points <= MAX_DROP_POINTS:
            return summary
        method = "another --method (percentile, entropy), " if self.runtime == "onnxruntime" else ""
        return (f"{summary}\nwarning: the drop exceeds {MAX_DROP_POINTS:g} point; try more calibration images "
                f"(--num-calib), {method}or quantization-aware training "
                f"(`mobilenetv2 train --qat`, then quantize the result)")


def _split(data: str | None, wanted: str) -> str:
    """``wanted`` for data with train/ and val/ folders (or a CSV/dataset name); every image of a plain class folder."""
    return "all" if data and Path(data).is_dir() and not (Path(data) / wanted).is_dir() else wanted


def predict_logits(backend, loader) -> tuple[np.ndarray, np.ndarray]:
    logits, targets = [], []
    for images, labels in loader:
        if len(images):
            logits.append(backend(images.numpy()))
            targets.append(labels.numpy())
    if not logits:
        raise UserError("no usable validation images")
    return np.concatenate(logits), np.concatenate(targets)


def _check_options(runtime: str, method: str | None, quant_format: str, reduce_range: bool) -> str:
    """The calibration method's name; an error for options the chosen runtime does not have."""
    if runtime not in RUNTIMES:
        raise UserError(f"unknown runtime {runtime!r}; allowed: {', '.join(RUNTIMES)}")
    if runtime == "onnxruntime":
        return method or "minmax"
    given = [flag for flag, used in [("--method", method), ("--format", quant_format != "qdq"),
                                     ("--reduce-range", reduce_range)] if used]
    if given:
        raise UserError(f"{', '.join(given)} apply to --runtime onnxruntime only; ExecuTorch's XNNPACK quantizer "
                        f"calibrates with a histogram observer (allowed with executorch: --num-calib, --per-tensor)")
    return "histogram"


def _int8_pair(runtime: str, model, meta, fp32_path: Path, int8_path: Path, batches: list[np.ndarray], *, method: str,
               quant_format: str, per_channel: bool, reduce_range: bool, threads: int):
    """Write the fp32 and int8 files of ``runtime`` and return their loaded backends."""
    if runtime == "onnxruntime":
        from mobilenetv2.export.exporter import export_model
        from mobilenetv2.export.quantize import quantize_onnx
        from mobilenetv2.export.runtime import OnnxBackend

        export_model(model, fp32_path, "onnx", meta=meta)
        quantize_onnx(fp32_path, int8_path, batches, method=method, quant_format=quant_format,
                      per_channel=per_channel, reduce_range=reduce_range)
        return OnnxBackend(fp32_path, threads), OnnxBackend(int8_path, threads)
    from mobilenetv2.export.executorch import ExecuTorchBackend, export_executorch, quantize_executorch

    export_executorch(model, fp32_path, input_size=meta.input_size)
    quantize_executorch(model, int8_path, batches, per_channel=per_channel, input_size=meta.input_size)
    return ExecuTorchBackend(fp32_path, threads), ExecuTorchBackend(int8_path, threads)


def default_quantized_output(checkpoint: str | os.PathLike[str], runtime: str = "onnxruntime") -> Path:
    """``NAME.int8.onnx`` (or ``.pte``) beside the checkpoint, or ``model.int8.onnx`` inside a run folder."""
    checkpoint, suffix = Path(checkpoint), f".int8.{RUNTIMES.get(runtime, 'onnx')}"
    return checkpoint / f"model{suffix}" if checkpoint.is_dir() else checkpoint.with_suffix(suffix)


def quantize_checkpoint(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], calib: str, *,
                        val: str | None = None, num_calib: int = 128, method: str | None = None,
                        quant_format: str = "qdq", per_channel: bool = True, reduce_range: bool = False,
                        threads: int = 2, speed_rounds: int = 20, runtime: str = "onnxruntime") -> QuantizeReport:
    """Quantize ``checkpoint`` to an int8 file at ``out`` and report fp32 vs int8 accuracy, size and speed.

    ``runtime="onnxruntime"`` writes a QDQ ONNX model; ``"executorch"`` an XNNPACK ``.pte`` program with its
    metadata JSON beside it.
    """
    from mobilenetv2.data import build_eval_loader
    from mobilenetv2.export.quantize import calibration_batches
    from mobilenetv2.timing import time_interleaved
    from mobilenetv2.weights import load_checkpoint

    method = _check_options(runtime, method, quant_format, reduce_range)
    ckpt = load_checkpoint(checkpoint)
    model, pre = ckpt.model, ckpt.preprocessing
    val_loader, val_classes = build_eval_loader(val or calib, pre, split=_split(val, "val"), batch_size=32, workers=0)
    model_classes = ckpt.class_names
    if model_classes and list(model_classes) != list(val_classes):
        raise UserError(f"the validation classes {val_classes} differ from the checkpoint's classes {model_classes}")
    # Without --val, calibration draws from the training split only, so the two never share an image.
    batches = calibration_batches(calib, pre, num_calib, split="train" if val is None else _split(calib, "train"))
    with tempfile.TemporaryDirectory(prefix="mobilenetv2-quant-") as tmp:
        fp32_path = Path(tmp) / f"fp32.{RUNTIMES[runtime]}"
        with atomic_path(out) as int8_path:
            fp32, int8 = _int8_pair(runtime, model, ckpt.meta, fp32_path, int8_path, batches, method=method,
                                    quant_format=quant_format, per_channel=per_channel, reduce_range=reduce_range,
                                    threads=threads)
            fp32_logits, targets = predict_logits(fp32, val_loader)
            int8_logits, _ = predict_logits(int8, val_loader)
            one = np.ascontiguousarray(batches[0][:1])
            speed = time_interleaved({"fp32": lambda: fp32(one), "int8": lambda: int8(one)}, rounds=speed_rounds)
            fp32_mb, int8_mb = fp32_path.stat().st_size / 1e6, int8_path.stat().st_size / 1e6
    if runtime == "executorch":  # .pte has no metadata field: class names and preprocessing go beside it
        from mobilenetv2.export.executorch import sidecar_path
        from mobilenetv2.export.exporter import metadata_json
        from mobilenetv2.io import atomic_write_text

        atomic_write_text(sidecar_path(out), metadata_json(ckpt.meta))
    return QuantizeReport(
        out=str(out), runtime=runtime, method=method, calibration_images=sum(len(b) for b in batches),
        val_images=len(targets), fp32_top1=float((fp32_logits.argmax(1) == targets).mean()),
        int8_top1=float((int8_logits.argmax(1) == targets).mean()),
        agreement=float((fp32_logits.argmax(1) == int8_logits.argmax(1)).mean()), fp32_mb=fp32_mb, int8_mb=int8_mb,
        fp32_ms=speed["fp32"].median_ms, int8_ms=speed["int8"].median_ms, threads=threads)
