"""PyTorch eager as a backend: checkpoints, and TorchScript / ``.pt2`` programs loaded as modules."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from mobilenetv2.backends.base import Runtime, RuntimeOptions
from mobilenetv2.errors import UserError

if TYPE_CHECKING:
    from mobilenetv2.weights import CheckpointMeta


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def check_bf16(device: torch.device) -> None:
    """One line when ``device`` would only emulate bf16 (a CPU without AMX-BF16 / AVX-512 BF16, an old GPU)."""
    from mobilenetv2.hardware import cpu_info

    if device.type == "cpu" and cpu_info().bf16_path is None:
        raise UserError("this CPU has no bf16 instructions (AMX-BF16 or AVX-512 BF16): PyTorch would emulate bf16, "
                        "slower than fp32; run fp32 instead")
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError(f"{device} has no bf16 support; run fp32 instead")


class TorchRuntime(Runtime):
    """A module (or a TorchScript/exported program) run by PyTorch on ``options.device`` (default: CUDA when there is
    one). ``channels_last`` feeds it channels-last tensors (what XNNPACK-like CPU kernels and cuDNN prefer)."""

    backend = "torch"
    precisions = ("fp32", "bf16")

    def __init__(self, module: torch.nn.Module | Callable[[torch.Tensor], torch.Tensor], meta: CheckpointMeta,
                 path: Path | None = None, options: RuntimeOptions | None = None, *, format: str = "checkpoint",  # noqa: A002
                 channels_last: bool = False, precision: str = "fp32") -> None:
        super().__init__(meta, path, format=format, precision=precision)
        options = options or RuntimeOptions()
        self.device = torch.device(options.device) if options.device is not None else default_device()
        if precision not in self.precisions:
            raise UserError(f"PyTorch runs fp32 or bf16 here, not {precision}")
        if precision == "bf16":
            check_bf16(self.device)
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
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.precision == "bf16"):
            return self.module(x).float().cpu()

    def run(self, inputs: np.ndarray) -> np.ndarray:
        return self.forward(torch.from_numpy(np.ascontiguousarray(inputs))).numpy()

    def __call__(self, images: np.ndarray | torch.Tensor) -> np.ndarray:
        if isinstance(images, torch.Tensor):
            return self.forward(images.float()).numpy()
        return super().__call__(images)
