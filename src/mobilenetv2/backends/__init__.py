"""Backends: the engines that run a model, each a ``Runtime`` (``backends/base.py``) in a module of its own.

The registry is a table of names, so that listing the backends (``--backend``'s choices, ``--help``) imports neither
torch nor any engine. ``mobilenetv2.formats.open_runtime`` opens a file (or a checkpoint) on one of them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from mobilenetv2.errors import UserError


@dataclass(frozen=True)
class BackendEntry:
    """A backend: its Runtime class ("module:Class"), the extra that installs it, and the format a checkpoint is
    exported to when it is asked to run on this backend (None: it runs checkpoints itself, or cannot)."""

    name: str
    runtime: str
    extra: str | None
    checkpoint_format: str | None
    description: str

    def runtime_class(self) -> type:
        module, cls = self.runtime.split(":")
        return getattr(importlib.import_module(module), cls)


BACKENDS: dict[str, BackendEntry] = {e.name: e for e in [
    BackendEntry("torch", "mobilenetv2.backends.torch:TorchRuntime", None, None, "PyTorch eager (CPU or CUDA)"),
    BackendEntry("onnxruntime", "mobilenetv2.backends.onnxruntime:OnnxRuntime", "deploy", "onnx",
                 "onnxruntime, CPU execution provider"),
    BackendEntry("executorch", "mobilenetv2.backends.executorch:ExecuTorchRuntime", "interop", "pte",
                 "ExecuTorch's runtime, XNNPACK delegate, batch 1"),
    BackendEntry("litert", "mobilenetv2.backends.litert:LiteRTRuntime", "interop", None,
                 "the LiteRT (TensorFlow Lite) interpreter, XNNPACK delegate, batch 1"),
    BackendEntry("tflm", "mobilenetv2.backends.tflm:TFLMRuntime", "mobile", None,
                 "TensorFlow Lite Micro's interpreter (microcontrollers; full-integer .tflite files), batch 1"),
    BackendEntry("coreml", "mobilenetv2.backends.coreml:CoreMLRuntime", "mobile", None,
                 "Core ML through coremltools (macOS only; iOS apps run the .mlpackage themselves), batch 1"),
]}
ALIASES = {"onnx": "onnxruntime"}  # `serve --backend onnx` from before the registry


def list_backends() -> list[str]:
    return list(BACKENDS)


def get_backend(name: str) -> BackendEntry:
    """The backend called ``name`` (or a format's name for its backend, e.g. ``onnx``); one line when unknown."""
    entry = BACKENDS.get(ALIASES.get(name, name))
    if entry is None:
        raise UserError(f"unknown backend {name!r}; allowed: {', '.join(BACKENDS)}")
    return entry


__all__ = ["BACKENDS", "BackendEntry", "get_backend", "list_backends"]
