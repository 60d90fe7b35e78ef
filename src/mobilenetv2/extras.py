"""Optional dependencies: ``require("onnxruntime", "deploy")`` imports a module or names the extra to install."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from types import ModuleType

from mobilenetv2.errors import UserError

# Extra -> what it brings (see pyproject.toml's optional-dependencies).
EXTRAS = {
    "torch": "PyTorch and torchvision: train, export, quantize, checkpoints, evaluate on datasets",
    "onnxruntime": "running .onnx files (onnxruntime, and onnx to read their metadata), without torch",
    "litert": "running .tflite files (the LiteRT interpreter), without torch",
    "tflm": "TensorFlow Lite Micro's interpreter (info --tflite: arena and flash of a .tflite file)",
    "runtime": "the edge install: onnxruntime, LiteRT and the HTTP server, without torch",
    "deploy": "ONNX export, onnxruntime inference and int8 quantization",
    "tune": "hyperparameter search with Optuna, PostgreSQL storage",
    "plots": "PNG plots (confusion matrix, curves, Pareto front)",
    "tensorboard": "TensorBoard event files during training",
    "interop": "TFLite/Keras/timm weights and ExecuTorch programs",
    "serve": "the HTTP model server",
    "mobile": "on-device formats: LiteRT (.tflite) export and int8, TensorFlow Lite Micro, Core ML packages",
    "openvino": "the OpenVINO backend and the OpenVINO IR format",
    "stream": "videos, cameras and network streams (PyAV), tracks (trackers, supervision), Parquet output (pyarrow)",
    "ray": "predict on a Ray cluster (Ray Data)",
}

# The modules of the [torch] extra: a command that imports one where it is missing says so in one line (cli.main).
TORCH_MODULES = ("torch", "torchvision", "torchmetrics", "safetensors", "sklearn", "pycocotools")


class MissingExtraError(UserError):
    """An optional dependency is not installed: the message names the extra that brings it."""


def require(module: str, extra: str) -> ModuleType:
    """Import ``module``, or raise one line naming ``pip install 'mobilenetv2[extra]'`` if its package is missing.

    A package that is installed but broken or too old raises its own ImportError.
    """
    top = module.split(".")[0]
    if not available(top):
        raise MissingExtraError(f"{top} is not installed; it comes with the [{extra}] extra ({EXTRAS[extra]}): "
                                f"pip install 'mobilenetv2[{extra}]'")
    return importlib.import_module(module)


def available(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    top = module.split(".")[0]
    if top in sys.modules:
        return sys.modules[top] is not None  # None: imports of it are blocked
    return importlib.util.find_spec(top) is not None


_noted: set[tuple[str, str]] = set()


def optional(module: str, extra: str, skipped: str) -> bool:
    """Whether ``module`` is installed; if not, log once: what is ``skipped`` and the extra that brings it.

    For outputs a run can do without (plots, TensorBoard files), where a missing package must not stop it.
    """
    if available(module):
        return True
    if (module, skipped) not in _noted:
        _noted.add((module, skipped))
        logging.getLogger(__name__).info("%s skipped: %s is not installed (pip install 'mobilenetv2[%s]')",
                                         skipped, module.split(".")[0], extra)
    return False
