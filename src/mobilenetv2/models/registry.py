"""One registry for the family: ``create_model("mobilenet_v2", width_mult=1.4)`` or ``create_model("mobilenet_v2_140")``."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from mobilenetv2.errors import UserError
from mobilenetv2.models.base import MobileNet
from mobilenetv2.models.detection import SSDLite
from mobilenetv2.models.mobilenet_v1 import MobileNetV1
from mobilenetv2.models.mobilenet_v2 import MobileNetV2
from mobilenetv2.models.mobilenet_v3 import MobileNetV3
from mobilenetv2.models.segmentation import LRASPP, DeepLabV3

_REGISTRY: dict[str, Callable[..., MobileNet]] = {}

def register_model(name: str, builder: Callable[..., MobileNet]) -> None:
    """Make ``create_model(name)`` call ``builder``."""
    _REGISTRY[name] = builder


def list_models() -> list[str]:
    """All registered model names."""
    return sorted(_REGISTRY)


def create_model(name: str, **kwargs: Any) -> MobileNet:
    """Build a registered model; keyword arguments override the name's defaults (e.g. ``num_classes=10``)."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UserError(f"unknown model {name!r}{hint}; available: {', '.join(list_models())}")
    try:
        return _REGISTRY[name](**kwargs)
    except TypeError as exc:  # an unknown keyword argument
        raise UserError(f"bad argument for model {name!r}: {exc}") from exc


def _with_defaults(cls: type[MobileNet], **defaults: Any) -> Callable[..., MobileNet]:
    def build(**kwargs: Any) -> MobileNet:
        return cls(**{**defaults, **kwargs})

    return build


register_model("mobilenet_v2", MobileNetV2)
for _w in ("035", "050", "075", "100", "130", "140"):
    register_model(f"mobilenet_v2_{_w}", _with_defaults(MobileNetV2, width_mult=int(_w) / 100))
register_model("mobilenet_v1", MobileNetV1)
for _w in ("025", "050", "075", "100"):
    register_model(f"mobilenet_v1_{_w}", _with_defaults(MobileNetV1, width_mult=int(_w) / 100))
register_model("mobilenet_v3", MobileNetV3)
register_model("mobilenet_v3_large", _with_defaults(MobileNetV3, variant="large"))
register_model("mobilenet_v3_small", _with_defaults(MobileNetV3, variant="small"))
register_model("mobilenet_v3_large_075", _with_defaults(MobileNetV3, variant="large", width_mult=0.75))
register_model("mobilenet_v3_small_075", _with_defaults(MobileNetV3, variant="small", width_mult=0.75))
register_model("deeplabv3_mobilenet_v2", DeepLabV3)
register_model("deeplabv3_mobilenet_v2_050", _with_defaults(DeepLabV3, width_mult=0.5))
register_model("lraspp_mobilenet_v2", LRASPP)
register_model("ssdlite_mobilenet_v2", SSDLite)
register_model("ssdlite_mobilenet_v1", _with_defaults(SSDLite, backbone="mobilenet_v1"))
register_model("ssdlite_mobilenet_v3_large", _with_defaults(SSDLite, backbone="mobilenet_v3_large"))


def model_from_arch(arch: dict[str, Any]) -> MobileNet:
    """Rebuild a model from the ``arch`` dict that every model carries (and checkpoints store)."""
    if not isinstance(arch, dict) or "name" not in arch:
        raise UserError("architecture must be a dict with 'name' and 'args'")
    return create_model(arch["name"], **arch.get("args", {}))
