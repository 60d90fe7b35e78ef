"""ExecuTorch (``.pte``) programs for on-device inference, delegated to XNNPACK: fp32 (BatchNorm folded) or int8.

The program has a static batch of 1 (what on-device apps run; a dynamic batch would make ExecuTorch plan its input
buffer for the largest allowed batch). Class names and preprocessing go to a JSON file beside it (``sidecar_path``).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mobilenetv2.errors import UserError
from mobilenetv2.export.fuse import fuse_bn
from mobilenetv2.export.onnx import first_line
from mobilenetv2.extras import require
from mobilenetv2.spec import Preprocessing


def _require_executorch() -> None:
    # Importing ExecuTorch's XNNPACK backend makes torch log a deprecation warning about torchao's code, not ours.
    pytree_log = logging.getLogger("torch.utils._pytree")
    level = pytree_log.level
    pytree_log.setLevel(logging.ERROR)
    try:
        require("executorch.backends.xnnpack.partition.xnnpack_partitioner", "interop")
    finally:
        pytree_log.setLevel(level)


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """Where the metadata of ``model.pte`` lives: ``model.pte.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def _example_input(model: nn.Module, input_size: int) -> torch.Tensor:
    return torch.randn(1, model.in_chans, input_size, input_size)


def _lower_to_xnnpack(program: torch.export.ExportedProgram) -> bytes:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    return to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer


def read_sidecar(path: Path) -> tuple[list[str] | None, Preprocessing | None]:
    """Class names and preprocessing from ``path``'s metadata JSON (written by export/quantize), if there is one."""
    meta_path = sidecar_path(path)
    if not meta_path.is_file():
        return None, None
    try:
        meta = json.loads(meta_path.read_text())
        stored = meta.get("mobilenetv2.preprocessing")
        return meta.get("mobilenetv2.class_names"), Preprocessing.from_dict(stored) if stored else None
    except (ValueError, TypeError, AttributeError) as exc:
        raise UserError(f"{meta_path} is not the metadata JSON that export writes ({first_line(exc)})") from None


def export_executorch(model: nn.Module, path: str | os.PathLike[str], *, input_size: int) -> Path:
    """``torch.export`` the BN-folded model at batch 1, lower it to ExecuTorch with the XNNPACK delegate, write ``path``."""
    _require_executorch()
    example = _example_input(model, input_size)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            buffer = _lower_to_xnnpack(torch.export.export(fuse_bn(model), (example,)))
    except Exception as exc:  # noqa: BLE001 - export and lowering raise many types; one line is what the user needs
        raise UserError(f"this model cannot be exported to ExecuTorch: {first_line(exc)}") from None
    Path(path).write_bytes(buffer)
    return Path(path)


def quantize_executorch(model: nn.Module, path: str | os.PathLike[str], calibration: Iterable[np.ndarray], *,
                        per_channel: bool = True, input_size: int) -> Path:
    """int8 ``.pte`` by PT2E static quantization with XNNPACK's quantizer, calibrated on ``calibration`` batches.

    Weights are symmetric int8 (per output channel by default), activations int8 with histogram-observed ranges;
    BatchNorm is folded by the quantizer's conversion. The program has batch 1 like the fp32 one.
    """
    _require_executorch()
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    example = _example_input(model, input_size)
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=per_channel))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prepared = prepare_pt2e(torch.export.export(model.eval(), (example,)).module(), quantizer)
            with torch.no_grad():
                for batch in calibration:
                    for image in torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)):
                        prepared(image[None])  # the exported graph has batch 1
            quantized = convert_pt2e(prepared)
            buffer = _lower_to_xnnpack(torch.export.export(quantized, (example,)))
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"this model cannot be quantized for ExecuTorch: {first_line(exc)}") from None
    Path(path).write_bytes(buffer)
    return Path(path)


class ExecuTorchBackend:
    """A loaded ``.pte`` classifier: ``backend(batch)`` gives logits, one image at a time (the program has batch 1).

    ``class_names`` and ``preprocessing`` come from the metadata JSON beside the program (None without one).
    """

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"ExecuTorch program not found: {self.path}")
        if threads is not None and threads < 1:
            raise UserError(f"threads must be >= 1, got {threads}")
        _require_executorch()
        from executorch.runtime import Runtime

        self.class_names, self.preprocessing = read_sidecar(self.path)
        if threads is not None:
            from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "experimental API"
                _unsafe_reset_threadpool(threads)
        with self._one_line_errors():
            self._forward = Runtime.get().load_program(self.path).load_method("forward")

    @contextlib.contextmanager
    def _one_line_errors(self):
        runtime_log = io.StringIO()  # the runtime logs to sys.stderr (CPU probing, load errors): keep it for the error line
        try:
            with contextlib.redirect_stderr(runtime_log):
                yield
        except Exception as exc:  # noqa: BLE001
            logged = runtime_log.getvalue().strip().splitlines()
            detail = f"{logged[-1][:160]}; " if logged else ""
            raise UserError(f"ExecuTorch cannot run the program ({detail}{first_line(exc)})") from None

    def __call__(self, batch: np.ndarray | torch.Tensor) -> np.ndarray:
        images = torch.as_tensor(batch).float().contiguous()
        with self._one_line_errors():
            return torch.cat([self._forward.execute([image[None]])[0] for image in images]).numpy()


def run_executorch(path: str | os.PathLike[str], batch: torch.Tensor) -> np.ndarray:
    """Logits of a ``.pte`` classifier from ExecuTorch's runtime."""
    return ExecuTorchBackend(path)(batch)
