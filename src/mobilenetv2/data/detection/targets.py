"""Targets: one sample's boxes as a dict of tensors (``make_target``) and a batch's as ``BoxTargets`` (padded to the
batch's largest box count by ``collate_detection``): xyxy in pixels of the original image, labels 1..K, 0 = padding."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from mobilenetv2.data.detection.tiles import MIN_VISIBLE


@dataclass
class BoxTargets:
    """A batch's ground truth: every box of the whole image each input comes from, in that image's pixels."""

    boxes: torch.Tensor  # [N, M, 4] float32 xyxy in pixels of the original image (padded rows: zeros)
    labels: torch.Tensor  # [N, M] int64, 1..K; 0 = padding
    image_size: torch.Tensor  # [N, 2] int64 (height, width) of the original image
    window: torch.Tensor  # [N, 4] float32 (x0, y0, x1, y1): the region of the original image each input shows
    image_id: torch.Tensor  # [N] int64: index of the original image in its split (tiles of one image share it)

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> BoxTargets:
        return BoxTargets(**{f.name: fn(getattr(self, f.name)) for f in fields(self)})

    def to(self, device: Any, non_blocking: bool = False) -> BoxTargets:
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> BoxTargets:
        """Called by DataLoader(pin_memory=True)."""
        return self._map(lambda t: t.pin_memory())

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, i: int) -> dict[str, torch.Tensor]:
        """Input ``i``'s boxes (pixels of its original image) and labels, without padding."""
        keep = self.labels[i] > 0
        return {"boxes": self.boxes[i][keep], "labels": self.labels[i][keep]}

    def in_window(self, min_visible: float = MIN_VISIBLE) -> tuple[torch.Tensor, torch.Tensor]:
        """Boxes normalised to each input's window ([N, M, 4] in [0, 1], clipped) and labels [N, M] with 0 where a box
        is padding or has less than ``min_visible`` of its area inside the window: what the training loss matches."""
        lo = self.window[:, None, [0, 1, 0, 1]]
        hi = self.window[:, None, [2, 3, 2, 3]]
        clipped = torch.maximum(torch.minimum(self.boxes, hi), lo)
        area, visible = box_area(self.boxes), box_area(clipped)
        keep = (self.labels > 0) & (visible > 0) & (visible >= min_visible * area)
        normalised = ((clipped - lo) / (hi - lo).clamp(min=1e-6)).clamp(0, 1) * keep[..., None]
        return normalised, self.labels * keep


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def collate_detection(batch: list) -> tuple[torch.Tensor, BoxTargets]:
    """Stack images and pad every target to the batch's largest box count (at least one row: zeros, label 0)."""
    images = torch.stack([b[0] for b in batch])
    targets = [b[1] for b in batch]
    m = max([1, *(len(t["labels"]) for t in targets)])
    boxes = torch.zeros(len(batch), m, 4, dtype=torch.float32)
    labels = torch.zeros(len(batch), m, dtype=torch.int64)
    for i, t in enumerate(targets):
        boxes[i, :len(t["labels"])] = t["boxes"]
        labels[i, :len(t["labels"])] = t["labels"]
    return images, BoxTargets(boxes, labels, torch.stack([t["image_size"] for t in targets]),
                              torch.stack([t["window"] for t in targets]), torch.stack([t["image_id"] for t in targets]))


def make_target(boxes: Any, labels: Any, size: tuple[int, int], window: tuple[float, ...], image_id: int) -> dict:
    """The target dict of one sample; ``size`` is (height, width)."""
    return {"boxes": torch.as_tensor(np.asarray(boxes, dtype=np.float32)).reshape(-1, 4),
            "labels": torch.as_tensor(np.asarray(labels, dtype=np.int64)).reshape(-1),
            "image_size": torch.tensor(size, dtype=torch.int64),
            "window": torch.tensor(window, dtype=torch.float32), "image_id": torch.tensor(image_id, dtype=torch.int64)}
