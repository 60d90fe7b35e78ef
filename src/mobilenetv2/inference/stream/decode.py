"""Decoding beside the model: a file (or bytes) becomes an HWC uint8 array, JPEGs in draft mode at the smallest
scale that still covers what the model's preprocessing resizes to (``Predictor.decode_size``); resizing then runs on
the HWC array with Pillow inside ``Predictor.prepare`` (numpy, no torch)."""

from __future__ import annotations

import io
import os
from collections.abc import Callable

import numpy as np

from mobilenetv2.data.images import DECODE_ERRORS, BadImageError, open_image, to_rgb, upright

ORIENTATION = 0x0112          # the EXIF tag; 5 to 8 turn the image by 90 degrees
TURNED = (5, 6, 7, 8)
SizeRule = Callable[[int, int], tuple[int, int]]


def read_image(source: str | os.PathLike[str] | bytes, where: object = None,
               decode_size: SizeRule | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """An upright RGB image as an HWC uint8 array and the (width, height) it has at full size. With ``decode_size``
    (width, height -> the smallest size wanted) a JPEG decodes at 1/2, 1/4 or 1/8 scale when that still covers it."""
    where = source if where is None else where
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    with open_image(stream, where) as img:
        try:
            full = upright_size(img)
            if decode_size is not None and img.format == "JPEG":
                wanted = decode_size(*full)
                img.draft("RGB", wanted[::-1] if full != img.size else wanted)
            img.load()
            return np.array(to_rgb(upright(img))), full
        except DECODE_ERRORS as exc:
            raise BadImageError(f"{where}: not a readable image ({type(exc).__name__}: {exc})") from exc


def upright_size(img) -> tuple[int, int]:  # noqa: ANN001 - a PIL image
    """(width, height) of the image once turned by its EXIF orientation."""
    try:
        turned = img.getexif().get(ORIENTATION, 1) in TURNED
    except DECODE_ERRORS:
        turned = False
    return (img.height, img.width) if turned else img.size
