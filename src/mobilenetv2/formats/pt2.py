"""``torch.export`` programs (``.pt2``): the BatchNorm-folded model with a dynamic batch, the metadata as an extra file."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from torch import nn

from mobilenetv2.errors import UserError, first_line
from mobilenetv2.formats.base import metadata_entries
from mobilenetv2.formats.torchscript import EXTRA_FILE, TorchProgramFormat, example_batch
from mobilenetv2.models.fuse import fuse_bn
from mobilenetv2.weights import CheckpointMeta


class Pt2Format(TorchProgramFormat):
    name = "pt2"

    def export(self, model: nn.Module, path: Path, meta: CheckpointMeta, *, opset: int | None = None) -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                program = torch.export.export(fuse_bn(model), (example_batch(model, meta),),
                                              dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},))
                with open(path, "wb") as f:  # a file object: torch.export insists on a .pt2 suffix for paths
                    torch.export.save(program, f, extra_files={EXTRA_FILE: json.dumps(metadata_entries(meta))})
        except Exception as exc:  # noqa: BLE001 - torch.export raises many types for what it cannot take; the cause is kept
            raise UserError(f"this model cannot be exported with torch.export: {first_line(exc)}") from exc

    def load(self, path: Path) -> tuple[torch.nn.Module, str]:
        extra = {EXTRA_FILE: ""}
        try:
            with warnings.catch_warnings(), open(path, "rb") as f:
                warnings.simplefilter("ignore")
                module = torch.export.load(f, extra_files=extra).module()
        except Exception as exc:  # noqa: BLE001 - the archive reader and the graph deserializer raise many types
            raise UserError(f"{path} is not a loadable torch.export program ({first_line(exc, 160)})") from exc
        return module, extra[EXTRA_FILE]


FORMAT = Pt2Format()
