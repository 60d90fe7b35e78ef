"""File formats behind one seam, like tasks: one module per format (its export, the metadata it carries, how it is
opened), listed in ``registry.py`` without importing them or their heavy packages.

``open_runtime(path_or_checkpoint, backend=None, threads=None)`` opens any of them on a backend (``backends/``) and
gives a ``Runtime``; ``get_format(name)`` gives the ``Format`` that exports and quantizes.
"""

from __future__ import annotations

from mobilenetv2.formats.lookup import get_format
from mobilenetv2.formats.open import open_runtime
from mobilenetv2.formats.registry import FORMATS, FormatEntry, entry_of, format_for_output, list_formats

__all__ = ["FORMATS", "FormatEntry", "entry_of", "format_for_output", "get_format", "list_formats", "open_runtime"]
