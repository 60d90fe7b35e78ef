"""A detection prediction (``DetectionPrediction``): one image's boxes, scores and classes in its pixels (numpy)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class DetectionPrediction:
    """One image's detections: boxes [k, 4] (xyxy, the image's pixels), scores and class indices (1..K)."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    width: int
    height: int
    source: str | None = None
    tiles: int = 1
    counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_detections(cls, det: Any, class_names: list[str], width: int, height: int,
                        source: str | None = None, tiles: int = 1) -> DetectionPrediction:
        """From detections whose boxes, scores and labels are arrays (``decoding.BoxArrays``) or CPU tensors."""
        labels = np.asarray(det.labels).astype(np.int64)
        counts: dict[str, int] = {}
        for index in labels:
            counts[class_names[index]] = counts.get(class_names[index], 0) + 1
        return cls(np.asarray(det.boxes, np.float32), np.asarray(det.scores, np.float32), labels, list(class_names),
                   width, height, source, tiles, dict(sorted(counts.items(), key=lambda kv: -kv[1])))

    @property
    def label(self) -> str:
        """The most frequent class detected, or "nothing"."""
        return next(iter(self.counts), "nothing")

    def detections(self) -> list[dict[str, Any]]:
        return [{"label": self.class_names[int(c)], "class_index": int(c), "score": round(float(s), 4),
                 "box": [round(float(v), 1) for v in b]} for b, s, c in zip(self.boxes, self.scores, self.labels)]

    def to_dict(self) -> dict[str, Any]:
        return {"image": self.source, "width": self.width, "height": self.height, "tiles": self.tiles,
                "counts": self.counts, "detections": self.detections()}

    to_json = to_dict
