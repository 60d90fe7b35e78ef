"""``Predictor``: a model opened on any backend (``open_runtime``) with its task's preprocessing, post-processing and
presenter (how its predictions are drawn, tabulated and answered).

Each task has its predictor (``Classifier``, ``Segmenter``, ``Detector``), siblings that share this base: loading,
class names, the image inputs, batching, and the split that a server uses (``prepare`` an image's inputs, run many
requests' inputs in one batch, ``finish`` each). The options of a task (top-k, test-time augmentation, score
threshold, tiles, ...) belong to its predictor alone: another task's option is a one-line error.
"""

from __future__ import annotations

import importlib
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mobilenetv2.data.preprocessing import Normalize, pil_pixels
from mobilenetv2.errors import UserError
from mobilenetv2.formats import open_runtime
from mobilenetv2.inference.batching import forward_parts
from mobilenetv2.inference.images import ImageInput, is_single, is_tensor, source_of, to_transformable
from mobilenetv2.spec import Preprocessing
from mobilenetv2.tasks import get_task

if TYPE_CHECKING:
    from mobilenetv2.backends.base import Runtime
    from mobilenetv2.tasks import Presenter, Task
    from mobilenetv2.weights import Checkpoint

# Task -> its predictor, "module:Class", imported on first use.
PREDICTORS = {"classification": "mobilenetv2.inference.classifier:Classifier",
              "segmentation": "mobilenetv2.inference.segmenter:Segmenter",
              "detection": "mobilenetv2.inference.detector:Detector"}


def predictor_class(task: str) -> type[Predictor]:
    if task not in PREDICTORS:
        raise UserError(f"no predictor for task {task!r} in this version (tasks: {', '.join(PREDICTORS)})")
    module, name = PREDICTORS[task].split(":")
    return getattr(importlib.import_module(module), name)


def load_predictor(source: str | os.PathLike[str] | Checkpoint, device: Any = None, threads: int | None = None,
                   spin: bool = True, backend: str | None = None, labels: str | os.PathLike[str] | None = None,
                   **options: Any) -> Predictor:
    """The predictor of a checkpoint, run folder or exported file, for the task recorded in it; ``labels``: a file
    of class names, one a line, for a file that has none (Google's published .tflite files)."""
    return Predictor.load(source, backend=backend, threads=threads, device=device, spin=spin, labels=labels, **options)


def with_labels(runtime: Runtime, labels: str | os.PathLike[str]) -> Runtime:
    """``runtime`` with the class names of a labels file (``spec.read_labels``: one per class)."""
    from mobilenetv2.spec import read_labels

    size, channels = runtime.preprocessing.input_size, runtime.input_channels
    outputs = runtime(np.zeros((1, channels, size, size), np.float32))
    count = predictor_class(runtime.task).output_classes(np.asarray(outputs))
    runtime.meta = runtime.meta.replace(class_names=read_labels(labels, count))
    return runtime


def gray_normalization(pre: Preprocessing) -> Preprocessing:
    """A grayscale model's normalisation: an RGB mean and std (a TFLite import stores three equal values) become the
    luma's, ITU-R 601 weighted as PIL's "L"."""
    if len(pre.mean) == 1 and len(pre.std) == 1:
        return pre
    luma = (0.299, 0.587, 0.114)
    return replace(pre, mean=(sum(w * m for w, m in zip(luma, pre.mean)),), std=(sum(w * s for w, s in zip(luma, pre.std)),))


