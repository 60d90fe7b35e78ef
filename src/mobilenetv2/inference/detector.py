"""``Detector``: boxes, classes and scores for images of any size, tiled when they are larger than the model's tile."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from mobilenetv2.data.detection.tiles import tile_windows
from mobilenetv2.errors import UserError
from mobilenetv2.inference.images import ImageInput, size_of, to_pil, to_transformable
from mobilenetv2.inference.predictor import Predictor
from mobilenetv2.spec import Preprocessing
from mobilenetv2.tasks.detection.present import DetectionPresenter

if TYPE_CHECKING:
    from mobilenetv2.backends.base import Runtime

DEFAULT_SCORE_THRESHOLD = 0.3


class Detector(Predictor):
    """A detection model: each image (or each tile of it: ``tile``, the training run's tile by default) is resized to
    the model's input; the detections of the tiles are moved into the image's pixels and merged by NMS.

    Options: ``score_threshold`` (0.3), ``max_detections`` (300), ``tile`` (pixels; 0: no tiles), ``tile_overlap``.
    """

    task_name = "detection"
    presenter = DetectionPresenter()
    batch_size = 16

    def __init__(self, runtime: Runtime, **options: Any) -> None:
        from mobilenetv2.tasks.detection.decoding import MAX_DETECTIONS

        pre = runtime.preprocessing
        self.options = {"score_threshold": DEFAULT_SCORE_THRESHOLD, "max_detections": MAX_DETECTIONS,
                        "tile": pre.tile or 0, "tile_overlap": pre.tile_overlap}
        super().__init__(runtime, **options)

    @staticmethod
    def output_classes(outputs: np.ndarray) -> int:
        """Outputs [N, A, 4 + C]: boxes, then the classes' logits."""
        return int(outputs.shape[-1]) - 4

    def input_preprocessing(self, stored: Preprocessing) -> Preprocessing:
        return replace(stored, resize_mode="squash", crop_pct=1.0)

    def check_option(self, name: str, value: Any) -> Any:
        if name == "score_threshold" and not 0 <= value <= 1:
            raise UserError(f"--score-threshold must be in [0, 1], got {value}")
        if name == "max_detections" and value < 1:
            raise UserError(f"--max-detections must be >= 1, got {value}")
        if name == "tile" and value != 0 and value < 64:
            raise UserError(f"--tile must be 0 (off) or >= 64 pixels, got {value}")
        if name == "tile_overlap" and not 0 <= value <= 0.9:
            raise UserError(f"--tile-overlap must be in [0, 0.9], got {value}")
        return float(value) if name in ("score_threshold", "tile_overlap") else int(value)

    def configure(self, **options: Any) -> None:
        """Change the prediction options; ``tile=0`` turns tiling off (the preprocessing shown says so too)."""
        super().configure(**options)
        self.preprocessing = replace(self.preprocessing, tile=self.settings["tile"] or None,
                                     tile_overlap=self.settings["tile_overlap"])

    @property
    def tile(self) -> int | None:
        """Images larger than this are cut into tiles of this size (None: never)."""
        return self.settings["tile"] or None

    @property
    def score_converter(self) -> str:
        """How logits become scores: "softmax" (ours) or "sigmoid" (the TF Object Detection API's), as the model says."""
        arch = self.runtime.architecture or {}
        return arch.get("args", {}).get("score_converter", "softmax")

    @property
    def tile_overlap(self) -> float:
        return self.settings["tile_overlap"]

    def decode_size(self, width: int, height: int) -> tuple[int, int]:
        """The input size when the image is not cut into tiles (it is squashed to it), else its own size."""
        if len(tile_windows(width, height, self.tile, self.tile_overlap)) > 1:
            return width, height
        size = self.preprocessing.input_size
        return min(width, size), min(height, size)

    def prepare(self, image: ImageInput, *, original_size: tuple[int, int] | None = None,
                **overrides: Any) -> tuple[np.ndarray, tuple[list, tuple[int, int]]]:
        """The image's inputs: its tiles (or the whole image), each resized to the model's input."""
        options = self.resolve(overrides)
        image = to_transformable(image)
        height, width = size_of(image)
        width, height = original_size or (width, height)
        windows = tile_windows(width, height, options["tile"] or None, options["tile_overlap"])
        if len(windows) == 1:  # the whole image, as it came
            return self.to_pixels(image)[None], (windows, (width, height))
        if size_of(image) != (height, width):
            raise UserError(f"an image cut into tiles must come at its own size {width}x{height}, not "
                            f"{size_of(image)[1]}x{size_of(image)[0]} (see Detector.decode_size)")
        image = to_pil(image)
        pixels = [self.to_pixels(image.crop(w)) for w in windows]
        return np.stack(pixels), (windows, (width, height))

    def finish(self, outputs: np.ndarray, state: tuple[list, tuple[int, int]], **overrides: Any):
        """The image's detections in its pixels: each tile's, moved into place, merged by NMS."""
        from mobilenetv2.tasks.detection.decoding import decode, merge, to_image
        from mobilenetv2.tasks.detection.prediction import DetectionPrediction

        options = self.resolve(overrides)
        windows, (width, height) = state
        parts = [to_image(det, window, (height, width))
                 for det, window in zip(decode(outputs, options["score_threshold"], score_converter=self.score_converter),
                                        windows)]
        det = merge(parts, max_detections=options["max_detections"])
        return DetectionPrediction.from_detections(det, self.class_names, width, height, None, len(windows))

    def tracker(self, source: str, frame_rate: float | None) -> Any:
        """ByteTrack across the frames of a video: each detection's track ID, and the count of distinct objects."""
        from mobilenetv2.inference.stream.tracking import ByteTracks

        return ByteTracks(source, frame_rate, self.settings["score_threshold"])

    def predict(self, images: ImageInput | Sequence[ImageInput], batch_size: int = 16,
                score_threshold: float | None = None, max_detections: int | None = None) -> list:
        """One ``DetectionPrediction`` per image, its boxes in the image's pixels."""
        return self.run_predictions(images, batch_size, {"score_threshold": score_threshold,
                                                         "max_detections": max_detections})
