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
    exported to when it is asked to run on this backend (None: it runs checkpoints itself, or cannot). ``auto``: whether
    ``--backend auto`` times it (not a microcontroller's reference interpreter, which only ``--backend tflm`` runs).
    ``package``: the package it imports (None: torch only); ``platform``: the only ``sys.platform`` it runs on."""

    name: str
    runtime: str
    extra: str | None
    checkpoint_format: str | None
    description: str
    auto: bool = True
    package: str | None = None
    platform: str | None = None

    def runtime_class(self) -> type:
        module, cls = self.runtime.split(":")
        return getattr(importlib.import_module(module), cls)


BACKENDS: dict[str, BackendEntry] = {e.name: e for e in [
    BackendEntry("torch", "mobilenetv2.backends.torch:TorchRuntime", None, None, "PyTorch eager (CPU or CUDA)"),
    BackendEntry("onnxruntime", "mobilenetv2.backends.onnxruntime:OnnxRuntime", "deploy", "onnx",
                 "onnxruntime, CPU execution provider", package="onnxruntime"),
    BackendEntry("executorch", "mobilenetv2.backends.executorch:ExecuTorchRuntime", "interop", "pte",
                 "ExecuTorch's runtime, XNNPACK delegate, batch 1", package="executorch"),
    BackendEntry("litert", "mobilenetv2.backends.litert:LiteRTRuntime", "interop", None,
                 "the LiteRT (TensorFlow Lite) interpreter, XNNPACK delegate, batch 1", package="ai_edge_litert"),
    BackendEntry("tflm", "mobilenetv2.backends.tflm:TFLMRuntime", "mobile", None,
                 "TensorFlow Lite Micro's interpreter (microcontrollers; full-integer .tflite files), batch 1", auto=False,
                 package="tflite_micro"),
    BackendEntry("coreml", "mobilenetv2.backends.coreml:CoreMLRuntime", "mobile", None,
                 "Core ML through coremltools (macOS only; iOS apps run the .mlpackage themselves), batch 1",
                 package="coremltools", platform="darwin"),
    BackendEntry("openvino", "mobilenetv2.backends.openvino:OpenVinoRuntime", "openvino", "openvino",
                 "OpenVINO, CPU plugin (fp32 pinned; bf16 when asked)", package="openvino"),
]}


AUTO = "auto"  # not an engine: time the backends that open the file and take the fastest (formats/auto.py)
REQUESTABLE_PRECISIONS = ("fp32", "bf16")  # `--backend NAME:PRECISION`; int8 is a property of the file, not a request


def list_backends() -> list[str]:
    return list(BACKENDS)


def parse_backend(spec: str | None) -> tuple[str | None, str | None]:
    """``--backend``'s value -> (backend name or "auto" or None, requested precision or None): ``openvino:bf16``
    asks OpenVINO to compute in bf16, ``torch:bf16`` PyTorch; one line for an unknown name or precision."""
    if spec is None:
        return None, None
    name, _, precision = spec.partition(":")
    if name == AUTO:
        if precision:
            raise UserError(f"--backend auto takes no precision (it never picks bf16 by itself): give e.g. "
                            f"openvino:{precision} to ask for {precision}")
        return AUTO, None
    entry = get_backend(name)
    if precision and precision not in REQUESTABLE_PRECISIONS:
        raise UserError(f"unknown precision {precision!r} in --backend {spec}; allowed: "
                        f"{', '.join(REQUESTABLE_PRECISIONS)} (int8 comes from an int8 file)")
    return entry.name, precision or None


def get_backend(name: str) -> BackendEntry:
    """The backend called ``name``; one line naming the allowed ones when unknown."""
    entry = BACKENDS.get(name)
    if entry is None:
        raise UserError(f"unknown backend {name!r}; allowed: {', '.join(BACKENDS)}")
    return entry


def check_precision(where: object, backend: str, precision: str, stored: str | None) -> None:
    """One line unless ``backend`` can run the fp32 model at ``where`` in ``precision`` (``stored``: the file's)."""
    allowed = get_backend(backend).runtime_class().precisions
    if precision not in allowed:
        raise UserError(f"--backend {backend}:{precision}: {backend} runs {' or '.join(allowed)} here "
                        f"(bf16: --backend torch:bf16 or openvino:bf16)")
    if stored not in (None, "fp32") and precision != stored:
        raise UserError(f"--backend {backend}:{precision}: {where} is an {stored} model; {precision} applies to fp32 models")


__all__ = ["AUTO", "BACKENDS", "BackendEntry", "check_precision", "get_backend", "list_backends", "parse_backend"]
