"""The PASCAL VOC colour map: class-index masks as palette PNGs, and masks blended over their photos."""

from __future__ import annotations

import numpy as np
from PIL import Image

IGNORE = 255


def pascal_palette(num_colors: int = 256) -> list[int]:
    """PASCAL VOC's colours (class 1 = (128, 0, 0), ...; 255 = (224, 224, 192)) as a flat RGB list for ``putpalette``."""
    palette = []
    for index in range(num_colors):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette += [r, g, b]
    return palette


PALETTE = pascal_palette()


def colorize(mask: np.ndarray) -> Image.Image:
    """A "P" image of the class indices with the PASCAL palette (its pixel values stay the class indices)."""
    image = Image.fromarray(np.asarray(mask, dtype=np.uint8), mode="P")
    image.putpalette(PALETTE)
    return image


def overlay(image: Image.Image, mask: np.ndarray, alpha: float = 0.5) -> Image.Image:
    """The photo with every non-background, non-ignored pixel blended with its class colour."""
    rgb = np.asarray(image.convert("RGB").resize((mask.shape[1], mask.shape[0])), dtype=np.float32)
    colours = np.asarray(PALETTE, dtype=np.float32).reshape(-1, 3)[mask]
    labelled = ((mask > 0) & (mask != IGNORE))[..., None]
    blended = np.where(labelled, (1 - alpha) * rgb + alpha * colours, rgb)
    return Image.fromarray(blended.round().astype(np.uint8))


def side_by_side(*pictures: Image.Image, gap: int = 4) -> Image.Image:
    """Pictures of the same height in one row (RGB), e.g. photo | truth | prediction."""
    pictures = [p.convert("RGB") for p in pictures]
    height = max(p.height for p in pictures)
    canvas = Image.new("RGB", (sum(p.width for p in pictures) + gap * (len(pictures) - 1), height), "white")
    x = 0
    for p in pictures:
        canvas.paste(p, (x, 0))
        x += p.width + gap
    return canvas
