"""``open_runtime``: any checkpoint or exported file on a backend, behind the one ``Runtime`` interface."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from mobilenetv2.errors import UserError
from mobilenetv2.formats.registry import entry_of, get_format

if TYPE_CHECKING:
    from mobilenetv2.backends.base import Runtime
    from mobilenetv2.weights import Checkpoint


def open_runtime(source: str | os.PathLike[str] | Checkpoint, backend: str | None = None, threads: int | None = None,
                 *, device: object = None, spin: bool = True) -> Runtime:
    """A checkpoint, run folder or exported file, opened on ``backend`` (default: its format's first backend).

    A checkpoint asked to run on another backend is exported to that backend's format in a temporary folder and
    verified against PyTorch first. ``device``: torch's (default CUDA when there is one); ``spin=False``: idle
    onnxruntime threads sleep instead of busy-waiting (a server has other work for the cores).
    """
    from mobilenetv2.backends import get_backend
    from mobilenetv2.backends.base import RuntimeOptions
    from mobilenetv2.weights import Checkpoint

    options = RuntimeOptions(threads, device, spin)
    wanted = get_backend(backend).name if backend is not None else None
    if isinstance(source, Checkpoint):
        from mobilenetv2.formats.convert import open_checkpoint_on

        return open_checkpoint_on(source, wanted or "torch", options)
    path = Path(source)
    entry = entry_of(path)
    if not path.exists():
        raise UserError(f"{entry.title} not found: {path}")
    if wanted is None or wanted in entry.backends:
        return get_format(entry.name).open(path, wanted or entry.backends[0], options)
    if entry.name == "checkpoint":
        from mobilenetv2.formats.convert import open_checkpoint_on
        from mobilenetv2.weights import load_checkpoint

        return open_checkpoint_on(load_checkpoint(path), wanted, options)
    raise UserError(f"{path}: a {entry.title} runs on --backend {' or '.join(entry.backends)}, not {wanted}")
