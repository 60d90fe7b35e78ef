"""Decoding beside the model: a file (or bytes) becomes an upright RGB image, JPEGs in draft mode at the smallest scale
that still covers what the model's preprocessing resizes to (``Predictor.decode_size``); ``model_inputs`` then resizes
it (Pillow) and normalises it (numpy) in the same worker, so that the model's thread only batches and runs the model.
No torch here: the streaming pipeline, the Ray actors and the server's upload path share these functions."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from mobilenetv2.data.images import DECODE_ERRORS, BadImageError, open_image, to_rgb, upright

if TYPE_CHECKING:
    from mobilenetv2.inference.predictor import Predictor

ORIENTATION = 0x0112          # the EXIF tag; 5 to 8 turn the image by 90 degrees
TURNED = (5, 6, 7, 8)
SizeRule = Callable[[int, int], tuple[int, int]]


def read_picture(source: str | os.PathLike[str] | bytes, where: object = None,
                 decode_size: SizeRule | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """An upright RGB PIL image and the (width, height) it has at full size. With ``decode_size`` (width, height -> the
    smallest size wanted) a JPEG decodes at 1/2, 1/4 or 1/8 scale when that still covers it."""
    where = source if where is None else where
    if isinstance(source, bytes) and not source:
        raise BadImageError(f"{where}: empty (no image bytes)")
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    with open_image(stream, where) as img:
        try:
            orientation = exif_orientation(img)
            full = (img.height, img.width) if orientation in TURNED else img.size
            if decode_size is not None and img.format == "JPEG":
                wanted = decode_size(*full)
                img.draft("RGB", wanted[::-1] if full != img.size else wanted)
            img.load()
            # upright() copies even an image without a turn; the loaded pixels outlive the file's closing
            return to_rgb(upright(img) if orientation not in (None, 1) else img), full
        except DECODE_ERRORS as exc:
            raise BadImageError(f"{where}: not a readable image ({type(exc).__name__}: {exc})") from exc


def read_image(source: str | os.PathLike[str] | bytes, where: object = None,
               decode_size: SizeRule | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """``read_picture`` as an HWC uint8 array (what video frames are) and the full (width, height)."""
    picture, full = read_picture(source, where, decode_size)
    return np.array(picture), full


def exif_orientation(img: Image.Image) -> int | None:
    """The image's EXIF orientation (1: as stored; None: no readable EXIF)."""
    try:
        return img.getexif().get(ORIENTATION, 1)
    except DECODE_ERRORS:
        return None


def model_inputs(predictor: Predictor, image: Image.Image | np.ndarray, full: tuple[int, int] | None = None,
                 **overrides: Any) -> tuple[np.ndarray, Any]:
    """A decoded image (PIL, or an HWC uint8 array) -> its normalised float32 model inputs [k, C, S, S] and what
    ``finish`` needs; ``full``: its (width, height) before a smaller decode."""
    size = image.size if isinstance(image, Image.Image) else (image.shape[1], image.shape[0])
    pixels, state = predictor.prepare(image, original_size=None if full in (None, size) else full, **overrides)
    return predictor.normalize(pixels), state
