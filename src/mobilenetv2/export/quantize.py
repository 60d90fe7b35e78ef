"""int8 post-training static quantization of an ONNX model with onnxruntime (QDQ, per-channel weights)."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from mobilenetv2.errors import UserError
from mobilenetv2.extras import require

log = logging.getLogger("mobilenetv2.export")

METHODS = ("minmax", "percentile", "entropy")
FORMATS = ("qdq", "qoperator")


class BatchReader:
    """onnxruntime's CalibrationDataReader over an iterable of float32 NCHW batches."""

    def __init__(self, input_name: str, batches: Iterable[np.ndarray]) -> None:
        self.input_name = input_name
        self._batches: Iterator[np.ndarray] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)}


def quantize_onnx(fp32_path: str | os.PathLike[str], out: str | os.PathLike[str], calibration: Iterable[np.ndarray], *,
                  method: str = "minmax", quant_format: str = "qdq", per_channel: bool = True,
                  reduce_range: bool = False, preprocess: bool = True) -> Path:
    """Static int8 quantization: uint8 activations calibrated on ``calibration`` batches, int8 weights.

    ``preprocess`` runs onnxruntime's ``quant_pre_process`` (shape inference and graph optimisation) first.
    Metadata props of the fp32 model are copied. Writes ``out`` directly (callers wrap it in ``atomic_path``).
    """
    onnx = require("onnx", "deploy")
    require("onnxruntime", "deploy")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in METHODS:
        raise UserError(f"unknown calibration method {method!r}; allowed: {', '.join(METHODS)}")
    if quant_format not in FORMATS:
        raise UserError(f"unknown quantization format {quant_format!r}; allowed: {', '.join(FORMATS)}")
    fp32 = onnx.load(str(fp32_path))
    with tempfile.TemporaryDirectory(prefix="mobilenetv2-quant-") as tmp:
        source = Path(fp32_path)
        if preprocess:
            source = Path(tmp) / "preprocessed.onnx"
            quant_pre_process(str(fp32_path), str(source), skip_symbolic_shape=True)
        reader = BatchReader(fp32.graph.input[0].name, calibration)
        quantize_static(
            str(source), str(out), reader,
            quant_format=QuantFormat.QDQ if quant_format == "qdq" else QuantFormat.QOperator,
            per_channel=per_channel, reduce_range=reduce_range,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method={"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                              "entropy": CalibrationMethod.Entropy}[method],
            extra_options={"CalibTensorRangeSymmetric": False},
        )
    int8 = onnx.load(str(out))
    from mobilenetv2.export.onnx import set_metadata

    set_metadata(int8, {p.key: p.value for p in fp32.metadata_props})
    onnx.save(int8, str(out))
    return Path(out)


def calibration_batches(data: str, preprocessing, num_images: int = 128, batch_size: int = 16,
                        seed: int = 0, split: str = "train") -> list[np.ndarray]:
    """``num_images`` images drawn at random (seeded) from ``split`` of ``data``, preprocessed for eval."""
    import torch
    from torch.utils.data import DataLoader, Subset

    from mobilenetv2.data import build_eval_loader

    if num_images < 1:
        raise UserError(f"--num-calib must be >= 1, got {num_images}")
    loader, _ = build_eval_loader(data, preprocessing, split=split, batch_size=batch_size, workers=0, seed=seed)
    dataset = loader.dataset
    if len(dataset) == 0:
        raise UserError(f"--calib {data}: no usable images for calibration")
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:num_images].tolist()
    subset = DataLoader(Subset(dataset, order), batch_size=batch_size, collate_fn=loader.collate_fn)
    batches = [images.numpy() for images, _ in subset if len(images)]
    if not batches:
        raise UserError(f"--calib {data}: none of the calibration images could be read")
    return batches


def image_batches(inputs: list[str], preprocessing, num_images: int = 128, batch_size: int = 16,
                  seed: int = 0) -> list[np.ndarray]:
    """``num_images`` unlabelled photos (files, folders or globs) drawn at random (seeded), preprocessed for eval.

    Unreadable files are skipped with one warning line; none readable is an error.
    """
    import torch

    from mobilenetv2.data.images import BadImageError, find_images, load_image
    from mobilenetv2.data.preprocessing import eval_transform

    if num_images < 1:
        raise UserError(f"--num-calib must be >= 1, got {num_images}")
    paths = find_images(list(inputs))
    if not paths:
        raise UserError(f"--calib {' '.join(inputs)}: no images found (give photos, a folder of photos, or a glob)")
    order = torch.randperm(len(paths), generator=torch.Generator().manual_seed(seed))[:num_images].tolist()
    transform, images, skipped = eval_transform(preprocessing), [], []
    for i in order:
        try:
            images.append(transform(load_image(paths[i])))
        except BadImageError:
            skipped.append(paths[i].name)
    if skipped:
        log.warning("warning: --calib: skipped %d unreadable image file(s): %s", len(skipped), ", ".join(skipped[:3]))
    if not images:
        raise UserError(f"--calib {' '.join(inputs)}: none of the calibration images could be read")
    stacked = torch.stack(images).numpy()
    return [stacked[i:i + batch_size] for i in range(0, len(stacked), batch_size)]
