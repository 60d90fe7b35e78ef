"""COCO figures of detections (torchmetrics' ``MeanAveragePrecision`` on pycocotools), over whole images whose
inputs may be tiles: every input's detections go back to its image's pixels and are merged there."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from mobilenetv2 import distributed as D
from mobilenetv2.tasks.detection.boxes import Detections, decode, merge, to_image

# COCO's AR@1 and AR@100, and a third limit for dense scenes (the mAP is taken at the last one): an aerial photo can
# hold hundreds of tree crowns, which 100 detections could never recall.
MAX_DETECTION_THRESHOLDS = [1, 100, 300]


class ImageDetections:
    """Each image's detections (gathered from its inputs) and ground truth, keyed by image id."""

    def __init__(self, score_converter: str = "softmax") -> None:
        self.parts: dict[int, list[Detections]] = defaultdict(list)
        self.truth: dict[int, dict[str, torch.Tensor]] = {}
        self.score_converter = score_converter  # "sigmoid" for TF's imported models

    def add(self, outputs: torch.Tensor, targets: Any) -> None:
        """A batch of evaluation outputs [N, A, 4 + C] and its ``BoxTargets``."""
        for i, det in enumerate(decode(outputs.cpu(), score_converter=self.score_converter)):
            image = int(targets.image_id[i])
            size = tuple(int(s) for s in targets.image_size[i])
            self.parts[image].append(to_image(det, targets.window[i].cpu(), size))
            if image not in self.truth:
                self.truth[image] = {k: v.cpu() for k, v in targets.image(i).items()}

    def __len__(self) -> int:
        return len(self.truth)

    def gathered(self, gather: bool = True) -> ImageDetections:
        """Every process's share (tiles of one image may sit in two shares) when running under torchrun."""
        if not gather or not D.is_distributed():
            return self
        shares: list = [None] * dist.get_world_size()
        dist.all_gather_object(shares, (dict(self.parts), self.truth))
        joined = ImageDetections(self.score_converter)
        for parts, truth in shares:
            for image, dets in parts.items():
                joined.parts[image].extend(dets)
            joined.truth.update(truth)
        return joined

    def merged(self) -> list[tuple[int, Detections, dict[str, torch.Tensor]]]:
        """(image id, its detections merged across its inputs, its ground truth), by image id."""
        return [(image, merge(self.parts[image]), self.truth[image]) for image in sorted(self.truth)]


def coco_figures(images: list[tuple[int, Detections, dict[str, torch.Tensor]]], num_classes: int) -> dict[str, Any]:
    """mAP@[.5:.95], mAP@.5, mAP@.75, by size, AR, per class (classes 1..num_classes-1) and the PR curves."""
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", class_metrics=True, extended_summary=True,
                                  max_detection_thresholds=MAX_DETECTION_THRESHOLDS, backend="pycocotools",
                                  sync_on_compute=False)  # the images are gathered before (tiles may be split)
    for _, det, truth in images:
        metric.update([det.to_dict()], [truth])
    raw = metric.compute()
    figures = {k: float(v) for k, v in raw.items() if isinstance(v, torch.Tensor) and v.numel() == 1 and k != "classes"}
    precision = raw["precision"].numpy()  # [IoU 0.5:0.95, recall 0:1, class, area, max detections]
    present = [int(c) for c in torch.atleast_1d(raw["classes"]).tolist()]
    per_class_map = torch.atleast_1d(raw["map_per_class"]).tolist()
    per_class_ar = torch.atleast_1d(raw[f"mar_{MAX_DETECTION_THRESHOLDS[-1]}_per_class"]).tolist()
    curves = np.full((2, precision.shape[1], num_classes), -1.0)  # PR at IoU 0.5 and 0.75, every area, most detections
    per_class: dict[int, dict[str, float | None]] = {}
    for k, cls in enumerate(present):
        if not 0 < cls < num_classes:
            continue
        curves[:, :, cls] = precision[[0, 5], :, k, 0, -1]
        ap50 = precision[0, :, k, 0, -1]
        per_class[cls] = {"ap": _valid(per_class_map[k]), "ap50": float(ap50.mean()) if (ap50 > -1).all() else None,
                          "ar": _valid(per_class_ar[k])}
    return {"figures": figures, "per_class": per_class, "curves": curves}


def _valid(value: float) -> float | None:
    return None if value < 0 else float(value)


class DetectionMeter:
    """Mean loss of a pass; on validation outputs also COCO mAP (the training outputs are box codes: loss only)."""

    def __init__(self, score_converter: str = "softmax") -> None:
        self.loss_sum = self.count = 0.0
        self.images = ImageDetections(score_converter)
        self.num_classes = 0

    def update(self, outputs: torch.Tensor | None, targets: Any, loss: float) -> None:
        n = len(targets)
        self.loss_sum += loss * n
        self.count += n
        if outputs is not None:
            self.num_classes = outputs.shape[-1] - 4
            self.images.add(outputs, targets)

    def compute(self, prefix: str, device: torch.device) -> dict[str, float]:
        loss_sum, count = D.all_reduce_sum([self.loss_sum, self.count], device)
        result = {f"{prefix}loss": loss_sum / max(count, 1)}
        if self.num_classes:
            images = self.images.gathered()
            figures = coco_figures(images.merged(), self.num_classes)["figures"]
            result |= {f"{prefix}map": max(figures["map"], 0.0), f"{prefix}map50": max(figures["map_50"], 0.0)}
        return result
