"""``open_runtime``: any checkpoint or exported file on a backend, behind the one ``Runtime`` interface."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from mobilenetv2.errors import UserError
from mobilenetv2.formats.lookup import get_format
from mobilenetv2.formats.registry import FormatEntry, entry_of

if TYPE_CHECKING:
    from mobilenetv2.backends.base import Runtime, RuntimeOptions
    from mobilenetv2.weights import Checkpoint

log = logging.getLogger("mobilenetv2.formats")


def open_runtime(source: str | os.PathLike[str] | Checkpoint, backend: str | None = None, threads: int | None = None,
                 *, device: object = None, spin: bool = True) -> Runtime:
    """A checkpoint, run folder or exported file, opened on ``backend`` (default: its format's first backend).

    ``backend`` is a name (``onnxruntime``, ``openvino``, ...), ``NAME:bf16`` to compute in bf16 where the backend
    and the CPU can (torch, openvino; an fp32 file), or ``auto``: for a file, each backend that opens it is timed
    and the fastest kept (``formats/auto.py``; cached per file and CPU); a checkpoint runs on torch. A checkpoint
    asked to run on another backend is exported to that backend's format in a temporary folder and verified against
    PyTorch first. ``device``: torch's (default CUDA when there is one); ``spin=False``: idle onnxruntime threads
    sleep instead of busy-waiting (a server has other work for the cores).
    """
    from mobilenetv2.backends import AUTO, parse_backend
    from mobilenetv2.backends.base import RuntimeOptions

    options = RuntimeOptions(threads, device, spin)
    wanted, precision = parse_backend(backend)
    if not isinstance(source, (str, os.PathLike)):  # a loaded Checkpoint (weights/ loads torch: never for a path)
        from mobilenetv2.formats.verified_export import open_checkpoint_on

        return open_checkpoint_on(source, wanted if wanted not in (None, AUTO) else "torch", options, precision)
    path = Path(source)
    entry = entry_of(path)
    if not path.exists():
        raise UserError(f"{entry.title} not found: {path}")
    if entry.name == "checkpoint":
        if wanted in (None, AUTO, "torch") and precision is None:
            return get_format("checkpoint").open(path, "torch", options)
        from mobilenetv2.formats.verified_export import open_checkpoint_on
        from mobilenetv2.weights import load_checkpoint

        return open_checkpoint_on(load_checkpoint(path), wanted if wanted not in (None, AUTO) else "torch", options, precision)
    if wanted == AUTO:
        from mobilenetv2.formats.auto import open_fastest  # numpy and torch: only when auto runs

        return open_fastest(path, entry, options, open_file)
    if wanted is not None and wanted not in entry.backends:
        raise UserError(f"{path}: a {entry.title} runs on --backend {' or '.join(entry.backends)}, not {wanted}")
    runtime = open_file(path, entry, wanted or entry.backends[0], options, precision)
    if wanted is not None:
        log.info("%s runs on %s (%s)", path.name, runtime.backend, runtime.precision)
    return runtime


def open_file(path: Path, entry: FormatEntry, backend: str, options: RuntimeOptions,
              precision: str | None = None) -> Runtime:
    """An exported file on one of its format's backends; ``precision``: what an fp32 file is asked to compute in."""
    fmt = get_format(entry.name)
    meta, stored = fmt.read_meta(path)
    if precision is not None:
        from mobilenetv2.backends import check_precision

        check_precision(path, backend, precision, stored)
    return fmt.open(path, backend, options, meta=meta, precision=precision or stored)
