"""Pictures of predictions (``predict --draw``): each image with its prediction drawn (the task's ``save_prediction``:
labels, boxes, or the mask and its overlay), named ``NNNN_stem`` by the image's place among the inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from mobilenetv2.inference.stream.sinks.base import Item, Sink, image_results


class PicturesSink(Sink):
    def __init__(self, out: Path, task: Any) -> None:
        self.out, self.task = out, task

    def write(self, batch: list[Item]) -> None:
        for result in image_results(batch):
            stem = f"{result.frame.ordinal + 1:04d}_{Path(result.frame.source).stem}"
            self.task.save_prediction(Image.fromarray(result.frame.picture), result.prediction, self.out, stem)
