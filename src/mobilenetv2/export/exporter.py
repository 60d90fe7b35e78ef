"""``export_model``: export a model to any format of the registry, verified against PyTorch before the file gets its
name (a failed export or verification leaves nothing behind)."""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from mobilenetv2.backends.base import RuntimeOptions
from mobilenetv2.errors import UserError
from mobilenetv2.formats import FORMATS, get_format, list_formats
from mobilenetv2.formats.verified_export import export_verified
from mobilenetv2.formats.verify import ExportCheck
from mobilenetv2.io import atomic_files, atomic_folder
from mobilenetv2.weights import CheckpointMeta
from mobilenetv2.weights.checkpoint import check_finite


def default_output(checkpoint: str | os.PathLike[str], fmt: str) -> Path:
    """``NAME.<suffix>`` beside the checkpoint, or inside a run folder."""
    p = Path(checkpoint)
    stem = p.name if p.is_dir() else p.stem
    return (p if p.is_dir() else p.parent) / f"{stem}{get_format(fmt).suffix}"


def export_model(model: nn.Module, out: str | os.PathLike[str], fmt: str = "onnx", *, meta: CheckpointMeta,
                 opset: int | None = None, verify_images: list[str] | None = None, int8_weights: bool = False) -> ExportCheck:
    """Export ``model`` to ``out`` at ``meta``'s input size, with ``meta`` (task, classes, preprocessing) stored in or
    beside it; returns the verification against PyTorch (on ``verify_images``, else 4 synthetic images).
    ``int8_weights``: Core ML's int8 weights (other formats get int8 from ``quantize``)."""
    if fmt not in list_formats(exports=True):
        raise UserError(f"unknown format {fmt!r}; allowed: {', '.join(list_formats(exports=True))}")
    target = get_format(fmt)
    check_finite(model.state_dict(), "the model to export")  # broken weights are not an export mismatch
    if int8_weights and not target.checks_itself:
        raise UserError(f"--int8 at export is for Core ML (int8 weights); int8 {fmt} files come from `mobilenetv2 quantize`")
    with (atomic_folder(out) if FORMATS[fmt].folder else atomic_files(out, target.companions)) as tmp:
        if target.checks_itself:
            check = target.export_checked(model, tmp, meta, opset=opset, images=verify_images, int8_weights=int8_weights)
        else:
            runtime, check = export_verified(model, meta, fmt, tmp, FORMATS[fmt].backends[0], RuntimeOptions(), opset=opset,
                                             images=verify_images)
            runtime.close()
        if not check.passed:
            summary = " ".join(check.summary().splitlines())
            raise UserError(f"the exported model does not match PyTorch, nothing written: {summary}")
    target.finish(Path(out), meta, "fp32")
    return check
