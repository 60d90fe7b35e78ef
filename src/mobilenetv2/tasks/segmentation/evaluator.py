"""``SegmentationEvaluator``: one pass over an evaluation set, streamed, into a ``SegmentationReport``."""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mobilenetv2 import distributed as D
from mobilenetv2.errors import UserError
from mobilenetv2.tasks.segmentation.metrics import _masks, all_reduce_matrix, confusion, mean_iou, resize_logits
from mobilenetv2.tasks.segmentation.report import SegmentationReport

THUMBNAIL = 256  # long side of the worst images kept for the report


class SegmentationEvaluator:
    """Streams over an evaluation: one confusion matrix for every pixel, and thumbnails of the ``worst_k`` images."""

    def __init__(self, worst_k: int = 8, mean: Any = None, std: Any = None) -> None:
        self.matrix: torch.Tensor | None = None
        self.worst_k, self.seen = worst_k, 0
        self.mean = torch.tensor(mean if mean is not None else (0.0,) * 3).view(3, 1, 1)
        self.std = torch.tensor(std if std is not None else (1.0,) * 3).view(3, 1, 1)
        self.worst: list[tuple[float, int, dict[str, Any]]] = []  # a heap: the best of the worst on top

    def update(self, outputs: torch.Tensor, targets: Any, images: torch.Tensor | None = None) -> None:
        num_classes = outputs.shape[1]
        if self.matrix is None:
            self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.long)
        for i, (logits, mask) in enumerate(zip(outputs, _masks(targets))):
            predicted = resize_logits(logits[None].float(), mask.shape[-2:]).argmax(1)[0].cpu()
            matrix = confusion(predicted, mask.cpu(), num_classes)
            self.matrix += matrix
            self.keep_if_worst(mean_iou(matrix), predicted, mask.cpu(), images[i] if images is not None else None)
            self.seen += 1

    def keep_if_worst(self, score: float, predicted: torch.Tensor, mask: torch.Tensor, image: torch.Tensor | None) -> None:
        if self.worst_k <= 0:
            return
        item = (-score, self.seen, {"miou": score, "index": self.seen, "image": self.thumbnail(image, mask.shape),
                                    "truth": _small(mask), "predicted": _small(predicted)})
        if len(self.worst) < self.worst_k:
            heapq.heappush(self.worst, item)
        elif item[0] > self.worst[0][0]:
            heapq.heapreplace(self.worst, item)

    def thumbnail(self, image: torch.Tensor | None, size: Any) -> np.ndarray | None:
        if image is None:
            return None
        pixels = (image.float().cpu() * self.std + self.mean).clamp(0, 1)
        pixels = F.interpolate(pixels[None], size=_small_size(size), mode="bilinear", align_corners=False)[0]
        return (pixels.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)

    def finish(self, class_names: list[str], total: int = 0, gather: bool = True):
        """The report; with ``gather`` the confusion matrices of every process are summed (worst images: this one's)."""
        if self.matrix is None:
            raise UserError("the dataset split has no images")
        matrix = all_reduce_matrix(self.matrix) if gather else self.matrix
        worst = [entry for _, _, entry in sorted(self.worst, key=lambda x: -x[0])]
        images = int(D.all_reduce_sum([self.seen], torch.device("cpu"))[0]) if gather else self.seen
        return SegmentationReport.from_matrix(matrix, list(class_names), images, worst)


def _small_size(size: Any) -> tuple[int, int]:
    h, w = int(size[-2]), int(size[-1])
    scale = min(1.0, THUMBNAIL / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def _small(mask: torch.Tensor) -> np.ndarray:
    size = _small_size(mask.shape)
    small = F.interpolate(mask[None, None].float(), size=size, mode="nearest")[0, 0]
    return small.to(torch.uint8).numpy()
