"""Segmentation metrics from one confusion matrix (torchmetrics), on full-resolution masks with 255 ignored.

Every figure follows the PASCAL VOC convention: IoU = TP / (TP + FP + FN) per class, mIoU is the mean over the
classes present in the truth or the prediction (a class absent from both has no IoU), pixel accuracy counts the
labelled pixels, and frequency-weighted IoU weighs each class's IoU by its share of the labelled pixels.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torchmetrics.functional.classification import multiclass_confusion_matrix

from mobilenetv2 import distributed as D

IGNORE_INDEX = 255


def resize_logits(logits: torch.Tensor, size: Any) -> torch.Tensor:
    """Logits [N, C, h, w] bilinearly resized to ``size`` (the mask's), as DeepLab evaluates."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits.float(), size=tuple(size), mode="bilinear", align_corners=False)


def confusion(predicted: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """[C, C] counts (rows: truth, columns: prediction) of the labelled pixels; 255 is left out."""
    return multiclass_confusion_matrix(predicted.reshape(-1), target.reshape(-1).long(), num_classes,
                                       ignore_index=IGNORE_INDEX, normalize="none", validate_args=False).long()


def per_class_iou(matrix: torch.Tensor) -> torch.Tensor:
    """IoU of each class; NaN for a class absent from both truth and prediction."""
    matrix = matrix.double()
    tp = matrix.diag()
    union = matrix.sum(0) + matrix.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))


def mean_iou(matrix: torch.Tensor) -> float:
    iou = per_class_iou(matrix)
    present = ~iou.isnan()
    return float(iou[present].mean()) if present.any() else 0.0


def pixel_accuracy(matrix: torch.Tensor) -> float:
    total = matrix.sum()
    return float(matrix.diag().sum() / total) if total > 0 else 0.0


def mean_class_accuracy(matrix: torch.Tensor) -> float:
    """The mean over classes present in the truth of the share of their pixels predicted right."""
    support = matrix.sum(1).double()
    present = support > 0
    return float((matrix.diag().double()[present] / support[present]).mean()) if present.any() else 0.0


def frequency_weighted_iou(matrix: torch.Tensor) -> float:
    support = matrix.sum(1).double()
    iou = per_class_iou(matrix).nan_to_num(0.0)
    return float((support * iou).sum() / support.sum()) if support.sum() > 0 else 0.0


def _masks(targets: Any) -> list[torch.Tensor]:
    return list(targets) if isinstance(targets, (list, tuple)) else list(targets.unbind(0))


def all_reduce_matrix(matrix: torch.Tensor) -> torch.Tensor:
    """The sum of every process's confusion matrix (itself when alone)."""
    if D.is_distributed():
        matrix = matrix.clone()
        dist.all_reduce(matrix)
    return matrix


class SegmentationMeter:
    """Mean loss, mIoU and pixel accuracy of a pass; the class count comes from the first outputs."""

    def __init__(self) -> None:
        self.matrix: torch.Tensor | None = None
        self.loss_sum = self.count = 0.0

    def update(self, outputs: torch.Tensor, targets: Any, loss: float) -> None:
        n = outputs.shape[0]
        self.loss_sum += loss * n
        self.count += n
        num_classes = outputs.shape[1]
        if self.matrix is None:
            self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.long)
        if isinstance(targets, torch.Tensor) and targets.shape[-2:] == outputs.shape[-2:]:
            self.matrix += confusion(outputs.argmax(1).cpu(), targets.cpu(), num_classes)
            return
        for logits, mask in zip(outputs, _masks(targets)):
            predicted = resize_logits(logits[None], mask.shape[-2:]).argmax(1)[0]
            self.matrix += confusion(predicted.cpu(), mask.cpu(), num_classes)

    def compute(self, prefix: str, device: torch.device) -> dict[str, float]:
        loss_sum, count = D.all_reduce_sum([self.loss_sum, self.count], device)
        matrix = all_reduce_matrix(self.matrix.to(device)).cpu() if self.matrix is not None else torch.zeros(1, 1)
        return {f"{prefix}loss": loss_sum / max(count, 1), f"{prefix}miou": mean_iou(matrix),
                f"{prefix}pixel_acc": pixel_accuracy(matrix)}
