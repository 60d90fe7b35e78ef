"""One registry for the family: ``create_model("mobilenet_v2", width_mult=1.4)`` or ``create_model("mobilenet_v2_140")``."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from mobilenetv2.errors import UserError
from mobilenetv2.models.base import MobileNet
from mobilenetv2.models.mobilenet_v1 import MobileNetV1
from mobilenetv2.models.mobilenet_v2 import MobileNetV2
from mobilenetv2.models.mobilenet_v3 import MobileNetV3

_REGISTRY: dict[str, Callable[..., MobileNet]] = {}

MIN_RESOLUTION = 32


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
        raise UserError(f"bad argument for model {name!r}: {exc}") from None


def check_num_classes(num_classes: int) -> None:
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise UserError(f"num_classes must be an integer >= 1, got {num_classes!r}")


def check_common_args(*, num_classes: int, width_mult: float, in_chans: int, dropout: float) -> None:
    """One clear error for each argument outside what the architecture allows."""
    check_num_classes(num_classes)
    if not isinstance(width_mult, (int, float)) or isinstance(width_mult, bool) or not width_mult > 0:
        raise UserError(f"width_mult must be a number > 0 (the paper uses 0.35 to 1.4), got {width_mult!r}")
    if not isinstance(in_chans, int) or in_chans < 1:
        raise UserError(f"in_chans must be an integer >= 1, got {in_chans!r}")
    if not 0.0 <= dropout < 1.0:
        raise UserError(f"dropout must be in [0, 1), got {dropout!r}")


def check_resolution(resolution: int) -> None:
    if not isinstance(resolution, int) or resolution < MIN_RESOLUTION:
        raise UserError(f"resolution must be an integer >= {MIN_RESOLUTION} (the paper uses 96 to 224), got {resolution!r}")


def check_choice(name: str, value: str, allowed: list[str]) -> None:
    if value not in allowed:
        raise UserError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


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


def model_from_arch(arch: dict[str, Any]) -> MobileNet:
    """Rebuild a model from the ``arch`` dict that every model carries (and checkpoints store)."""
    if not isinstance(arch, dict) or "name" not in arch:
        raise UserError("architecture must be a dict with 'name' and 'args'")
    return create_model(arch["name"], **arch.get("args", {}))
