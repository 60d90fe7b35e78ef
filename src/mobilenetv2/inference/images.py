"""The image inputs every predictor accepts: paths, PIL images, HWC uint8 arrays and CHW tensors (RGB in [0, 1] as
float, or uint8), before resizing and normalisation."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Union

import numpy as np
from PIL import Image

from mobilenetv2.data.images import load_image, to_rgb, upright
from mobilenetv2.errors import UserError

if TYPE_CHECKING:
    import torch

ImageInput = Union[str, os.PathLike, Image.Image, np.ndarray, "torch.Tensor"]


def is_tensor(image: Any) -> bool:
    """A torch tensor (torch is never imported to tell: without it loaded, nothing is one)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(image, torch.Tensor)


def is_single(images: Any) -> bool:
    """One image (not a list of them)."""
    if isinstance(images, (str, os.PathLike, Image.Image)):
        return True
    return (isinstance(images, np.ndarray) or is_tensor(images)) and images.ndim == 3


def source_of(image: ImageInput) -> str | None:
    """The file an image came from, when it was given as a path."""
    return str(image) if isinstance(image, (str, os.PathLike)) else None


def array_to_pil(array: np.ndarray) -> Image.Image:
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise UserError(f"an array image must be HWC with 1, 3 or 4 channels, got shape {array.shape}")
    if array.dtype != np.uint8:
        raise UserError(f"an array image must be uint8 (0-255), got {array.dtype}; give float images as CHW tensors in [0, 1]")
    return to_rgb(Image.fromarray(array[..., 0] if array.shape[2] == 1 else array))


def check_tensor(image: torch.Tensor) -> torch.Tensor:
    """A CHW tensor image with 1 or 3 channels, as 3 channels."""
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise UserError(f"a tensor image must be CHW with 1 or 3 channels, got shape {tuple(image.shape)}")
    return image.expand(3, -1, -1) if image.shape[0] == 1 else image


def to_transformable(image: ImageInput) -> Image.Image | torch.Tensor:
    """An RGB PIL image (turned upright by its EXIF orientation) or a 3-channel CHW tensor: what the transforms take."""
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    if isinstance(image, Image.Image):
        return to_rgb(upright(image))
    if isinstance(image, np.ndarray):
        return array_to_pil(image)
    if is_tensor(image):
        return check_tensor(image)
    raise UserError(f"cannot predict on a {type(image).__name__}; give paths, PIL images, HWC uint8 arrays or CHW tensors")


def to_pil(image: ImageInput) -> Image.Image:
    """The image as an RGB PIL image (tensors in [0, 1] or uint8 are converted)."""
    image = to_transformable(image)
    if is_tensor(image):
        from torchvision.transforms.v2.functional import to_pil_image

        return to_pil_image(image)
    return image


def size_of(image: Image.Image | torch.Tensor) -> tuple[int, int]:
    """(height, width) of a PIL image or a CHW tensor."""
    if isinstance(image, Image.Image):
        return image.height, image.width
    return int(image.shape[-2]), int(image.shape[-1])
