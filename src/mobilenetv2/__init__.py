"""MobileNetV2: build, train, fine-tune, evaluate, compare, compress and deploy a lightweight image classifier."""

from mobilenetv2.errors import UserError

__version__ = "0.1.0"

__all__ = ["Classifier", "UserError", "__version__", "create_model", "list_models", "load_model", "load_predictor",
           "open_runtime"]


def __getattr__(name: str):  # torch loads on first use, not for `mobilenetv2 --help`
    if name in ("create_model", "list_models"):
        from mobilenetv2 import models

        return getattr(models, name)
    if name == "load_model":
        from mobilenetv2.weights import load_model

        return load_model
    if name in ("Classifier", "load_predictor"):
        from mobilenetv2 import inference

        return getattr(inference, name)
    if name == "open_runtime":
        from mobilenetv2.formats import open_runtime

        return open_runtime
    raise AttributeError(name)
