"""The runtime interface: a model opened on a backend (torch, onnxruntime, ExecuTorch, LiteRT, ...).

A ``Runtime`` runs batches and says what the model is (task, classes, preprocessing, architecture) and what it takes
(input layout, dtype and shape, precision, the largest batch one call runs). Predictors, the server, quantize and the
benchmark use nothing else, whatever the file. ``run`` takes the model's own inputs; calling the runtime takes what
PyTorch's model takes (normalised float32 NCHW images, any count) and converts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mobilenetv2.errors import UserError

if TYPE_CHECKING:
    import torch

    from mobilenetv2.spec import Preprocessing
    from mobilenetv2.weights import CheckpointMeta

PRECISIONS = ("fp32", "bf16", "fp16", "int8")


@dataclass(frozen=True)
class RuntimeOptions:
    """How to open a model: CPU threads (None: the backend's default), the torch device, and whether idle onnxruntime
    threads busy-wait (lower latency, but they take the cores from anything else running, e.g. a server's decoding)."""

    threads: int | None = None
    device: Any = None
    spin: bool = True

    def __post_init__(self) -> None:
        if self.threads is not None and (isinstance(self.threads, bool) or int(self.threads) < 1):
            raise UserError(f"threads must be >= 1, got {self.threads}")


class Runtime(ABC):
    """A model opened on one backend. ``runtime(images)`` gives the outputs PyTorch's model would give."""

    backend: ClassVar[str]  # the backend's name, as --backend takes it
    outputs_checked = False  # the first batch's outputs are checked for NaN (broken weights in a file not read here)
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)  # what an fp32 file can be asked to compute in (NAME:PRECISION)

    def __init__(self, meta: CheckpointMeta, path: Path | None = None, *, precision: str = "fp32",
                 format: str = "checkpoint") -> None:  # noqa: A002 - the word the project uses
        self.meta, self.path, self.precision, self.format = meta, path, precision, format
        self.input_layout = "NCHW"
        self.input_dtype = np.dtype(np.float32)
        size = meta.preprocessing.input_size
        self.input_shape: tuple[int | None, ...] = (None, int(meta.architecture.get("args", {}).get("in_chans", 3)),
                                                    size, size)
        self.max_batch: int | None = None  # None: any batch in one call
        self.owned: list[Any] = []  # what must live as long as the runtime (e.g. the temporary folder of its file)
        self.selection: dict[str, Any] | None = None  # how --backend auto chose this backend (times, cached or not)

    # -- what the model is ------------------------------------------------------------------------------------------
    @property
    def task(self) -> str:
        return self.meta.task

    @property
    def class_names(self) -> list[str] | None:
        return self.meta.class_names

    @property
    def preprocessing(self) -> Preprocessing:
        return self.meta.preprocessing

    @property
    def architecture(self) -> dict[str, Any] | None:
        return self.meta.architecture or None

    @property
    def input_channels(self) -> int:
        return int(self.input_shape[-1] if self.input_layout == "NHWC" else self.input_shape[1])

    def comparable(self, reference: np.ndarray) -> np.ndarray:
        """PyTorch's raw outputs as this runtime gives them back (the same, unless its file ends in a softmax, ...)."""
        return reference

    def describe(self) -> dict[str, Any]:
        """What the runtime says about itself, as JSON-ready values."""
        return {"backend": self.backend, "format": self.format, "precision": self.precision,
                "input": {"layout": self.input_layout, "dtype": self.input_dtype.name, "shape": list(self.input_shape)},
                "max_batch": self.max_batch, "task": self.task, "path": str(self.path) if self.path else None,
                "selection": self.selection}

    # -- running ----------------------------------------------------------------------------------------------------
    @abstractmethod
    def run(self, inputs: np.ndarray) -> np.ndarray:
        """One call of the model on its own inputs (``input_layout``, ``input_dtype``; at most ``max_batch``)."""

    def to_native(self, images: np.ndarray) -> np.ndarray:
        """Normalised float32 NCHW images -> the model's own inputs (layout, dtype, quantisation)."""
        return images

    def from_native(self, outputs: np.ndarray) -> np.ndarray:
        """The model's own outputs -> float32 in PyTorch's layout."""
        return outputs

    def __call__(self, images: np.ndarray | torch.Tensor) -> np.ndarray:
        """Normalised float32 NCHW images (numpy or torch, any count) -> float32 outputs as PyTorch's model gives them."""
        batch = np.ascontiguousarray(images.detach().cpu().numpy() if hasattr(images, "detach") else images,
                                     dtype=np.float32)
        if batch.ndim != 4:
            raise UserError(f"input must have 4 dimensions (N, C, H, W), got shape {batch.shape}")
        native = self.to_native(batch)
        step = self.max_batch or len(native) or 1
        parts = [self.from_native(self.run(native[i:i + step])) for i in range(0, len(native), step)]
        outputs = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if not self.outputs_checked:
            self.check_outputs(outputs)
        return outputs

    def check_outputs(self, outputs: np.ndarray) -> None:
        """Non-finite outputs of the first batch mean weights that cannot be right: one clear error, not NaN scores."""
        self.outputs_checked = True
        if np.issubdtype(outputs.dtype, np.floating) and not np.isfinite(outputs).all():
            raise UserError(f"{self.path or 'the model'}: its outputs are NaN or infinite from the first batch on: the "
                            "weights in the file are broken (a diverged run, a damaged file)")

    def close(self) -> None:
        """Remove what the runtime owns (the temporary folder of an exported checkpoint); unusable afterwards."""
        for owned in self.owned:
            getattr(owned, "cleanup", lambda: None)()
        self.owned.clear()
