"""The pictures and files of each image's prediction, named ``NNNN_stem`` by the image's place among the inputs: what
the task's presenter writes for every image with ``--out`` (segmentation: the class-index mask, STEM_mask.png) and,
with ``predict --draw``, the prediction drawn (labels, boxes, the mask's overlay)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from mobilenetv2.inference.stream.sinks.base import Item, Sink, image_results
from mobilenetv2.io import atomic_path

if TYPE_CHECKING:
    from mobilenetv2.tasks import Presenter


class PicturesSink(Sink):
    def __init__(self, out: Path, presenter: Presenter, draw: bool) -> None:
        self.out, self.presenter, self.draw = out, presenter, draw

    def write(self, batch: list[Item]) -> None:
        for result in image_results(batch):
            stem = f"{result.frame.ordinal + 1:04d}_{Path(result.frame.source).stem}"
            pictures = self.presenter.files(result.prediction)
            if self.draw:
                pictures |= self.presenter.pictures(Image.fromarray(result.frame.picture), result.prediction)
            for suffix, picture in pictures.items():
                with atomic_path(self.out / f"{stem}{suffix}.png") as tmp:
                    picture.save(tmp, format="PNG")