class Predictor(ABC):
    """A runtime and what its task needs to turn images into predictions."""

    task_name: ClassVar[str]
    presenter: ClassVar[Presenter]  # how this task's predictions are drawn, tabulated and answered
    options: ClassVar[dict[str, Any]] = {}  # this task's prediction options and their defaults
    batch_size: ClassVar[int] = 32          # images a forward pass by default

    def __init__(self, runtime: Runtime, **options: Any) -> None:
        if runtime.task != self.task_name:
            raise UserError(f"{runtime.path or 'the model'} is a {runtime.task} model, not a {self.task_name} one "
                            f"(load it with mobilenetv2.inference.load_predictor)")
        self.runtime = runtime
        self.set_preprocessing(self.input_preprocessing(runtime.preprocessing))
        self.settings = dict(self.options)
        self.configure(**options)

    @classmethod
    def load(cls, source: str | os.PathLike[str] | Checkpoint, backend: str | None = None, threads: int | None = None,
             *, device: Any = None, spin: bool = True, labels: str | os.PathLike[str] | None = None,
             **options: Any) -> Predictor:
        """A checkpoint, run folder or exported file (``.onnx``, ``.pte``, ``.tflite``, ...) on ``backend`` (default:
        the format's own); ``Predictor.load`` picks the predictor of the file's task."""
        runtime = open_runtime(source, backend, threads, device=device, spin=spin)
        if labels is not None:
            runtime = with_labels(runtime, labels)
        return (predictor_class(runtime.task) if cls is Predictor else cls)(runtime, **options)

    @property
    def task(self) -> Task:
        """The task (``tasks.get_task``): its data, metrics and reports, for evaluation; loads torch, so only on use."""
        return get_task(self.task_name)

    @staticmethod
    def output_classes(outputs: np.ndarray) -> int:
        """How many classes the model's raw outputs score (classes on axis 1: [N, C] or [N, C, H, W])."""
        return int(outputs.shape[1])

    # -- options ------------------------------------------------------------------------------------------------------
    def configure(self, **options: Any) -> None:
        """Change this task's prediction options (None leaves one as it is); another task's option is an error."""
        self.settings.update(self.resolve(options))

    def resolve(self, overrides: dict[str, Any]) -> dict[str, Any]:
        """The options in force with ``overrides`` (None values ignored), each checked."""
        given = {name: value for name, value in overrides.items() if value is not None}
        foreign = [name for name in given if name not in self.options]
        if foreign:
            flags = ", ".join("--" + name.replace("_", "-") for name in foreign)
            raise UserError(f"{flags}: not an option of a {self.task_name} model")
        return {**self.settings, **{name: self.check_option(name, value) for name, value in given.items()}}

    def check_option(self, name: str, value: Any) -> Any:
        """``value`` if it is allowed for option ``name``; else one line naming what is allowed."""
        return value

    # -- what the model is --------------------------------------------------------------------------------------------
    def input_preprocessing(self, stored: Preprocessing) -> Preprocessing:
        """The preprocessing predictions use, from the one stored with the model (tasks may resize differently)."""
        return stored

    def set_preprocessing(self, preprocessing: Preprocessing) -> None:
        self.preprocessing = preprocessing
        self.tensor_pixels: Any = None  # torchvision's transform, built when a tensor image first comes
        self.normalize = Normalize(gray_normalization(preprocessing) if self.input_channels == 1 else preprocessing)

    def to_pixels(self, image: Any) -> np.ndarray:
        """A PIL image (or a CHW tensor) -> a CHW array of the model's input size, not yet normalised; a grayscale
        model's images (photos are decoded as RGB) become "L" before resizing."""
        if not is_tensor(image):
            return pil_pixels(image, self.preprocessing, self.input_channels)
        if self.tensor_pixels is None:
            from mobilenetv2.data.preprocessing import pixel_transform

            self.tensor_pixels = pixel_transform(self.preprocessing, self.input_channels)
        return self.tensor_pixels(image).numpy(force=True)

    @property
    def backend(self) -> str:
        return self.runtime.backend

    @property
    def input_channels(self) -> int:
        return self.runtime.input_channels

    @property
    def num_classes(self) -> int | None:
        if self.runtime.class_names is not None:
            return len(self.runtime.class_names)
        return self.runtime.meta.num_classes or self.runtime.meta.extra.get("num_classes")  # extra: a foreign file's count

    @property
    def class_names(self) -> list[str]:
        """The stored class names, or "0", "1", ... when the model has none."""
        names = self.runtime.class_names
        return list(names) if names is not None else [str(i) for i in range(self.num_classes or 0)]

    @property
    def has_class_names(self) -> bool:
        return self.runtime.class_names is not None

    # -- images -> inputs -> outputs ----------------------------------------------------------------------------------
    def pixels(self, image: ImageInput) -> np.ndarray:
        """One image of any accepted kind -> a CHW array of the model's input size, not yet normalised (uint8 from
        PIL images, arrays and paths; float from float tensors)."""
        return self.to_pixels(to_transformable(image))

    def preprocess(self, image: ImageInput) -> np.ndarray:
        """One image of any accepted kind -> a normalised CHW float32 array of the model's input size."""
        return self.normalize(self.pixels(image))

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """Normalised NCHW float32 batch -> the model's outputs (float32)."""
        return np.asarray(self.runtime(batch), dtype=np.float32)

    def logits_of_pixels(self, batch: np.ndarray) -> np.ndarray:
        """``logits`` of a batch of ``prepare`` inputs (resized, not yet normalised): normalised here, in one op."""
        return self.logits(self.normalize(batch))

    def decode_size(self, width: int, height: int) -> tuple[int, int]:
        """The smallest size at which an image of ``width`` x ``height`` may reach ``prepare`` (a JPEG decoded in draft
        mode, a video frame scaled by its decoder) and give the same model inputs up to resampling; by default its own.
        ``prepare`` then takes ``original_size=(width, height)``: the predictions stay in the image's own pixels."""
        return width, height

    @abstractmethod
    def prepare(self, image: ImageInput, *, original_size: tuple[int, int] | None = None,
                **overrides: Any) -> tuple[np.ndarray, Any]:
        """One image -> its model inputs, an array [k, C, S, S] (resized, not normalised: uint8, or float32 from float
        tensors) and what ``finish`` needs; a server
        batches the inputs of many requests through ``logits_of_pixels`` and gives each its share of the outputs.
        ``original_size`` (width, height): the image's own size when it comes decoded smaller (see ``decode_size``)."""

    @abstractmethod
    def finish(self, outputs: np.ndarray, state: Any, **overrides: Any) -> Any:
        """The prediction of one image from the outputs (an array) of its ``prepare`` inputs."""

    def tracker(self, source: str, frame_rate: float | None) -> Any:
        """What follows objects across the frames of a video (``update(prediction, time) -> extra fields``), or None
        when this task has no objects to follow."""
        return None

    def run_predictions(self, images: ImageInput | Sequence[ImageInput], batch_size: int | None,
                        overrides: dict[str, Any]) -> list[Any]:
        """Predictions of ``images``: ``batch_size`` images are prepared together and their inputs run in batches."""
        batch_size = self.batch_size if batch_size is None else batch_size
        if batch_size < 1:
            raise UserError(f"batch_size must be >= 1, got {batch_size}")
        self.resolve(overrides)
        items = [images] if is_single(images) else list(images)
        results = []
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            prepared = [self.prepare(item, **overrides) for item in chunk]
            # normalised per image: a batch may mix uint8 and float inputs
            outputs = forward_parts(self.logits, [self.normalize(x) for x, _ in prepared], batch_size)
            for item, rows, (_, state) in zip(chunk, outputs, prepared):
                prediction = self.finish(rows, state, **overrides)
                prediction.source = source_of(item)
                results.append(prediction)
        return results
