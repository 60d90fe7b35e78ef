"""Core ML's runtime through coremltools' ``MLModel.predict``. It exists only on macOS (and inside iOS apps): a
``.mlpackage`` opened anywhere else is one line saying so. The model takes an image (uint8 pixels; Core ML applies
the scale and bias the file holds) and gives a classifier's probabilities by label, or a segmentation mask.

``runtime(images)`` gives what every runtime gives: for a classifier the log of Core ML's probabilities (PyTorch's
logits up to a constant per image: the same softmax, argmax and top-k), for a segmentation model the mask as one-hot
scores [N, C, H, W] (the same argmax; the file holds no scores).
"""

from __future__ import annotations

import logging
import platform
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from mobilenetv2.backends.base import Runtime, RuntimeOptions
from mobilenetv2.errors import UserError, first_line
from mobilenetv2.extras import require

if TYPE_CHECKING:
    from mobilenetv2.spec import Preprocessing
    from mobilenetv2.weights import CheckpointMeta

INPUT_NAME = "image"
LABEL_OUTPUT, PROBS_OUTPUT, MASK_OUTPUT = "classLabel", "classLabel_probs", "mask"


def require_coremltools() -> ModuleType:
    """coremltools with its compiled parts (what writes an ML Program's weights), or one line naming the cause."""
    for noisy in ("coremltools", "torch.utils._pytree"):  # its import warns about untested torch/sklearn versions and,
        logging.getLogger(noisy).setLevel(logging.ERROR)  # through ExecuTorch which it imports, about pytree enums
    ct = require("coremltools", "mobile")
    try:
        import coremltools.libmilstoragepython  # noqa: F401 - the compiled parts: absent on a Python without wheels
        import coremltools.libmodelpackage  # noqa: F401
    except ImportError as exc:
        raise UserError(f"coremltools {ct.__version__} has no compiled parts for Python {platform.python_version()} on "
                        f"{platform.system()} ({first_line(exc)}): it ships them only for the Python versions it has "
                        f"wheels for (3.9 to 3.13 for coremltools 9); install it in one of those") from exc
    return ct


def unavailable_reason() -> str | None:
    """Why Core ML cannot predict on this machine, or None (macOS with coremltools' compiled Core ML bridge)."""
    if sys.platform != "darwin":
        return f"this machine runs {platform.system() or sys.platform}"
    ct = require_coremltools()
    try:
        import coremltools.libcoremlpython  # noqa: F401
    except ImportError as exc:
        return f"coremltools {ct.__version__} has no Core ML bridge for Python {platform.python_version()} ({first_line(exc)})"
    return None


def check_available(path: str | Path) -> None:
    """One line where Core ML cannot run ``path``: what runs it, and what runs here instead."""
    reason = unavailable_reason()
    if reason is not None:
        raise UserError(f"Core ML runs on macOS/iOS only; {reason}: run {Path(path).name} on a Mac or in an iOS app, "
                        f"or export the checkpoint to onnx or tflite to run it here")


def to_pixels(images: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """Normalised float32 NCHW images -> the uint8 NHWC pixels they came from (what a camera gives an app)."""
    mean, std = channel_stats(pre, images.shape[1])
    pixels = (images.transpose(0, 2, 3, 1) * std + mean) * 255.0
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def from_pixels(pixels: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """uint8 NHWC pixels -> normalised float32 NCHW images, as the model is fed in PyTorch."""
    mean, std = channel_stats(pre, pixels.shape[-1])
    return ((pixels.astype(np.float32) / 255.0 - mean) / std).transpose(0, 3, 1, 2).astype(np.float32)


def channel_stats(pre: Preprocessing, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean and std of ``pre`` for a ``channels``-channel input, or one line when their lengths differ."""
    if len(pre.mean) != channels or len(pre.std) != channels:
        raise UserError(f"the preprocessing has {len(pre.mean)} mean and {len(pre.std)} std values for a "
                        f"{channels}-channel input")
    return np.asarray(pre.mean, np.float32), np.asarray(pre.std, np.float32)


class CoreMLRuntime(Runtime):
    """A ``.mlpackage`` on Core ML (macOS only): one image per call, uint8 NHWC pixels in."""

    backend = "coreml"

    def __init__(self, path: Path, meta: CheckpointMeta, options: RuntimeOptions, *, format: str,  # noqa: A002
                 precision: str = "fp16") -> None:
        check_available(path)
        super().__init__(meta, Path(path), precision=precision, format=format)
        self.model = load_mlmodel(Path(path), options)
        channels = int(self.input_shape[1])
        self.input_layout, self.input_dtype = "NHWC", np.dtype(np.uint8)
        self.input_shape = (1, self.input_shape[2], self.input_shape[3], channels)
        self.max_batch = 1

    def to_native(self, images: np.ndarray) -> np.ndarray:
        return to_pixels(images, self.preprocessing)

    def run(self, inputs: np.ndarray) -> np.ndarray:
        from PIL import Image

        pixels = inputs[0]
        image = Image.fromarray(np.ascontiguousarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels))  # L or RGB
        outputs = self.model.predict({INPUT_NAME: image})
        if self.task == "segmentation":
            return np.asarray(outputs[MASK_OUTPUT], dtype=np.int64).reshape(1, *pixels.shape[:2])
        probabilities = outputs[PROBS_OUTPUT]
        return np.asarray([[probabilities[label] for label in self.labels()]], dtype=np.float64)

    def from_native(self, outputs: np.ndarray) -> np.ndarray:
        if self.task == "segmentation":
            classes = np.arange(len(self.labels())).reshape(1, -1, 1, 1)
            return (outputs[:, None] == classes).astype(np.float32)
        return np.log(np.maximum(outputs, 1e-30)).astype(np.float32)

    def labels(self) -> list[str]:
        """The class labels the file was written with (the class names, or the indices when it has none)."""
        return label_names(self.meta)


def load_mlmodel(path: Path, options: RuntimeOptions) -> Any:
    """The package loaded for predictions (compiled by Core ML): on the CPU with ``--device cpu``, else wherever Core
    ML chooses (CPU, GPU, Neural Engine)."""
    ct = require_coremltools()
    units = ct.ComputeUnit.CPU_ONLY if str(options.device or "").lower() == "cpu" else ct.ComputeUnit.ALL
    return ct.models.MLModel(str(path), compute_units=units)


def label_names(meta: CheckpointMeta) -> list[str]:
    """Core ML's labels for ``meta``'s classes: the class names, else "0", "1", ... for its number of classes."""
    if meta.class_names:
        return list(meta.class_names)
    count = int(meta.num_classes or 0)
    if count < 1:
        raise UserError("the model has neither class names nor a number of classes for Core ML's labels")
    return [str(i) for i in range(count)]
