"""Checkpoints: our ``.safetensors`` files and run folders, and torchvision/timm state dicts, run by PyTorch."""

from __future__ import annotations

from pathlib import Path

from mobilenetv2.backends.base import Runtime, RuntimeOptions
from mobilenetv2.backends.torch import TorchRuntime
from mobilenetv2.formats.base import Format
from mobilenetv2.weights import Checkpoint, CheckpointMeta, load_checkpoint


class CheckpointFormat(Format):
    name = "checkpoint"

    def read_meta(self, path: Path) -> tuple[CheckpointMeta, str | None]:
        return load_checkpoint(path).meta, "fp32"

    def open(self, path: Path, backend: str, options: RuntimeOptions, meta: CheckpointMeta | None = None,
             precision: str | None = None) -> Runtime:
        return open_checkpoint(load_checkpoint(path), options, precision or "fp32")


def open_checkpoint(ckpt: Checkpoint, options: RuntimeOptions, precision: str = "fp32") -> TorchRuntime:
    return TorchRuntime(ckpt.model, ckpt.meta, ckpt.path, options, precision=precision)


FORMAT = CheckpointFormat()
