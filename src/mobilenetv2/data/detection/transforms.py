"""Detection transforms: a window of the image and its boxes, augmented together (torchvision transforms v2 on
``BoundingBoxes``) and squashed to the input size for training; squashed alone for evaluation."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode, v2

from mobilenetv2.data.detection.targets import make_target
from mobilenetv2.data.detection.tiles import boxes_in_crop
from mobilenetv2.spec import Preprocessing


def boxes_sample(image: Image.Image, boxes: np.ndarray, labels: np.ndarray) -> tuple[Any, dict[str, Any]]:
    canvas = (image.height, image.width)
    return image, {"boxes": tv_tensors.BoundingBoxes(torch.from_numpy(np.asarray(boxes, dtype=np.float32)).reshape(-1, 4),
                                                      format="XYXY", canvas_size=canvas),
                   "labels": torch.from_numpy(np.asarray(labels, dtype=np.int64)).reshape(-1)}


def crop_window(image: Image.Image, window: tuple[int, ...]) -> Image.Image:
    return image if tuple(window) == (0, 0, image.width, image.height) else image.crop(tuple(window))


class DetectionTrain:
    """Crop the window, augment ("paper": SSD's colour distortion, zoom out, IoU crop, flip; "light": flip and a
    mild random crop; "none": nothing), squash to S x S, normalise. Targets: the augmented boxes in S x S pixels."""

    def __init__(self, pre: Preprocessing, augment: str, flip: bool) -> None:
        size, mode = pre.input_size, InterpolationMode(pre.interpolation)
        flips = [v2.RandomHorizontalFlip()] if flip else []
        resize = v2.Resize((size, size), interpolation=mode, antialias=True)
        fill = {tv_tensors.Image: [round(255 * m) for m in pre.mean], "others": 0}
        if augment == "none":
            steps: list[list[Any]] = [[resize]] * 2
        elif augment == "light":
            steps = [[*flips, v2.RandomResizedCrop(size, scale=(0.8, 1.0), interpolation=mode, antialias=True)]] * 2
        else:  # "paper"; randaugment and trivialaugment are classification presets and mean SSD's augmentation here
            # SSD's photometric distortion without its channel swap: colour tells vegetation, fruit, signs apart
            colour = v2.RandomApply([v2.ColorJitter(brightness=0.125, contrast=0.5, saturation=0.5, hue=0.05)], p=0.5)
            head = [colour, v2.RandomZoomOut(fill=fill, side_range=(1.0, 2.0), p=0.5)]
            # RandomIoUCrop needs a box to keep; an image without boxes skips it
            steps = [[*head, v2.RandomIoUCrop(), *flips, resize], [*head, *flips, resize]]
        tail = [v2.ClampBoundingBoxes(), v2.SanitizeBoundingBoxes(min_size=1),
                v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True), v2.Normalize(pre.mean, pre.std)]
        self.with_boxes, self.without_boxes = (v2.Compose([v2.ToImage(), *s, *tail]) for s in steps)
        self.size = size

    def __call__(self, image: Image.Image, boxes: np.ndarray, labels: np.ndarray, window: tuple[int, ...],
                 image_id: int) -> tuple[torch.Tensor, dict]:
        boxes, labels = boxes_in_crop(np.asarray(boxes, dtype=np.float32).reshape(-1, 4), np.asarray(labels), window)
        transform = self.with_boxes if len(boxes) else self.without_boxes
        out, target = transform(*boxes_sample(crop_window(image, window), boxes, labels))
        h, w = out.shape[-2:]
        return out.as_subclass(torch.Tensor), make_target(target["boxes"].as_subclass(torch.Tensor), target["labels"],
                                                          (h, w), (0, 0, w, h), image_id)


class DetectionEval:
    """Crop the window, squash to S x S, normalise; the target is the whole image's ground truth in its pixels."""

    def __init__(self, pre: Preprocessing) -> None:
        mode = InterpolationMode(pre.interpolation)
        self.transform = v2.Compose([v2.ToImage(), v2.Resize((pre.input_size, pre.input_size), interpolation=mode,
                                                             antialias=True),
                                     v2.ToDtype(torch.float32, scale=True), v2.Normalize(pre.mean, pre.std)])

    def __call__(self, image: Image.Image, boxes: np.ndarray, labels: np.ndarray, window: tuple[int, ...],
                 image_id: int) -> tuple[torch.Tensor, dict]:
        out = self.transform(crop_window(image, window)).as_subclass(torch.Tensor)
        return out, make_target(boxes, labels, (image.height, image.width), window, image_id)
