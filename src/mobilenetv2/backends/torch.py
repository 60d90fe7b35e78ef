"""PyTorch eager as a backend: checkpoints, and TorchScript / ``.pt2`` programs loaded as modules."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from mobilenetv2.backends.base import Runtime, RuntimeOptions

if TYPE_CHECKING:
    from mobilenetv2.weights import CheckpointMeta


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class TorchRuntime(Runtime):
    """A module (or a TorchScript/exported program) run by PyTorch on ``options.device`` (default: CUDA when there is
    one). ``channels_last`` feeds it channels-last tensors (what XNNPACK-like CPU kernels and cuDNN prefer)."""

    backend = "torch"

    def __init__(self, module: torch.nn.Module | Callable[[torch.Tensor], torch.Tensor], meta: CheckpointMeta,
                 path: Path | None = None, options: RuntimeOptions | None = None, *, format: str = "checkpoint",  # noqa: A002
                 channels_last: bool = False) -> None:
        super().__init__(meta, path, format=format)
        options = options or RuntimeOptions()
        self.device = torch.device(options.device) if options.device is not None else default_device()
        if options.threads is not None and self.device.type == "cpu":
            torch.set_num_threads(int(options.threads))
        if isinstance(module, torch.nn.Module):
            module = module.to(self.device)
            with contextlib.suppress(NotImplementedError):  # programs loaded from .pt2 refuse .eval(): they are eval
                module.eval()
            if channels_last:
                module = module.to(memory_format=torch.channels_last)
        self.module, self.channels_last = module, channels_last
        in_chans = getattr(module, "in_chans", None)
        if in_chans is not None:
            self.input_shape = (None, int(in_chans), *self.input_shape[2:])

    @property
    def model(self) -> torch.nn.Module | Callable[[torch.Tensor], torch.Tensor]:
        return self.module

    @torch.inference_mode()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images on any device -> float32 outputs on the CPU (the tensor path: no numpy round trip)."""
        x = images.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.module(x).float().cpu()

    def run(self, inputs: np.ndarray) -> np.ndarray:
        return self.forward(torch.from_numpy(np.ascontiguousarray(inputs))).numpy()

    def __call__(self, images: np.ndarray | torch.Tensor) -> np.ndarray:
        if isinstance(images, torch.Tensor):
            return self.forward(images.float()).numpy()
        return super().__call__(images)
