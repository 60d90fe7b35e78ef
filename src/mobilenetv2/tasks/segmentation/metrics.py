"""Segmentation metrics from one confusion matrix (torchmetrics), on full-resolution masks with 255 ignored.

Every figure follows the PASCAL VOC convention: IoU = TP / (TP + FP + FN) per class, mIoU is the mean over the
classes present in the truth or the prediction (a class absent from both has no IoU), pixel accuracy counts the
labelled pixels, and frequency-weighted IoU weighs each class's IoU by its share of the labelled pixels.
The streaming evaluator that builds the report is ``evaluator.SegmentationEvaluator``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torchmetrics.functional.classification import multiclass_confusion_matrix

from mobilenetv2 import distributed as D
from mobilenetv2.errors import UserError

IGNORE_INDEX = 255


def resize_logits(logits: torch.Tensor, size: Any) -> torch.Tensor:
    """Logits [N, C, h, w] bilinearly resized (align_corners=False) to ``size`` (the mask's), as DeepLab evaluates."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits.float(), size=tuple(size), mode="bilinear", align_corners=False)


def confusion(predicted: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """[C, C] int64 counts (rows: truth, columns: prediction) of the labelled pixels, on ``predicted``'s device; 255
    is left out, any other label outside the classes is an error."""
    target = target.to(predicted.device).reshape(-1).long()
    labelled = target[target != IGNORE_INDEX]
    if labelled.numel() and (int(labelled.min()) < 0 or int(labelled.max()) >= num_classes):
        raise UserError(f"mask labels must be 0..{num_classes - 1} or {IGNORE_INDEX} (ignored), "
                        f"found {int(labelled.min())}..{int(labelled.max())}")
    with _plain_bincount():
        return multiclass_confusion_matrix(predicted.reshape(-1), target, num_classes, ignore_index=IGNORE_INDEX,
                                           normalize="none", validate_args=False).long()


@contextlib.contextmanager
def _plain_bincount() -> Iterator[None]:
    """Deterministic mode off for the count: torchmetrics then falls back to a [pixels, C*C] comparison (GBs per
    batch), while bincount without weights is exact on any device (integer counts)."""
    enabled, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    if not enabled:
        yield
        return
    torch.use_deterministic_algorithms(False)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(True, warn_only=warn_only)


def per_class_iou(matrix: torch.Tensor) -> torch.Tensor:
    """IoU = TP / (TP + FP + FN) of each class; NaN for a class absent from both truth and prediction."""
    matrix = torch.as_tensor(matrix).double()
    tp = matrix.diag()
    union = matrix.sum(0) + matrix.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))


def per_class_accuracy(matrix: torch.Tensor) -> torch.Tensor:
    """The share of each class's true pixels predicted as it (recall); NaN for a class absent from the truth."""
    matrix = torch.as_tensor(matrix).double()
    support = matrix.sum(1)
    return torch.where(support > 0, matrix.diag() / support.clamp_min(1), torch.full_like(support, float("nan")))


def mean_iou(matrix: torch.Tensor) -> float:
    """The mean IoU over the classes whose union > 0, i.e. present in the truth or the prediction (PASCAL VOC's
    convention): a class absent from both is left out, one predicted but never true counts with IoU 0. 0 when empty."""
    iou = per_class_iou(matrix)
    present = ~iou.isnan()
    return float(iou[present].mean()) if present.any() else 0.0


def pixel_accuracy(matrix: torch.Tensor) -> float:
    """The share of the labelled pixels predicted right."""
    matrix = torch.as_tensor(matrix)
    total = matrix.sum()
    return float(matrix.diag().sum().double() / total) if total > 0 else 0.0


def mean_class_accuracy(matrix: torch.Tensor) -> float:
    """The mean over classes present in the truth of the share of their pixels predicted right."""
    accuracy = per_class_accuracy(matrix)
    present = ~accuracy.isnan()
    return float(accuracy[present].mean()) if present.any() else 0.0


def frequency_weighted_iou(matrix: torch.Tensor) -> float:
    """Each class's IoU weighted by its share of the true labelled pixels."""
    support = torch.as_tensor(matrix).sum(1).double()
    iou = per_class_iou(matrix).nan_to_num(0.0)
    return float((support * iou).sum() / support.sum()) if support.sum() > 0 else 0.0


def _masks(targets: Any) -> list[torch.Tensor]:
    return list(targets) if isinstance(targets, (list, tuple)) else list(targets.unbind(0))


def image_confusions(outputs: torch.Tensor, targets: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(predicted mask, confusion matrix) of each image; its logits resized to its mask first when sizes differ."""
    masks = _masks(targets)
    if len(masks) != len(outputs):
        raise ValueError(f"{len(outputs)} outputs but {len(masks)} masks")
    pairs = []
    for logits, mask in zip(outputs, masks):
        predicted = resize_logits(logits[None], mask.shape[-2:]).argmax(1)[0]
        pairs.append((predicted, confusion(predicted, mask, outputs.shape[1])))
    return pairs


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
        """Add a batch: logits [N, C, h, w], masks [N, H, W] or a list of [H_i, W_i] (255 ignored), its mean loss."""
        n, num_classes = outputs.shape[:2]
        self.loss_sum += loss * n
        self.count += n
        if self.matrix is None:
            self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.long)
        if isinstance(targets, torch.Tensor) and targets.shape[-2:] == outputs.shape[-2:]:
            self.matrix += confusion(outputs.argmax(1), targets, num_classes).cpu()
            return
        for _, matrix in image_confusions(outputs, targets):
            self.matrix += matrix.cpu()

    def compute(self, prefix: str, device: torch.device) -> dict[str, float]:
        """``{prefix}loss`` (mean over images), ``{prefix}miou`` and ``{prefix}pixel_acc``, summed over processes."""
        loss_sum, count = D.all_reduce_sum([self.loss_sum, self.count], device)
        matrix = all_reduce_matrix(self.matrix.to(device)).cpu() if self.matrix is not None else torch.zeros(1, 1)
        return {f"{prefix}loss": loss_sum / max(count, 1), f"{prefix}miou": mean_iou(matrix),
                f"{prefix}pixel_acc": pixel_accuracy(matrix)}
