"""Segmentation transforms: image and mask augmented together (torchvision transforms v2 on ``Mask``) and cropped to the
input size for training; for evaluation the image resized and the mask kept at full resolution."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from mobilenetv2.data.segmentation.sources import IGNORE
from mobilenetv2.spec import Preprocessing

SCALES = {"paper": (0.5, 2.0), "randaugment": (0.5, 2.0), "trivialaugment": (0.5, 2.0), "light": (0.75, 1.25),
          "none": (1.0, 1.0)}


class JointTrain:
    """Random scale, crop to input_size (image padded with 0, mask with 255), flip, colour jitter, normalise."""

    def __init__(self, pre: Preprocessing, augment: str, flip: bool) -> None:
        low, high = SCALES[augment]
        size = pre.input_size
        ops: list[Any] = [v2.ToImage()]
        if augment == "none":
            ops.append(v2.Resize((size, size), antialias=True))
        else:
            ops += [v2.RandomResize(int(low * size), int(high * size) + 1, antialias=True),
                    v2.RandomCrop(size, pad_if_needed=True, fill={tv_tensors.Image: 0, tv_tensors.Mask: IGNORE})]
            if flip and augment != "light":
                ops.append(v2.RandomHorizontalFlip())
            if augment in ("paper", "randaugment", "trivialaugment"):
                ops.append(v2.ColorJitter(0.3, 0.3, 0.3, 0.02))
        ops += [v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True), v2.Normalize(pre.mean, pre.std)]
        self.transform = v2.Compose(ops)

    def __call__(self, image: Image.Image, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.transform(image, tv_tensors.Mask(torch.from_numpy(np.array(mask, dtype=np.uint8))))
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor).long()


class JointEval:
    """The image resized to input_size x input_size and normalised; the mask kept at full resolution."""

    def __init__(self, pre: Preprocessing) -> None:
        self.transform = v2.Compose([v2.ToImage(), v2.Resize((pre.input_size, pre.input_size), antialias=True),
                                     v2.ToDtype(torch.float32, scale=True), v2.Normalize(pre.mean, pre.std)])

    def __call__(self, image: Image.Image, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(image).as_subclass(torch.Tensor), torch.from_numpy(np.array(mask, dtype=np.int64))
