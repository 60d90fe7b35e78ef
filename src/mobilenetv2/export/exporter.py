"""``export_model``: load, fold BatchNorm, export, and verify the file against PyTorch before it gets its name."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mobilenetv2.data.preprocessing import eval_transform
from mobilenetv2.errors import UserError
from mobilenetv2.io import atomic_path, atomic_write_text
from mobilenetv2.spec import Preprocessing
from mobilenetv2.tasks import Task, get_task
from mobilenetv2.weights import CheckpointMeta

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "pt2": ".pt2", "pte": ".pte"}
FP32_TOLERANCE = 1e-4


@dataclass
class Verification:
    """The exported model vs PyTorch on the same inputs."""

    images: int
    source: str              # "real images" or "synthetic images"
    max_abs_diff: float
    top1_agreement: float    # fraction of images (pixels, for segmentation) with the same argmax class
    tolerance: float
    pixel_agreement: float | None = None  # dense outputs: the same argmax on every pixel, numerical ties included
    box_diff: float | None = None  # detection: largest box difference (fraction of the input's side)
    score_diff: float | None = None  # detection: largest class-probability difference

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance and self.top1_agreement == 1.0

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        text = (f"verify: {verdict} on {self.images} {self.source}: max |logit diff| {self.max_abs_diff:.2e} "
                f"(tolerance {self.tolerance:.0e}), same argmax {self.top1_agreement:.0%}")
        if self.box_diff is not None:
            text += f" of the anchors; boxes within {self.box_diff:.1e} of the input side, scores within {self.score_diff:.1e}"
        if self.pixel_agreement is None:
            return text
        return (f"{text} of the pixels without a numerical tie (pixel agreement {self.pixel_agreement:.3%} "
                f"counting ties)")

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


def default_output(checkpoint: str | os.PathLike[str], fmt: str) -> Path:
    p = Path(checkpoint)
    stem = p.name if p.is_dir() else p.stem
    return (p if p.is_dir() else p.parent) / f"{stem}{FORMATS[fmt]}"


def verification_batch(preprocessing: Preprocessing, images: list[str] | None = None, count: int = 4,
                       in_chans: int = 3) -> tuple[torch.Tensor, str]:
    """Preprocessed real images (files, folders or globs), or ``count`` seeded synthetic ones when none are given."""
    if images:
        from mobilenetv2.data.images import find_images, load_image

        paths = find_images(list(images))
        if not paths:
            raise UserError(f"--verify-images: no images found in {', '.join(images)}")
        transform = eval_transform(preprocessing)
        return torch.stack([transform(load_image(p)) for p in paths[:32]]), "real images"
    size = preprocessing.input_size
    generator = torch.Generator().manual_seed(0)
    return torch.randn(count, in_chans, size, size, generator=generator), "synthetic images"


def compare_outputs(task: Task, reference: np.ndarray, candidate: np.ndarray, source: str,
                    tolerance: float = FP32_TOLERANCE) -> Verification:
    """The task's comparison (largest difference, agreement of the predictions) as a pass/fail verification."""
    found = task.compare_outputs(reference, candidate)
    return Verification(len(reference), source, found["max_abs_diff"], found["top1_agreement"], tolerance,
                        found.get("pixel_agreement"), found.get("max_box_diff"), found.get("max_score_diff"))


def run_exported(path: Path, fmt: str, batch: torch.Tensor) -> np.ndarray:
    if fmt == "onnx":
        from mobilenetv2.export.runtime import OnnxBackend

        return OnnxBackend(path)(batch.numpy())
    if fmt == "pte":
        from mobilenetv2.export.executorch import run_executorch

        return run_executorch(path, batch)
    from mobilenetv2.export.torch_formats import load_exported

    with torch.inference_mode():
        return load_exported(path, fmt)(batch).numpy()


def export_model(model: nn.Module, out: str | os.PathLike[str], fmt: str = "onnx", *, meta: CheckpointMeta,
                 opset: int | None = None, verify_images: list[str] | None = None) -> Verification:
    """Export ``model`` to ``out`` at ``meta``'s input size, with ``meta`` (task, classes, preprocessing) stored in it.

    The file is verified before it takes its final name; a failed export or verification leaves nothing at ``out``.
    """
    from mobilenetv2.export.executorch import export_executorch, sidecar_path
    from mobilenetv2.export.onnx import DEFAULT_OPSET, export_onnx, model_metadata
    from mobilenetv2.export.torch_formats import export_pt2, export_torchscript

    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")
    model, task = model.eval(), get_task(meta.task)
    preprocessing = meta.preprocessing
    metadata = model_metadata(meta)
    batch, source = verification_batch(preprocessing, verify_images, in_chans=model.in_chans)
    with torch.inference_mode():
        reference = model(batch).numpy()
    with atomic_path(out) as tmp:
        if fmt == "onnx":
            export_onnx(model, tmp, opset=opset or DEFAULT_OPSET, input_size=preprocessing.input_size, metadata=metadata,
                        output_names=task.output_names)
        elif fmt == "torchscript":
            export_torchscript(model, tmp, input_size=preprocessing.input_size, metadata=metadata)
        elif fmt == "pte":
            export_executorch(model, tmp, input_size=preprocessing.input_size)
        else:
            export_pt2(model, tmp, input_size=preprocessing.input_size, metadata=metadata)
        check = compare_outputs(task, reference, run_exported(tmp, fmt, batch), source)
        if not check.passed:
            raise UserError(f"the exported model does not match PyTorch, nothing written: {check.summary()}")
        if fmt == "pte":  # ExecuTorch programs have no metadata field: class names and preprocessing go beside it
            atomic_write_text(sidecar_path(out), metadata_json(meta))
    return check


def metadata_json(meta: CheckpointMeta) -> str:
    """The metadata stored in exported files, as one JSON document."""
    from mobilenetv2.export.onnx import model_metadata

    return json.dumps({k: json.loads(v) for k, v in model_metadata(meta).items()}, indent=2)
