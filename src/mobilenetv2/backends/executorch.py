"""ExecuTorch as a backend: ``.pte`` programs (XNNPACK-delegated, batch 1) through ExecuTorch's Python runtime."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from mobilenetv2.backends.base import Runtime, RuntimeOptions
from mobilenetv2.errors import UserError, first_line
from mobilenetv2.extras import require

if TYPE_CHECKING:
    from mobilenetv2.weights import CheckpointMeta


def require_executorch(module: str = "executorch.runtime") -> None:
    """Import ``module`` of ExecuTorch, or name the extra that brings it (one line)."""
    # Importing ExecuTorch's XNNPACK backend makes torch log a deprecation warning about torchao's code, not ours.
    pytree_log = logging.getLogger("torch.utils._pytree")
    level = pytree_log.level
    pytree_log.setLevel(logging.ERROR)
    try:
        require(module, "interop")
    finally:
        pytree_log.setLevel(level)


class ExecuTorchRuntime(Runtime):
    """A loaded ``.pte`` program; it has a static batch of 1, so a batch runs one image at a time."""

    backend = "executorch"

    def __init__(self, path: Path, meta: CheckpointMeta, options: RuntimeOptions | None = None, *, format: str,  # noqa: A002
                 precision: str = "fp32") -> None:
        super().__init__(meta, path, precision=precision, format=format)
        self.max_batch = 1
        self.input_shape = (1, *self.input_shape[1:])
        options = options or RuntimeOptions()
        require_executorch()
        from executorch.runtime import Runtime as ExecuTorch

        if options.threads is not None:
            from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "experimental API"
                _unsafe_reset_threadpool(int(options.threads))
        with self._one_line_errors():
            self._forward = ExecuTorch.get().load_program(Path(path)).load_method("forward")

    @contextlib.contextmanager
    def _one_line_errors(self):
        runtime_log = io.StringIO()  # the runtime logs to sys.stderr (CPU probing, load errors): keep it for the error line
        try:
            with contextlib.redirect_stderr(runtime_log):
                yield
        except Exception as exc:  # noqa: BLE001 - the runtime's bindings raise many types; the cause is kept
            logged = runtime_log.getvalue().strip().splitlines()
            detail = f"{logged[-1][:160]}; " if logged else ""
            raise UserError(f"ExecuTorch cannot run the program ({detail}{first_line(exc)})") from exc

    def run(self, inputs: np.ndarray) -> np.ndarray:
        with self._one_line_errors():
            return self._forward.execute([torch.from_numpy(np.ascontiguousarray(inputs))])[0].numpy()
