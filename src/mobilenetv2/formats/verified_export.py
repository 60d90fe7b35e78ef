"""Export verified against PyTorch (``export_verified``), and through it a checkpoint on any backend: PyTorch runs it
as it is; another backend gets it exported to its format in a temporary folder, verified before it runs (the file goes
when the runtime is closed or garbage-collected)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import torch
from torch import nn

from mobilenetv2.backends import check_precision, get_backend
from mobilenetv2.backends.base import Runtime, RuntimeOptions
from mobilenetv2.backends.torch import TorchRuntime
from mobilenetv2.errors import UserError
from mobilenetv2.formats.lookup import get_format
from mobilenetv2.formats.verify import Verification, verification_batch, verify_outputs
from mobilenetv2.tasks import get_task
from mobilenetv2.weights import Checkpoint, CheckpointMeta

log = logging.getLogger("mobilenetv2.formats")


def export_verified(model: nn.Module, meta: CheckpointMeta, fmt: str, path: Path, backend: str, options: RuntimeOptions,
                    *, opset: int | None = None, images: list[str] | None = None) -> tuple[Runtime, Verification]:
    """Export ``model`` to ``path`` in format ``fmt``, open it on ``backend`` and compare it with PyTorch on
    ``images`` (default: 4 seeded synthetic ones); the caller decides what a failed check means."""
    model = model.eval()
    batch, source = verification_batch(meta.preprocessing, images, in_chans=model.in_chans)
    with torch.inference_mode():
        reference = model(batch).numpy()
    target = get_format(fmt)
    target.export(model, path, meta, opset=opset)
    runtime = target.open(path, backend, options, meta=meta, precision="fp32")
    return runtime, verify_outputs(get_task(meta.task), runtime.comparable(reference), runtime(batch), source)


def open_checkpoint_on(ckpt: Checkpoint, backend: str, options: RuntimeOptions, precision: str | None = None) -> Runtime:
    """``ckpt`` on ``backend``: as it is on torch, else exported to the backend's format and verified (in fp32; then
    reopened in ``precision`` when one is asked for, e.g. bf16)."""
    if precision is not None:
        check_precision(ckpt.path or "the checkpoint", backend, precision, "fp32")
    if backend == "torch":
        return TorchRuntime(ckpt.model, ckpt.meta, ckpt.path, options, precision=precision or "fp32")
    fmt = get_backend(backend).checkpoint_format
    if fmt is None:
        raise UserError(f"--backend {backend} does not run checkpoints: export the checkpoint to a file it runs first")
    folder = tempfile.TemporaryDirectory(prefix="mobilenetv2-runtime-")
    runtime, check = export_verified(ckpt.model, ckpt.meta, fmt, Path(folder.name) / f"model{get_format(fmt).suffix}",
                                     backend, options)
    if not check.passed:
        raise UserError(f"the model exported for --backend {backend} does not match PyTorch: {check.summary()}")
    if precision not in (None, "fp32"):
        runtime = get_format(fmt).open(runtime.path, backend, options, meta=ckpt.meta, precision=precision)
    runtime.owned.append(folder)  # the exported file lives as long as the runtime
    log.info("%s exported to %s for %s: %s", ckpt.path or "the checkpoint", fmt, backend, check.summary())
    return runtime
