"""``Classifier``: the top-k labels and probabilities of images given as paths, PIL images, arrays or tensors."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from mobilenetv2.errors import UserError
from mobilenetv2.inference.images import ImageInput
from mobilenetv2.inference.predictor import Predictor
from mobilenetv2.tasks.classification.prediction import Prediction, top_k_predictions
from mobilenetv2.tasks.classification.present import ClassificationPresenter
from mobilenetv2.tasks.scores import softmax


class Classifier(Predictor):
    """A classification model with its class names and preprocessing.

    ``predict`` takes paths, PIL images, HWC uint8 arrays, or tensors. A tensor is taken as an RGB image in [0, 1]
    (CHW float, or uint8 in [0, 255]), not yet resized or normalised; the model's own preprocessing is applied.
    Options: ``top_k`` labels an image (default 5), ``tta`` (average with the horizontally flipped image).
    """

    task_name = "classification"
    presenter = ClassificationPresenter()
    options = {"top_k": 5, "tta": False}
    batch_size = 32

    def check_option(self, name: str, value: Any) -> Any:
        if name == "top_k" and (isinstance(value, bool) or int(value) < 1):
            raise UserError(f"top_k must be >= 1, got {value}")
        return int(value) if name == "top_k" else bool(value)

    def probabilities(self, batch: np.ndarray, tta: bool = False) -> np.ndarray:
        """Softmax probabilities of a normalised batch; with ``tta`` the average over it and its horizontal flip."""
        probs = softmax(self.logits(batch), axis=1)
        if tta:
            probs = (probs + softmax(self.logits(np.ascontiguousarray(batch[..., ::-1])), axis=1)) / 2
        return probs

    def decode_size(self, width: int, height: int) -> tuple[int, int]:
        """Squashed: the input size; cropped: the size the short side is resized to (never above the image's own)."""
        pre = self.preprocessing
        if pre.resize_mode == "squash":
            return min(width, pre.input_size), min(height, pre.input_size)
        scale = min(1.0, pre.resize_size / min(width, height))
        return math.ceil(width * scale), math.ceil(height * scale)

    def prepare(self, image: ImageInput, *, original_size: tuple[int, int] | None = None,
                **overrides: Any) -> tuple[np.ndarray, bool]:
        """The image's input (and its mirror image with ``tta``), resized; the state says whether TTA is on."""
        tta = self.resolve(overrides)["tta"]
        pixels = self.pixels(image)[None]
        return (np.concatenate([pixels, pixels[..., ::-1]]) if tta else pixels), tta

    def finish(self, outputs: np.ndarray, state: bool, **overrides: Any) -> Prediction:
        """The top-k of one image: from its logits, or the average of its and its mirror's probabilities."""
        top_k = self.resolve(overrides)["top_k"]
        scores = outputs[:1] if not state else np.log(softmax(outputs, axis=1).mean(axis=0, keepdims=True))
        return top_k_predictions(scores, self.class_names, top_k)[0]

    def predict(self, images: ImageInput | Sequence[ImageInput], top_k: int | None = None, batch_size: int = 32,
                tta: bool | None = None) -> list[Prediction]:
        """The ``top_k`` labels and probabilities of each image (a single image gives a list of one)."""
        return self.run_predictions(images, batch_size, {"top_k": top_k, "tta": tta})
