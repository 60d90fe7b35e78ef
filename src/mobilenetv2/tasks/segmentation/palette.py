"""The PASCAL VOC colour map: class-index masks as palette PNGs, masks blended over their photos, and a legend."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

IGNORE = 255  # VOC's "void" label: its colour is (224, 224, 192) and it is never blended over a photo


def pascal_palette(num_classes: int = 256) -> list[int]:
    """PASCAL VOC's colours (class 1 = (128, 0, 0), ...; 255 = (224, 224, 192)) as a flat RGB list for ``putpalette``."""
    palette = []
    for index in range(num_classes):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):  # the bits of the index, three at a time, from the top bit of each channel down
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette += [r, g, b]
    return palette


PALETTE = pascal_palette()
COLOURS = np.asarray(PALETTE, dtype=np.uint8).reshape(256, 3)


def _indices(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a mask is [H, W] class indices, got shape {mask.shape}")
    if mask.size and (mask.min() < 0 or mask.max() > 255):
        raise ValueError(f"mask values must lie in 0..255, got {mask.min()}..{mask.max()}")
    return mask.astype(np.uint8, copy=False)


def colorize(mask: np.ndarray) -> Image.Image:
    """A "P" image of the class indices with the PASCAL palette (its pixel values stay the class indices)."""
    image = Image.fromarray(_indices(mask), mode="P")
    image.putpalette(PALETTE)
    return image


def overlay(image: Image.Image, mask: np.ndarray, alpha: float = 0.5) -> Image.Image:
    """The photo (resized to the mask) with every non-background, non-ignored pixel blended with its class colour."""
    mask = _indices(mask)
    rgb = np.asarray(image.convert("RGB").resize((mask.shape[1], mask.shape[0])), dtype=np.float32)
    labelled = ((mask > 0) & (mask != IGNORE))[..., None]
    blended = np.where(labelled, (1 - alpha) * rgb + alpha * COLOURS[mask].astype(np.float32), rgb)
    return Image.fromarray(blended.round().astype(np.uint8))


def legend(class_names: list[str], classes: list[int] | None = None, swatch: int = 14) -> Image.Image:
    """A white RGB strip: one row per class in ``classes`` (default: all), its PASCAL colour and its name."""
    classes = list(range(len(class_names))) if classes is None else list(classes)
    labels = [class_names[i] if i < len(class_names) else ("ignore" if i == IGNORE else str(i)) for i in classes]
    width = swatch + 8 + 7 * max((len(name) for name in labels), default=0)
    canvas = Image.new("RGB", (max(width, swatch), max(1, len(classes)) * (swatch + 2)), "white")
    draw = ImageDraw.Draw(canvas)
    for row, (index, name) in enumerate(zip(classes, labels)):
        y = row * (swatch + 2)
        draw.rectangle([0, y, swatch - 1, y + swatch - 1], fill=tuple(int(v) for v in COLOURS[index]), outline="black")
        draw.text((swatch + 4, y + 1), name, fill="black")
    return canvas


def side_by_side(*pictures: Image.Image, gap: int = 4) -> Image.Image:
    """Pictures in one row (RGB) on white, top-aligned, e.g. photo | truth | prediction."""
    pictures = [p.convert("RGB") for p in pictures]
    height = max(p.height for p in pictures)
    canvas = Image.new("RGB", (sum(p.width for p in pictures) + gap * (len(pictures) - 1), height), "white")
    x = 0
    for p in pictures:
        canvas.paste(p, (x, 0))
        x += p.width + gap
    return canvas
