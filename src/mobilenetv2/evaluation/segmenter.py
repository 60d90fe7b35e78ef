"""``Segmenter``: a class-index mask for every pixel of images of any size, from a segmentation checkpoint or export."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from mobilenetv2.data.images import load_image
from mobilenetv2.errors import UserError
from mobilenetv2.evaluation.classifier import Classifier, ImageInput, _is_single


class Segmenter(Classifier):
    """Loads like ``Classifier``; ``predict`` gives each image's mask at its own resolution and class fractions.

    Each image is resized to the model's input size, and the logits are resized back (bilinear) before the argmax.
    """

    TASK = "segmentation"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.set_preprocessing(replace(self.preprocessing, resize_mode="squash"))  # no crop: every pixel gets a class

    def probabilities_at(self, batch: torch.Tensor, sizes: list[tuple[int, int]], tta: bool = False) -> list[torch.Tensor]:
        """Per-pixel class probabilities [C, H, W] of each image at its size; with ``tta`` averaged with the flip."""
        probs = self.logits(batch).softmax(dim=1)
        if tta:
            probs = (probs + self.logits(batch.flip(-1)).softmax(dim=1).flip(-1)) / 2
        return [F.interpolate(p[None], size=size, mode="bilinear", align_corners=False)[0] for p, size in zip(probs, sizes)]

    def prepare(self, image: ImageInput) -> tuple[torch.Tensor, tuple[int, int]]:
        image = load_image(image) if isinstance(image, (str, os.PathLike)) else image
        return self.pixels(image)[None], _size(image)

    def finish(self, outputs: torch.Tensor, size: tuple[int, int], top_k: int = 5):
        """The mask at the image's ``size`` and the class fractions, from the logits of its input."""
        probs = F.interpolate(outputs.float().softmax(dim=1), size=size, mode="bilinear", align_corners=False)
        return self.task.postprocess(probs.log(), self.class_names, top_k)[0]

    def predict(self, images: ImageInput | Sequence[ImageInput], top_k: int = 5, batch_size: int = 8,
                tta: bool = False) -> list:
        """One ``SegmentationPrediction`` (mask, class fractions) per image; ``top_k`` limits the listed classes."""
        if top_k < 1:
            raise UserError(f"top_k must be >= 1, got {top_k}")
        items = [images] if _is_single(images) else list(images)
        results = []
        for start in range(0, len(items), batch_size):
            chunk = [load_image(x) if isinstance(x, (str, os.PathLike)) else x for x in items[start:start + batch_size]]
            batch = torch.stack([self.preprocess(x) for x in chunk])
            sizes = [_size(x) for x in chunk]
            for item, probs in zip(items[start:start + batch_size], self.probabilities_at(batch, sizes, tta)):
                prediction = self.task.postprocess(probs[None].log(), self.class_names, top_k)[0]
                prediction.source = str(item) if isinstance(item, (str, os.PathLike)) else None
                results.append(prediction)
        return results


def _size(image: ImageInput) -> tuple[int, int]:
    """(height, width) of an image given as PIL, HWC array or CHW tensor."""
    if isinstance(image, Image.Image):
        return image.height, image.width
    if isinstance(image, np.ndarray):
        return image.shape[0], image.shape[1]
    return int(image.shape[-2]), int(image.shape[-1])
