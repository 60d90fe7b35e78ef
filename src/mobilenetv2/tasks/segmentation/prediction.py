"""A segmentation prediction (``SegmentationPrediction``), ``mask_predictions`` and the bilinear resize of class
probabilities back to an image's size: numpy, without torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class SegmentationPrediction:
    """One image's class-index mask (at the image's size) and the share of its pixels in each class."""

    mask: np.ndarray
    class_names: list[str]
    fractions: dict[str, float] = field(default_factory=dict)  # class -> share of pixels, largest first
    source: str | None = None

    @property
    def label(self) -> str:
        """The largest class other than the first ("background"), or the first when nothing else is there."""
        others = [name for name in self.fractions if name != self.class_names[0]]
        return others[0] if others else self.class_names[0]

    def to_dict(self) -> dict[str, Any]:
        return {"image": self.source, "height": int(self.mask.shape[0]), "width": int(self.mask.shape[1]),
                "fractions": {k: round(v, 6) for k, v in self.fractions.items()}}

    to_json = to_dict


def mask_predictions(outputs: Any, class_names: list[str], top_k: int) -> list[SegmentationPrediction]:
    """Logits (or probabilities) [N, C, H, W], an array or a CPU tensor -> masks and the ``top_k`` largest class
    fractions."""
    predictions = []
    for mask in np.asarray(outputs).argmax(axis=1).astype(np.uint8):
        counts = np.bincount(mask.ravel(), minlength=len(class_names)) / mask.size
        order = [int(i) for i in np.argsort(-counts, kind="stable")[:top_k] if counts[i] > 0]
        predictions.append(SegmentationPrediction(mask, list(class_names), {class_names[i]: float(counts[i]) for i in order}))
    return predictions


def _axis_weights(source: int, target: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear sampling of ``source`` pixels at ``target`` pixels, half-pixel centres (align_corners=False): the
    lower neighbour, the upper one and the upper one's weight."""
    position = np.maximum((np.arange(target, dtype=np.float32) + 0.5) * np.float32(source / target) - 0.5, 0)
    low = np.minimum(position.astype(np.int64), source - 1)
    return low, np.minimum(low + 1, source - 1), (position - low).astype(np.float32)


def resize_bilinear(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Maps [..., H, W] -> [..., height, width] by bilinear interpolation with half-pixel centres and no antialiasing
    (as ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``)."""
    height, width = size
    top, bottom, wy = _axis_weights(maps.shape[-2], height)
    left, right, wx = _axis_weights(maps.shape[-1], width)
    rows = maps[..., top, :] * (1 - wy)[:, None] + maps[..., bottom, :] * wy[:, None]
    return rows[..., left] * (1 - wx) + rows[..., right] * wx
