"""``Segmenter``: a class-index mask for every pixel of images of any size, and the share of each class."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from mobilenetv2.errors import UserError
from mobilenetv2.inference.images import ImageInput, size_of, to_transformable
from mobilenetv2.inference.predictor import Predictor
from mobilenetv2.spec import Preprocessing
from mobilenetv2.tasks.scores import softmax
from mobilenetv2.tasks.segmentation.prediction import SegmentationPrediction, mask_predictions, resize_bilinear
from mobilenetv2.tasks.segmentation.present import SegmentationPresenter


class Segmenter(Predictor):
    """A segmentation model: each image is resized to the model's input (no crop: every pixel gets a class), and the
    class probabilities are resized back (bilinear) to the image before the argmax.

    Options: ``top_k`` classes listed an image (default 5), ``tta`` (average with the horizontally flipped image).
    """

    task_name = "segmentation"
    presenter = SegmentationPresenter()
    options = {"top_k": 5, "tta": False}
    batch_size = 8

    def input_preprocessing(self, stored: Preprocessing) -> Preprocessing:
        return replace(stored, resize_mode="squash")

    def check_option(self, name: str, value: Any) -> Any:
        if name == "top_k" and (isinstance(value, bool) or int(value) < 1):
            raise UserError(f"top_k must be >= 1, got {value}")
        return int(value) if name == "top_k" else bool(value)

    def decode_size(self, width: int, height: int) -> tuple[int, int]:
        """The input size (each image is squashed to it; the mask comes back at the image's own size)."""
        size = self.preprocessing.input_size
        return min(width, size), min(height, size)

    def prepare(self, image: ImageInput, *, original_size: tuple[int, int] | None = None,
                **overrides: Any) -> tuple[np.ndarray, tuple[tuple[int, int], bool]]:
        tta = self.resolve(overrides)["tta"]
        image = to_transformable(image)
        pixels = self.to_pixels(image)[None]
        size = size_of(image) if original_size is None else (original_size[1], original_size[0])
        return (np.concatenate([pixels, pixels[..., ::-1]]) if tta else pixels), (size, tta)

    def finish(self, outputs: np.ndarray, state: tuple[tuple[int, int], bool], **overrides: Any) -> SegmentationPrediction:
        """The mask at the image's size and the class fractions, from the logits of its input (and of its mirror)."""
        top_k = self.resolve(overrides)["top_k"]
        size, tta = state
        probs = softmax(outputs, axis=1)
        if tta:
            probs = (probs[:1] + probs[1:2, ..., ::-1]) / 2
        return mask_predictions(resize_bilinear(probs[:1], size), self.class_names, top_k)[0]

    def predict(self, images: ImageInput | Sequence[ImageInput], top_k: int | None = None, batch_size: int = 8,
                tta: bool | None = None) -> list:
        """One ``SegmentationPrediction`` (mask, class fractions) per image; ``top_k`` limits the listed classes."""
        return self.run_predictions(images, batch_size, {"top_k": top_k, "tta": tta})
