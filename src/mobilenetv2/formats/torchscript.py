"""TorchScript: the BatchNorm-folded model traced and saved with ``torch.jit.save``, the metadata as an extra file."""

from __future__ import annotations

import json
import warnings
from abc import abstractmethod
from pathlib import Path

import torch
from torch import nn

from mobilenetv2.backends.base import Runtime, RuntimeOptions
from mobilenetv2.backends.torch import TorchRuntime
from mobilenetv2.errors import UserError, first_line
from mobilenetv2.formats.base import Format, meta_from_entries, metadata_entries
from mobilenetv2.models.fuse import fuse_bn
from mobilenetv2.weights import CheckpointMeta

EXTRA_FILE = "mobilenetv2.json"


def example_batch(model: nn.Module, meta: CheckpointMeta) -> torch.Tensor:
    size = meta.preprocessing.input_size
    return torch.randn(2, model.in_chans, size, size)


def stored_meta(extra: str, path: Path) -> tuple[CheckpointMeta, str | None]:
    """The metadata of a torch program from its extra file (a JSON object of metadata entries)."""
    try:
        entries = json.loads(extra) if extra else {}
    except ValueError as exc:
        raise UserError(f"{path}: its {EXTRA_FILE} is not JSON ({first_line(exc)})") from exc
    return meta_from_entries(entries if isinstance(entries, dict) else {}, path)


class TorchProgramFormat(Format):
    """A program PyTorch loads as a module (TorchScript, torch.export), its metadata in the extra file."""

    @abstractmethod
    def load(self, path: Path) -> tuple[torch.nn.Module, str]:
        """(the module, the text of its extra file); one line when the file is not a program of this format."""

    def read_meta(self, path: Path) -> tuple[CheckpointMeta, str | None]:
        return stored_meta(self.load(path)[1], path)

    def open(self, path: Path, backend: str, options: RuntimeOptions, meta: CheckpointMeta | None = None,
             precision: str | None = None) -> Runtime:
        module, extra = self.load(path)
        return TorchRuntime(module, meta or stored_meta(extra, path)[0], path, options, format=self.name,
                            precision=precision if precision == "bf16" else "fp32")


class TorchScriptFormat(TorchProgramFormat):
    name = "torchscript"

    def export(self, model: nn.Module, path: Path, meta: CheckpointMeta, *, opset: int | None = None) -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                traced = torch.jit.trace(fuse_bn(model), example_batch(model, meta))
                torch.jit.save(traced, str(path), _extra_files={EXTRA_FILE: json.dumps(metadata_entries(meta))})
        except Exception as exc:  # noqa: BLE001 - the tracer raises many types for what it cannot take; the cause is kept
            raise UserError(f"this model cannot be exported to TorchScript: {first_line(exc)}") from exc

    def load(self, path: Path) -> tuple[torch.jit.ScriptModule, str]:
        extra = {EXTRA_FILE: ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = torch.jit.load(str(path), _extra_files=extra).eval()
        except (RuntimeError, OSError) as exc:  # the C++ reader raises RuntimeError for any file it cannot read
            raise UserError(f"{path} is not a loadable TorchScript file ({first_line(exc, 160)})") from exc
        return module, extra[EXTRA_FILE]


FORMAT = TorchScriptFormat()
