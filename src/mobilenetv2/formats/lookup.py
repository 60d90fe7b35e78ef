"""``get_format``: a format's ``Format`` by its registry name, its module imported on first use (a module of its own:
the registry stays a table that ``Format`` itself reads, and importing this costs nothing)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from mobilenetv2.errors import UserError
from mobilenetv2.formats.registry import FORMATS

if TYPE_CHECKING:
    from mobilenetv2.formats.base import Format


def get_format(name: str) -> Format:
    """The ``Format`` called ``name`` (its module is imported on first use)."""
    if name not in FORMATS:
        raise UserError(f"unknown format {name!r}; allowed: {', '.join(FORMATS)}")
    return importlib.import_module(FORMATS[name].module).FORMAT
