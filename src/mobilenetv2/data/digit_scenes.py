"""The built-in ``digits`` data of segmentation and detection: digits printed in Pillow's bundled font on generated
backgrounds, made on the fly from (seed, split, index) with exact masks and boxes; nothing to download.

``DigitScenes`` (segmentation): 96 x 96 scenes of 1-2 digit cards, the mask exactly the card. ``DigitCanvases``
(detection): 128 x 128 canvases of 1-4 bare digits, boxes tight around each digit's visible pixels. Both label a digit
d as class d + 1 (``DIGIT_CLASSES``, background first). Their pixels are pinned by ``tests/data/test_digit_scenes.py``:
trained checkpoints and the README's figures depend on them, so a change here is a change of data.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

DIGIT_CLASSES = ["background", *(str(d) for d in range(10))]
SPLIT_SIZES = {"train": 480, "val": 120}  # images of each split, for either task
SCENE_CANVAS = 96  # segmentation scenes: side in pixels
CARD_SIDES = (36, 60)  # font size of a card's digit in pixels
BOX_CANVAS = 128  # detection canvases: side in pixels
DIGIT_SIZES = (20, 48)  # font size of a bare digit in pixels
MAX_DIGIT_IOU = 0.3  # two digits of a canvas overlap at most this much


def digit_items() -> dict[str, list[tuple[str, int]]]:
    """The (split, index) items of "train", "val" and "all" (train then val)."""
    items = {s: [(s, i) for i in range(n)] for s, n in SPLIT_SIZES.items()}
    items["all"] = items["train"] + items["val"]
    return items


@functools.lru_cache(maxsize=512)
def glyph(digit: int, size: int) -> np.ndarray:
    """The pixels of ``digit`` printed ``size`` px tall in Pillow's bundled font, cropped to the glyph."""
    from PIL import ImageDraw, ImageFont

    image = Image.new("L", (size * 2, size * 2))
    ImageDraw.Draw(image).text((size // 4, 0), str(digit), font=ImageFont.load_default(size=size), fill=255)
    pixels = np.asarray(image) > 127
    ys, xs = np.nonzero(pixels)
    return pixels[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth two-colour gradient at a random angle, sometimes striped, with noise (uint8 HxWx3)."""
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    yy, xx = np.mgrid[:size, :size] / size
    angle = rng.uniform(0, np.pi)
    t = (np.cos(angle) * xx + np.sin(angle) * yy)[..., None]
    t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
    image = a * (1 - t) + b * t
    if rng.random() < 0.3:
        image = image + 25 * np.sign(np.sin(xx * rng.uniform(10, 40)))[..., None]
    image = image + rng.normal(0, 12, image.shape)
    return image.clip(0, 255).astype(np.uint8)


def contrasting(rng: np.random.Generator, under: np.ndarray) -> np.ndarray:
    """A random colour whose brightness is far from ``under``'s."""
    colour = rng.uniform(0, 255, 3)
    if abs(colour.mean() - under.mean()) < 80:
        colour = np.clip(colour + (110 if under.mean() < 128 else -110), 0, 255)
    return colour.astype(np.uint8)


def split_bit(split: str) -> int:
    return 0 if split == "train" else 1


class DigitScenes:
    """Segmentation: canvases of 1-2 digit cards on generated backgrounds: each card is coloured, with a digit printed
    on it (36-60 px); the mask is exactly the card, class = digit + 1. Cards, not bare strokes: a network at output
    stride 16 resolves regions of a dozen pixels, not 3-pixel strokes. Item (split, index) -> (image, HxW uint8 mask)."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def __call__(self, item: tuple[str, int]) -> tuple[Image.Image, np.ndarray]:
        split, index = item
        rng = np.random.default_rng([self.seed, index, split_bit(split)])
        canvas = background(rng, SCENE_CANVAS)
        mask = np.zeros((SCENE_CANVAS, SCENE_CANVAS), dtype=np.uint8)
        for _ in range(rng.integers(1, 3)):
            digit, side = int(rng.integers(10)), int(rng.integers(CARD_SIDES[0], CARD_SIDES[1] + 1))
            drawn = np.pad(glyph(digit, side), 4)
            h, w = drawn.shape
            y, x = rng.integers(0, SCENE_CANVAS - h + 1), rng.integers(0, SCENE_CANVAS - w + 1)
            card = contrasting(rng, canvas[y:y + h, x:x + w].mean(axis=(0, 1)))
            canvas[y:y + h, x:x + w] = card
            canvas[y:y + h, x:x + w][drawn] = contrasting(rng, card)
            mask[y:y + h, x:x + w] = digit + 1
        return Image.fromarray(canvas), mask


def iou(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class DigitCanvases:
    """Detection: canvases of 1-4 bare digits on generated backgrounds; boxes are tight around each digit's visible
    pixels, label = digit + 1. Item (split, index) -> (image, boxes [M, 4] xyxy pixels, labels [M])."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def __call__(self, item: tuple[str, int]) -> tuple[Image.Image, np.ndarray, np.ndarray]:
        split, index = item
        rng = np.random.default_rng([self.seed, index, split_bit(split), 0xB0C5])
        canvas = background(rng, BOX_CANVAS)
        owner = np.full((BOX_CANVAS, BOX_CANVAS), -1, dtype=np.int64)
        placed: list[tuple[int, ...]] = []
        digits: list[int] = []
        for _ in range(int(rng.integers(1, 5))):
            digit = int(rng.integers(10))
            pixels = glyph(digit, int(rng.integers(DIGIT_SIZES[0], DIGIT_SIZES[1] + 1)))
            h, w = pixels.shape
            for _attempt in range(20):
                y, x = int(rng.integers(0, BOX_CANVAS - h + 1)), int(rng.integers(0, BOX_CANVAS - w + 1))
                if all(iou((x, y, x + w, y + h), other) < MAX_DIGIT_IOU for other in placed):
                    break
            else:
                continue
            region = canvas[y:y + h, x:x + w]
            region[pixels] = contrasting(rng, region.mean(axis=(0, 1)))
            owner[y:y + h, x:x + w][pixels] = len(placed)
            placed.append((x, y, x + w, y + h))
            digits.append(digit)
        boxes, labels = [], []
        for k, digit in enumerate(digits):  # a later digit may cover part of an earlier one: box what is visible
            ys, xs = np.nonzero(owner == k)
            if len(xs):
                boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
                labels.append(digit + 1)
        return Image.fromarray(canvas), np.array(boxes, dtype=np.float32).reshape(-1, 4), np.array(labels, dtype=np.int64)
