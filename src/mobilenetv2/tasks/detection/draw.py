"""Boxes drawn on a photo with torchvision's ``draw_bounding_boxes``: detections in colour per class, truth in green."""

from __future__ import annotations

import torch
from PIL import Image
from torchvision.transforms.v2.functional import pil_to_tensor, to_pil_image
from torchvision.utils import draw_bounding_boxes

from mobilenetv2.tasks.detection.boxes import Detections

TRUTH_COLOUR = "lime"
PALETTE = ["red", "orange", "magenta", "cyan", "yellow", "blue", "white", "pink", "purple", "gold"]


def draw_detections(image: Image.Image, det: Detections, class_names: list[str],
                    truth_boxes: torch.Tensor | None = None, labels: bool = True) -> Image.Image:
    """``image`` with the true boxes (thin, green) and the detections (class colour, "name score" labels)."""
    pixels = pil_to_tensor(image.convert("RGB"))
    width = max(1, round(max(image.size) / 500))
    if truth_boxes is not None and len(truth_boxes):
        pixels = draw_bounding_boxes(pixels, truth_boxes.float(), colors=TRUTH_COLOUR, width=width)
    if len(det):
        names = [f"{class_names[int(c)]} {float(s):.2f}" for c, s in zip(det.labels, det.scores)] if labels else None
        colours = [PALETTE[(int(c) - 1) % len(PALETTE)] for c in det.labels]
        pixels = draw_bounding_boxes(pixels, det.boxes.float(), labels=names, colors=colours, width=width + 1)
    return to_pil_image(pixels)
