"""``Detector``: boxes, classes and scores for images of any size, tiled when they are larger than the model's tile."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from PIL import Image

from mobilenetv2.data.images import load_image
from mobilenetv2.errors import UserError
from mobilenetv2.evaluation.classifier import Classifier, ImageInput, _array_to_pil, _is_single

DEFAULT_SCORE_THRESHOLD = 0.3


class Detector(Classifier):
    """Loads like ``Classifier``; ``predict`` gives each image's detections in its own pixels.

    Each image (or each tile of it, with ``tile``: the checkpoint's training tile by default) is resized to the
    model's input; the detections of the tiles are merged by NMS.
    """

    TASK = "detection"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.set_preprocessing(replace(self.preprocessing, resize_mode="squash", crop_pct=1.0))
        self.score_threshold = DEFAULT_SCORE_THRESHOLD
        from mobilenetv2.tasks.detection.boxes import MAX_DETECTIONS

        self.max_detections = MAX_DETECTIONS

    def configure(self, score_threshold: float | None = None, max_detections: int | None = None,
                  tile: int | None = None, tile_overlap: float | None = None) -> None:
        """Change the prediction options; ``tile=0`` turns tiling off."""
        if score_threshold is not None:
            if not 0 <= score_threshold <= 1:
                raise UserError(f"--score-threshold must be in [0, 1], got {score_threshold}")
            self.score_threshold = float(score_threshold)
        if max_detections is not None:
            if max_detections < 1:
                raise UserError(f"--max-detections must be >= 1, got {max_detections}")
            self.max_detections = int(max_detections)
        if tile is not None:
            if tile != 0 and tile < 64:
                raise UserError(f"--tile must be 0 (off) or >= 64 pixels, got {tile}")
            self.preprocessing = replace(self.preprocessing, tile=tile or None)
        if tile_overlap is not None:
            if not 0 <= tile_overlap <= 0.9:
                raise UserError(f"--tile-overlap must be in [0, 0.9], got {tile_overlap}")
            self.preprocessing = replace(self.preprocessing, tile_overlap=float(tile_overlap))

    @property
    def tile(self) -> int | None:
        """Images larger than this are cut into tiles of this size (the training run's by default; None: never)."""
        return self.preprocessing.tile

    @property
    def tile_overlap(self) -> float:
        return self.preprocessing.tile_overlap

    def predict(self, images: ImageInput | Sequence[ImageInput], top_k: int | None = None, batch_size: int = 16,
                tta: bool = False) -> list:
        """One ``DetectionPrediction`` per image (``top_k`` is the classifiers' option: ``max_detections`` caps boxes)."""
        if tta:
            raise UserError("--tta is not available for detection models")
        items = [images] if _is_single(images) else list(images)
        return [self.detect(item, batch_size) for item in items]

    def prepare(self, item: ImageInput) -> tuple[torch.Tensor, tuple[list, tuple[int, int]]]:
        """The image's inputs: its tiles (or the whole image), each resized to the model's input."""
        from mobilenetv2.data.detection import tile_windows

        image = _as_pil(item)
        windows = tile_windows(image.width, image.height, self.tile, self.tile_overlap)
        return torch.stack([self.pixels(image.crop(w)) for w in windows]), (windows, (image.width, image.height))

    def finish(self, outputs: torch.Tensor, state: tuple[list, tuple[int, int]], top_k: int | None = None):
        """The image's detections in its pixels: each tile's, moved into place, merged by NMS."""
        from mobilenetv2.tasks.detection.boxes import decode, merge, to_image
        from mobilenetv2.tasks.detection.task import DetectionPrediction

        windows, (width, height) = state
        parts = [to_image(det, torch.tensor(window, dtype=torch.float32), (height, width))
                 for det, window in zip(decode(outputs, self.score_threshold), windows)]
        det = merge(parts, max_detections=self.max_detections)
        return DetectionPrediction.from_detections(det, self.class_names, width, height, None, len(windows))

    def detect(self, item: ImageInput, batch_size: int):
        inputs, state = self.prepare(item)
        outputs = torch.cat([self.logits_of_pixels(inputs[i:i + batch_size]) for i in range(0, len(inputs), batch_size)])
        prediction = self.finish(outputs, state)
        prediction.source = str(item) if isinstance(item, (str, os.PathLike)) else None
        return prediction


def _as_pil(item: Any) -> Image.Image:
    if isinstance(item, (str, os.PathLike)):
        return load_image(item)
    if isinstance(item, Image.Image):
        return item.convert("RGB")
    if isinstance(item, torch.Tensor):
        from torchvision.transforms.v2.functional import to_pil_image

        return to_pil_image(item)
    return _array_to_pil(item)
