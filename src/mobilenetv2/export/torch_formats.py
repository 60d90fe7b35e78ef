"""TorchScript and torch.export (``.pt2``) files, BatchNorm folded, with the metadata stored as an extra file."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from mobilenetv2.errors import UserError
from mobilenetv2.export.fuse import fuse_bn
from mobilenetv2.export.onnx import first_line

EXTRA_FILE = "mobilenetv2.json"


def _example(model: nn.Module, input_size: int) -> torch.Tensor:
    return torch.randn(2, model.in_chans, input_size, input_size)


def export_torchscript(model: nn.Module, path: str | os.PathLike[str], *, input_size: int,
                       metadata: dict[str, str]) -> Path:
    """Trace the BN-folded model and save it with ``torch.jit.save`` (metadata in the extra file mobilenetv2.json)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(fuse_bn(model), _example(model, input_size))
            torch.jit.save(traced, str(path), _extra_files={EXTRA_FILE: json.dumps(metadata)})
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"this model cannot be exported to TorchScript: {first_line(exc)}") from None
    return Path(path)


def export_pt2(model: nn.Module, path: str | os.PathLike[str], *, input_size: int, metadata: dict[str, str]) -> Path:
    """``torch.export`` the BN-folded model with a dynamic batch and save it as a ``.pt2`` archive."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.export(fuse_bn(model), (_example(model, input_size),),
                                          dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},))
            with open(path, "wb") as f:  # a file object: torch.export insists on a .pt2 suffix for paths
                torch.export.save(program, f, extra_files={EXTRA_FILE: json.dumps(metadata)})
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"this model cannot be exported with torch.export: {first_line(exc)}") from None
    return Path(path)


def load_exported(path: str | os.PathLike[str], fmt: str):
    """A callable (tensor -> logits) for a file written by ``export_torchscript`` or ``export_pt2``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt == "torchscript":
            return torch.jit.load(str(path)).eval()
        with open(path, "rb") as f:
            return torch.export.load(f).module()
