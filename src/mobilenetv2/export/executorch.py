"""ExecuTorch (``.pte``) programs for on-device inference: BatchNorm folded, fp32, delegated to XNNPACK.

The program has a static batch of 1 (what on-device apps run; a dynamic batch would make ExecuTorch plan its input
buffer for the largest allowed batch). Class names and preprocessing go to a JSON file beside it (``sidecar_path``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mobilenetv2.errors import UserError
from mobilenetv2.export.fuse import fuse_bn
from mobilenetv2.export.onnx import first_line


def _require_executorch() -> None:
    # Importing ExecuTorch's XNNPACK backend makes torch log a deprecation warning about torchao's code, not ours.
    pytree_log = logging.getLogger("torch.utils._pytree")
    level = pytree_log.level
    pytree_log.setLevel(logging.ERROR)
    try:
        import executorch.backends.xnnpack.partition.xnnpack_partitioner  # noqa: F401
    except ImportError:
        raise UserError("--format pte needs ExecuTorch: pip install executorch (or the project's [interop] extra)") from None
    finally:
        pytree_log.setLevel(level)


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """Where the metadata of ``model.pte`` lives: ``model.pte.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def export_executorch(model: nn.Module, path: str | os.PathLike[str], *, input_size: int | None = None) -> Path:
    """``torch.export`` the BN-folded model at batch 1, lower it to ExecuTorch with the XNNPACK delegate, write ``path``."""
    _require_executorch()
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    size = input_size or getattr(getattr(model, "preprocessing", None), "input_size", 224)
    example = torch.randn(1, getattr(model, "in_chans", 3), size, size)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.export(fuse_bn(model), (example,))
            buffer = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer
    except Exception as exc:  # noqa: BLE001 - export and lowering raise many types; one line is what the user needs
        raise UserError(f"this model cannot be exported to ExecuTorch: {first_line(exc)}") from None
    Path(path).write_bytes(buffer)
    return Path(path)


def run_executorch(path: str | os.PathLike[str], batch: torch.Tensor) -> np.ndarray:
    """Logits of a ``.pte`` classifier from ExecuTorch's runtime, one image at a time (the program has batch 1)."""
    _require_executorch()
    from executorch.runtime import Runtime

    runtime_log = io.StringIO()  # the runtime logs to sys.stderr (CPU probing, load errors): keep it for the error line
    try:
        with contextlib.redirect_stderr(runtime_log):
            program = Runtime.get().load_program(Path(path))
            forward = program.load_method("forward")
            images = batch.float().contiguous()
            return torch.cat([forward.execute([image[None]])[0] for image in images]).numpy()
    except Exception as exc:  # noqa: BLE001
        logged = runtime_log.getvalue().strip().splitlines()
        detail = f"{logged[-1][:160]}; " if logged else ""
        raise UserError(f"ExecuTorch cannot run the program ({detail}{first_line(exc)})") from None
