"""Argument checks of the models: one clear line for each value outside what an architecture allows."""

from __future__ import annotations

from mobilenetv2.errors import UserError
from mobilenetv2.spec import check_choice

__all__ = ["check_choice", "check_common_args", "check_num_classes", "check_resolution"]

MIN_RESOLUTION = 32


def check_num_classes(num_classes: int) -> None:
    """An integer number of classes, at least one."""
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
    """An integer input resolution the stride-32 network can take."""
    if not isinstance(resolution, int) or resolution < MIN_RESOLUTION:
        raise UserError(f"resolution must be an integer >= {MIN_RESOLUTION} (the paper uses 96 to 224), got {resolution!r}")
