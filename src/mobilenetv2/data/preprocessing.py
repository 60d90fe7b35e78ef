"""The evaluation transforms a ``Preprocessing`` implies: in numpy and Pillow for inference (``pil_pixels``,
``Normalize``: no torch), and as torchvision transforms v2 for training and evaluation loaders (``eval_transform``);
both resize PIL images with PIL's own filter, so they give the same pixels."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mobilenetv2.spec import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, check_crop_pct, check_input_size

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Normalize", "Preprocessing", "check_crop_pct", "check_input_size",
           "eval_transform", "normalize_transform", "pil_pixels", "pixel_transform", "resized_size"]

# torchvision's InterpolationMode values -> PIL's filters (as torchvision maps them for PIL images)
PIL_FILTERS = {"nearest": 0, "nearest-exact": 0, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5, "lanczos": 1}


def resized_size(width: int, height: int, pre: Preprocessing) -> tuple[int, int]:
    """(width, height) an image is resized to before the centre crop: torchvision's ``Resize(int)`` rule (the short
    side to ``resize_size``, the long side truncated) when cropping, else the input size."""
    if pre.resize_mode != "crop":
        return pre.input_size, pre.input_size
    short, long = sorted((width, height))
    side = int(pre.resize_size * long / short)
    return (pre.resize_size, side) if width <= height else (side, pre.resize_size)


def pil_pixels(image: Image.Image, pre: Preprocessing, channels: int = 3) -> np.ndarray:
    """An RGB PIL image -> a CHW uint8 array of ``input_size``, not yet normalised: PIL's resize with the model's
    filter, then the centre crop (the same pixels as ``pixel_transform``). ``channels`` 1: PIL's "L" first."""
    if channels == 1 and image.mode != "L":
        image = image.convert("L")
    size = resized_size(image.width, image.height, pre)
    if size != image.size:
        image = image.resize(size, PIL_FILTERS[pre.interpolation])
    pixels = np.asarray(image)
    side = pre.input_size
    top, left = int(round((size[1] - side) / 2.0)), int(round((size[0] - side) / 2.0))
    pixels = pixels[top:top + side, left:left + side]
    return pixels[None] if pixels.ndim == 2 else np.ascontiguousarray(pixels.transpose(2, 0, 1))


class Normalize:
    """Pixels [..., C, H, W] (uint8, or float in [0, 1]) -> normalised float32: numpy's twin of ``normalize_transform``."""

    def __init__(self, pre: Preprocessing) -> None:
        self.mean = np.asarray(pre.mean, np.float32).reshape(-1, 1, 1)
        self.std = np.asarray(pre.std, np.float32).reshape(-1, 1, 1)

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        x = pixels.astype(np.float32)
        if pixels.dtype == np.uint8:
            x *= np.float32(1.0 / 255)
        x -= self.mean
        x /= self.std
        return x


def pixel_transform(pre: Preprocessing, channels: int = 3):
    """torchvision transforms v2: PIL/tensor image -> image tensor of ``input_size``, not yet normalised (uint8 from
    PIL, resized by PIL as ``pil_pixels`` does); ``channels`` 1 (a grayscale model): colour images become grayscale
    first, as PIL's "L" (ITU-R 601 luma)."""
    from torchvision.transforms import InterpolationMode, v2

    mode = InterpolationMode(pre.interpolation)
    if pre.resize_mode == "crop":
        resize = [v2.Resize(pre.resize_size, interpolation=mode, antialias=True), v2.CenterCrop(pre.input_size)]
    else:
        resize = [v2.Resize((pre.input_size, pre.input_size), interpolation=mode, antialias=True)]
    gray = [v2.Grayscale(num_output_channels=1)] if channels == 1 else []
    return v2.Compose([*gray, *resize, v2.ToImage()])


def normalize_transform(pre: Preprocessing):
    """Image tensors [..., C, H, W] (uint8, or float in [0, 1]) -> normalised float32."""
    import torch
    from torchvision.transforms import v2

    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(pre.mean), list(pre.std))])


def eval_transform(pre: Preprocessing):
    """torchvision transforms v2 pipeline: PIL/tensor image -> normalised float tensor of ``input_size``."""
    from torchvision.transforms import v2

    return v2.Compose([*pixel_transform(pre).transforms, *normalize_transform(pre).transforms])
