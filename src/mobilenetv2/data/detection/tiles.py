"""Tiles: the windows that cut a large image into overlapping squares, and the boxes that fall in one window. Training,
evaluation and inference (``evaluation/detector.py``) cut images the same way."""

from __future__ import annotations

import numpy as np

from mobilenetv2.errors import UserError

MIN_VISIBLE = 0.5  # a box cut by a tile edge is an object of that tile when at least this much of it is inside


def axis_starts(length: int, tile: int, stride: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, stride))
    return starts if starts[-1] == length - tile else [*starts, length - tile]


def tile_windows(width: int, height: int, tile: int | None, overlap: float = 0.25) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) windows covering the image: one window (the whole image) when tile is None or the image fits
    in a tile; else tile x tile windows, stride = round(tile * (1 - overlap)), the last row/column aligned to the
    right/bottom edge (a side smaller than the tile gets one window of its full length)."""
    if tile is None or (width <= tile and height <= tile):
        return [(0, 0, width, height)]
    if isinstance(tile, bool) or int(tile) != tile or tile < 1:
        raise UserError(f"tile must be a whole number of pixels >= 1, got {tile!r}")
    if not 0 <= overlap < 1:
        raise UserError(f"tile_overlap must be in [0, 1), got {overlap!r}")
    tile = int(tile)
    stride = max(1, round(tile * (1 - overlap)))
    return [(x, y, min(x + tile, width), min(y + tile, height))
            for y in axis_starts(height, tile, stride) for x in axis_starts(width, tile, stride)]


def boxes_in_crop(boxes: np.ndarray, labels: np.ndarray, window: tuple[int, ...],
                  min_visible: float = MIN_VISIBLE) -> tuple[np.ndarray, np.ndarray]:
    """Boxes shifted into ``window``'s pixels and clipped; those with less than ``min_visible`` inside are left out."""
    x0, y0, x1, y1 = window
    clipped = np.clip(boxes - [x0, y0, x0, y0], 0, [x1 - x0, y1 - y0] * 2).astype(np.float32)
    area = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)
    visible = np.prod(np.clip(clipped[:, 2:] - clipped[:, :2], 0, None), axis=1)
    keep = (visible > 0) & (visible >= min_visible * area)
    return clipped[keep].reshape(-1, 4), labels[keep]
