"""``DetectionEvaluator``: one pass over an evaluation set into a ``DetectionReport``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from mobilenetv2.errors import UserError
from mobilenetv2.tasks.detection.boxes import Detections
from mobilenetv2.tasks.detection.draw import draw_detections
from mobilenetv2.tasks.detection.metrics import ImageDetections, coco_figures
from mobilenetv2.tasks.detection.report import DetectionReport, picture_name

PICTURE_SIDE = 1024  # long side of the report's pictures
DRAW_SCORE = 0.3


class DetectionEvaluator:
    """Streams over an evaluation: detections per image (tiles merged) and pictures of the first ``pictures`` images,
    rebuilt from the inputs the model saw."""

    def __init__(self, pictures: int = 8, mean: Any = None, std: Any = None, score_converter: str = "softmax") -> None:
        self.images = ImageDetections(score_converter)
        self.num_pictures, self.num_classes = pictures, 0
        self.mean = torch.tensor(mean if mean is not None else (0.0,) * 3).view(3, 1, 1)
        self.std = torch.tensor(std if std is not None else (1.0,) * 3).view(3, 1, 1)
        self.canvases: dict[int, np.ndarray] = {}
        self.scales: dict[int, float] = {}  # canvas pixels per image pixel

    def update(self, outputs: torch.Tensor, targets: Any, images: torch.Tensor | None = None) -> None:
        self.num_classes = outputs.shape[-1] - 4
        self.images.add(outputs, targets)
        if images is not None:
            for i in range(len(targets)):
                self.paste(int(targets.image_id[i]), images[i], targets.window[i], targets.image_size[i])

    def paste(self, image_id: int, pixels: torch.Tensor, window: torch.Tensor, size: torch.Tensor) -> None:
        """Put one input back where it came from on its image's (scaled-down) canvas."""
        if image_id not in self.canvases and len(self.canvases) >= self.num_pictures:
            return
        height, width = int(size[0]), int(size[1])
        scale = min(1.0, PICTURE_SIDE / max(height, width))
        canvas = self.canvases.setdefault(image_id, np.zeros((round(height * scale), round(width * scale), 3), np.uint8))
        self.scales[image_id] = scale
        x0, y0, x1, y1 = (round(float(v) * scale) for v in window)
        if x1 <= x0 or y1 <= y0:
            return
        rgb = (pixels.float().cpu() * self.std + self.mean).clamp(0, 1)
        rgb = F.interpolate(rgb[None], size=(y1 - y0, x1 - x0), mode="bilinear", align_corners=False)[0]
        canvas[y0:y1, x0:x1] = (rgb.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)

    def finish(self, class_names: list[str], total: int = 0, gather: bool = True) -> DetectionReport:
        """The report; with ``gather`` every process's images (pictures: this process's)."""
        images = self.images.gathered(gather).merged()
        if not images:
            raise UserError("the dataset split has no images")
        result = coco_figures(images, len(class_names))
        per_class = []
        for cls, name in enumerate(class_names[1:], start=1):
            found = result["per_class"].get(cls, {"ap": None, "ap50": None, "ar": None})
            per_class.append({"name": name, **found,
                              "objects": int(sum((truth["labels"] == cls).sum() for _, _, truth in images)),
                              "detections": int(sum(((det.labels == cls) & (det.scores >= DRAW_SCORE)).sum()
                                                    for _, det, _ in images))})
        report = DetectionReport(len(images), list(class_names), result["figures"], per_class, result["curves"])
        report.pictures = self.pictures(images, class_names)
        return report

    def pictures(self, images: list[tuple[int, Detections, dict]], class_names: list[str]) -> list[tuple[str, Image.Image]]:
        drawn = []
        for rank, (image_id, det, truth) in enumerate([x for x in images if x[0] in self.canvases], start=1):
            scale, keep = self.scales[image_id], det.scores >= DRAW_SCORE
            picture = draw_detections(Image.fromarray(self.canvases[image_id]),
                                      Detections(det.boxes[keep] * scale, det.scores[keep], det.labels[keep]),
                                      class_names, truth_boxes=truth["boxes"] * scale)
            drawn.append((picture_name(rank, None, image_id), picture))
        return drawn

