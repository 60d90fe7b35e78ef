"""Optional dependencies: ``require("onnxruntime", "deploy")`` imports a module or names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from mobilenetv2.errors import UserError

# Extra -> what it brings (see pyproject.toml's optional-dependencies).
EXTRAS = {
    "deploy": "ONNX export, onnxruntime inference and int8 quantization",
    "tune": "hyperparameter search with Optuna (and PostgreSQL storage)",
    "plots": "PNG plots (confusion matrix, curves, Pareto front)",
    "tensorboard": "TensorBoard event files during training",
    "interop": "TFLite/Keras/timm weights and ExecuTorch programs",
    "serve": "the HTTP model server",
}


class MissingExtraError(UserError):
    """An optional dependency is not installed: the message names the extra that brings it."""


def require(module: str, extra: str) -> ModuleType:
    """Import ``module``, or raise one line naming ``pip install 'mobilenetv2[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name is None or exc.name.split(".")[0] != module.split(".")[0]:
            raise  # the module is there but broken: show the real error
        raise MissingExtraError(
            f"{module} is not installed; it comes with the [{extra}] extra ({EXTRAS[extra]}): "
            f"pip install 'mobilenetv2[{extra}]'") from None


def available(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    return importlib.util.find_spec(module.split(".")[0]) is not None
