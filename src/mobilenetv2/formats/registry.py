"""The format registry: a table of names, suffixes and backends, importing no format module and no heavy package
(torch, onnx, ExecuTorch, LiteRT), so that listing the formats costs nothing. It is the one place a format's name,
suffixes and backends are declared: the ``Format`` class names its entry and reads the rest from it (``Format.entry``),
and the backend that opens a file is told its format. Adding a format: one module ``formats/NAME.py`` with a ``Format``
subclass and ``FORMAT = ...``, and one line in ``FORMATS``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mobilenetv2.errors import UserError


@dataclass(frozen=True)
class FormatEntry:
    """A format as the registry knows it: its file suffixes (the first is what export writes), the backends that open
    it (the first is the default), whether ``export`` writes it, and what its files are called in messages."""

    name: str
    suffixes: tuple[str, ...]
    backends: tuple[str, ...]
    title: str
    exports: bool = True
    quantizes: bool = False
    folder: bool = False  # its "file" is a folder (Core ML's .mlpackage)

    @property
    def module(self) -> str:
        return f"mobilenetv2.formats.{self.name}"


FORMATS: dict[str, FormatEntry] = {e.name: e for e in [
    FormatEntry("checkpoint", (".safetensors", ".pth", ".pt", ".bin"), ("torch",), "checkpoint", exports=False),
    FormatEntry("onnx", (".onnx",), ("onnxruntime", "openvino"), "ONNX model", quantizes=True),
    FormatEntry("torchscript", (".torchscript.pt",), ("torch",), "TorchScript file"),
    FormatEntry("pt2", (".pt2",), ("torch",), "torch.export program"),
    FormatEntry("pte", (".pte",), ("executorch",), "ExecuTorch program", quantizes=True),
    FormatEntry("tflite", (".tflite",), ("litert", "tflm"), "TFLite model", quantizes=True),
    FormatEntry("coreml", (".mlpackage",), ("coreml",), "Core ML package", folder=True),
    FormatEntry("openvino", (".xml",), ("openvino",), "OpenVINO IR (.xml + .bin)", quantizes=True),
]}


def list_formats(*, exports: bool = False, quantizes: bool = False) -> list[str]:
    """Format names; ``exports``/``quantizes``: only those that ``export``/``quantize`` write."""
    return [e.name for e in FORMATS.values() if (e.exports or not exports) and (e.quantizes or not quantizes)]


def entry_of(path: str | os.PathLike[str]) -> FormatEntry:
    """The format of ``path`` by its name (a folder is a training run's checkpoint folder, or a folder format's)."""
    path = Path(path)
    name = path.name.lower()
    matches = [(len(s), e) for e in FORMATS.values() for s in e.suffixes if name.endswith(s)]
    if path.is_dir():
        folders = [m for m in matches if m[1].folder]
        return max(folders, key=lambda m: m[0])[1] if folders else FORMATS["checkpoint"]
    if not matches:
        known = ", ".join(s for e in FORMATS.values() for s in e.suffixes)
        raise UserError(f"{path}: cannot tell the model format from its name (known: {known}, or a run folder)")
    return max(matches, key=lambda m: m[0])[1]


def format_for_output(path: str | os.PathLike[str], default: str) -> str:
    """The format an output path's suffix names, else ``default``."""
    name = Path(path).name.lower()
    matches = [(len(s), e.name) for e in FORMATS.values() for s in e.suffixes if name.endswith(s)]
    return max(matches)[1] if matches else default
